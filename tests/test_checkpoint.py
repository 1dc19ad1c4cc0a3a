"""Checkpoint files (snakesweep.session.checkpoint) and durable writes (snakesweep.store.atomic)."""

from __future__ import annotations

import io
import os
import stat

import pytest
import torch

from snakesweep.session.checkpoint import (
    _HEADER,
    CORRUPT_SUFFIX,
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    load_latest,
    read_checkpoint,
    save_checkpoint,
)
from snakesweep.store import atomic


def state_of(step: int) -> dict:
    torch.manual_seed(step)
    model = torch.nn.Linear(4, 3)
    return {
        "objects": {"model": model.state_dict()},
        "rng": {"torch": torch.get_rng_state()},
        "global_step": step,
        "history": [{"epoch": 1, "loss": 0.1 * step}],
        "order": torch.randperm(10),
    }


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a["objects"]["model"].items():
        assert torch.equal(tensor, b["objects"]["model"][name])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert torch.equal(a["order"], b["order"])
    assert a["history"] == b["history"] and a["global_step"] == b["global_step"]


def test_round_trip(tmp_path):
    state = state_of(7)
    path = save_checkpoint(tmp_path, 7, state)
    assert path == tmp_path / checkpoint_name(7) == tmp_path / "ckpt-000000000007.pt"
    assert_same_state(read_checkpoint(path), state)
    loaded, found = load_latest(tmp_path)
    assert found == path
    assert_same_state(loaded, state)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert load_latest(tmp_path) is None
    assert load_latest(tmp_path / "missing") is None
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert load_latest(tmp_path) is None


def test_keep_last_k(tmp_path):
    for step in (5, 10, 15, 20, 100):
        save_checkpoint(tmp_path, step, state_of(step), keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        checkpoint_name(100),
        checkpoint_name(20),
        checkpoint_name(15),
    ]
    # Newest means the highest step, not the latest file: names sort by step numerically.
    assert load_latest(tmp_path)[0]["global_step"] == 100
    save_checkpoint(tmp_path, 101, state_of(101), keep=0)  # at least one is always kept
    assert list_checkpoints(tmp_path) == [tmp_path / checkpoint_name(101)]


def test_truncated_newest_is_skipped_with_a_warning_and_set_aside(tmp_path):
    save_checkpoint(tmp_path, 10, state_of(10))
    newest = save_checkpoint(tmp_path, 20, state_of(20))
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a torn file, as after a crash of the machine
    with pytest.warns(UserWarning, match="truncated payload"):
        state, path = load_latest(tmp_path)
    assert path.name == checkpoint_name(10)
    assert_same_state(state, state_of(10))
    assert not newest.exists()
    assert newest.with_name(newest.name + CORRUPT_SUFFIX).read_bytes() == data[: len(data) // 2]
    # The damaged file is out of the rotation: the next save and prune cannot keep it.
    assert [p.name for p in list_checkpoints(tmp_path)] == [checkpoint_name(10)]
    save_checkpoint(tmp_path, 14, state_of(14), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        checkpoint_name(14),
        checkpoint_name(10),
    ]


def test_truncated_header_and_foreign_files(tmp_path):
    save_checkpoint(tmp_path, 1, state_of(1))
    (tmp_path / checkpoint_name(2)).write_bytes(b"SNKS")
    (tmp_path / checkpoint_name(3)).write_bytes(b"x" * 200)  # not ours: wrong magic
    with pytest.warns(UserWarning) as caught:
        state, path = load_latest(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert "truncated header" in messages and "not a snakesweep checkpoint" in messages
    assert path.name == checkpoint_name(1)


def test_bit_flip_in_payload_is_caught_by_the_checksum(tmp_path):
    save_checkpoint(tmp_path, 1, state_of(1))
    newest = save_checkpoint(tmp_path, 2, state_of(2))
    data = bytearray(newest.read_bytes())
    where = data.find(state_of(2)["order"].numpy().tobytes())  # a tensor's raw bytes
    assert where > _HEADER.size
    data[where + 3] ^= 0x01
    newest.write_bytes(bytes(data))
    # torch.load alone does not notice: it returns a different tensor without complaint.
    silently_wrong = torch.load(io.BytesIO(bytes(data[_HEADER.size :])), weights_only=False)
    assert not torch.equal(silently_wrong["order"], state_of(2)["order"])
    with pytest.raises(ValueError, match="checksum mismatch"):
        read_checkpoint(newest)
    with pytest.warns(UserWarning, match="checksum mismatch"):
        state, path = load_latest(tmp_path)
    assert path.name == checkpoint_name(1)


def test_all_corrupt_raises_and_keeps_refusing(tmp_path):
    for step in (1, 2):
        path = save_checkpoint(tmp_path, step, state_of(step))
        path.write_bytes(path.read_bytes()[:-10])
    for _attempt in range(2):  # never a silent fresh start, not even on the next attempt
        with pytest.warns(UserWarning), pytest.raises(CheckpointError) as exc:
            load_latest(tmp_path)
        assert "refusing to restart from scratch" in str(exc.value)
        assert checkpoint_name(1) in str(exc.value) and checkpoint_name(2) in str(exc.value)
    assert len(list_checkpoints(tmp_path)) == 2  # left in place for a human to look at


def test_header_layout(tmp_path):
    path = save_checkpoint(tmp_path, 3, state_of(3))
    magic, length, digest = _HEADER.unpack_from(path.read_bytes())
    assert magic == b"SNKSWPC1"
    assert length == path.stat().st_size - _HEADER.size
    assert len(digest) == 32


def test_stale_temp_files_are_cleaned_by_the_next_save(tmp_path):
    # What a writer killed between mkstemp and rename leaves behind.
    stale = tmp_path / ".ckpt-000000000009.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".metrics.jsonl.abc123.tmp"
    unrelated.write_bytes(b"{}")
    assert load_latest(tmp_path) is None  # a temporary file is never taken for a checkpoint
    save_checkpoint(tmp_path, 10, state_of(10))
    assert not stale.exists()
    assert unrelated.exists()  # only checkpoint temporaries are the checkpoint code's business
    assert atomic.remove_stale_temps(tmp_path, "metrics.jsonl") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint_name(10)]


def test_write_bytes_replaces_atomically_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic.write_bytes(target, b"old")
    atomic.write_bytes(target, [b"ne", memoryview(b"w!")])  # chunks, written in order
    assert target.read_bytes() == b"new!"
    assert os.listdir(target.parent) == ["file.bin"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_write_bytes_without_fsync_is_still_all_or_nothing(tmp_path):
    target = tmp_path / "hint.json"
    atomic.write_bytes(target, b"{}", durable=False)
    assert target.read_bytes() == b"{}"
    assert os.listdir(tmp_path) == ["hint.json"]


def test_write_bytes_failure_leaves_the_old_file(tmp_path):
    target = tmp_path / "file.bin"
    atomic.write_bytes(target, b"old")

    def chunks():
        yield b"partial"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_bytes(target, chunks())
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_append_line_and_write_json(tmp_path):
    log = tmp_path / "a" / "log.jsonl"
    atomic.append_line(log, '{"x": 1}')
    atomic.append_line(log, '{"x": 2}\n')
    assert log.read_text() == '{"x": 1}\n{"x": 2}\n'
    atomic.write_json(tmp_path / "v.json", {"b": float("nan"), "a": 1})
    assert (tmp_path / "v.json").read_text() == '{\n  "a": 1,\n  "b": NaN\n}\n'
