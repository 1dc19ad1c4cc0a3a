"""Atomic, verified checkpoint files: save, keep the last k, load the newest good one.

A checkpoint file is a small header (magic, payload length, SHA-256) followed by
a ``torch.save`` payload. The hash catches truncation and bit rot that the zip
container alone may not, so a damaged newest file is skipped with a warning and
the previous one is used instead, never a crash and never a silent fresh start.

Files are named ``ckpt-<global step, 12 digits>.pt`` and written with
:func:`snakesweep.store.atomic.write_bytes` (temporary file, fsync, rename, fsync of the
folder): a writer killed at any instant leaves either the previous set of files or
the new one, plus at most a hidden ``.ckpt-*.tmp`` leftover that the next save removes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import torch

from snakesweep.store.atomic import fsync_dir, remove_stale_temps, write_bytes

MAGIC = b"SNKSWPC1"
_HEADER = struct.Struct(">8sQ32s")  # magic, payload length, sha256
_NAME = re.compile(r"^ckpt-(\d{12})\.pt$")
#: Suffix given to a damaged checkpoint that was passed over for an older good one.
CORRUPT_SUFFIX = ".corrupt"


class CheckpointError(RuntimeError):
    """Checkpoints exist but none of them can be loaded."""


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:012d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoint files in ``directory``, newest (highest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(
    directory: str | os.PathLike, step: int, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write ``state`` as the checkpoint of ``step`` durably, then drop all but the newest ``keep``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getbuffer()  # a view: no copy of a possibly large payload
    try:
        header = _HEADER.pack(MAGIC, len(payload), hashlib.sha256(payload).digest())
        path = Path(directory) / checkpoint_name(step)
        write_bytes(path, (header, payload))
    finally:
        payload.release()
    _prune(Path(directory), keep)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load one checkpoint file, raising ``ValueError`` if it is truncated or corrupt."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size:
        raise ValueError(f"{path}: truncated header ({len(data)} bytes)")
    magic, length, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a snakesweep checkpoint")
    payload = memoryview(data)[_HEADER.size :]
    if len(payload) != length:
        raise ValueError(f"{path}: truncated payload ({len(payload)} of {length} bytes)")
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"{path}: checksum mismatch")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


def load_latest(directory: str | os.PathLike) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that loads cleanly, or ``None`` if there is none at all.

    Damaged files are skipped with a warning; once an older good one has loaded,
    the damaged newer ones are renamed ``*.corrupt`` (kept for inspection, out of
    the rotation). If files exist but every one is damaged, :class:`CheckpointError`
    is raised and the files stay where they are, so that every later attempt fails
    the same way: restarting from scratch would silently throw the trial's progress away.
    """
    candidates = list_checkpoints(directory)
    problems: list[tuple[Path, str]] = []
    for path in candidates:
        try:
            state = read_checkpoint(path)
        except Exception as exc:  # any failure to load means: try the previous one
            problems.append((path, f"{type(exc).__name__}: {exc}"))
            warnings.warn(f"skipping unreadable checkpoint {path}: {exc}", stacklevel=2)
            continue
        for damaged, _ in problems:
            _set_aside(damaged)
        if problems:
            fsync_dir(directory)
        return state, path
    if candidates:
        raise CheckpointError(
            f"no loadable checkpoint in {directory}; refusing to restart from scratch: "
            + "; ".join(f"{p.name}: {why}" for p, why in problems)
        )
    return None


def _set_aside(path: Path) -> None:
    """Rename a damaged file out of the rotation, so pruning never keeps it over good ones."""
    try:
        os.replace(path, path.with_name(path.name + CORRUPT_SUFFIX))
    except OSError:
        pass


def _prune(directory: Path, keep: int) -> None:
    for old in list_checkpoints(directory)[max(1, keep) :]:
        old.unlink(missing_ok=True)
    remove_stale_temps(directory, "ckpt-*")  # left by a writer killed mid-save
    fsync_dir(directory)
