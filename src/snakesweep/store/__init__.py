"""The on-disk formats: the trial contract, the trial folder, atomic writes and JSON lines.

Nothing here imports another part of snakesweep, so every other part may read and write files
through it.
"""
