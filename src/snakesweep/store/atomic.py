"""Durable file writes: a reader sees the old content or the new, never a mix.

Write to a temporary file in the same folder, fsync it, rename it over the
target, fsync the folder. Safe on NFS because rename within a folder is atomic
there too, and nothing relies on file locks. A writer killed half-way leaves a
hidden temporary file (``.NAME.XXXXXXXX.tmp``) and the target untouched;
:func:`remove_stale_temps` clears such leftovers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Chunk = bytes | bytearray | memoryview


def _current_umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide, racy with threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Permissions of new files, as ``open()`` would give them (``mkstemp`` alone gives 0600).
_FILE_MODE = 0o666 & ~_current_umask()


def write_bytes(
    path: str | os.PathLike, data: Chunk | Iterable[Chunk], *, durable: bool = True
) -> None:
    """Atomically replace ``path`` with ``data`` (bytes, or an iterable of byte chunks).

    ``durable=False`` skips both fsyncs: still all-or-nothing for readers and after a
    killed process, but a machine crash may leave the old or an empty file (for hints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n").encode())


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and fsync: used for logs that are only ever appended to."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temps(directory: str | os.PathLike, pattern: str = "*") -> int:
    """Delete temporary files that killed writers left for targets matching ``pattern``.

    Only call this when no other process is writing those targets. Returns how many went.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for stale in directory.glob(f".{pattern}.*.tmp"):
        try:
            stale.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
