"""Where processes run: SLURM's environment and commands, process layouts, packs, host processes."""
