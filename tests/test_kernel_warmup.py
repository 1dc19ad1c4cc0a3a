"""The MKL VML warm-up (pytorch#188792): every VML-backed op runs once per precision, on
the calling thread, when a training script imports the session; a second call does nothing."""

from __future__ import annotations

import subprocess
import sys

import torch

from snakesweep.session import kernel_warmup


def spy_on_ops(monkeypatch) -> list[tuple[str, torch.dtype, int]]:
    """Record (op, dtype, elements) of every warm-up call."""
    calls: list[tuple[str, torch.dtype, int]] = []
    for name in kernel_warmup.VML_OPS:
        real = getattr(torch, name)

        def spy(x, _name=name, _real=real):
            calls.append((_name, x.dtype, x.numel()))
            return _real(x)

        monkeypatch.setattr(torch, name, spy)
    monkeypatch.setattr(kernel_warmup, "_done", False)
    return calls


def test_every_vml_op_runs_once_per_precision_below_the_parallel_grain(monkeypatch):
    calls = spy_on_ops(monkeypatch)
    assert kernel_warmup.warm_up_vml() is True
    expected = {
        (name, dtype) for name in kernel_warmup.VML_OPS for dtype in kernel_warmup.VML_DTYPES
    }
    assert sorted((n, str(d)) for n, d, _ in calls) == sorted((n, str(d)) for n, d in expected)
    # ATen splits an elementwise VML op over threads only from 2048 elements on.
    assert {numel for _, _, numel in calls} == {kernel_warmup.WARMUP_ELEMENTS}
    assert kernel_warmup.WARMUP_ELEMENTS < 2048
    assert kernel_warmup.warm_up_vml() is False
    assert len(calls) == len(expected)


def test_the_warm_up_values_are_in_every_ops_domain():
    """No NaN or inf: an op outside its domain might take a special-case path in VML."""
    for dtype in kernel_warmup.VML_DTYPES:
        x = torch.full((kernel_warmup.WARMUP_ELEMENTS,), 0.25, dtype=dtype)
        for name in kernel_warmup.VML_OPS:
            assert torch.isfinite(getattr(torch, name)(x)).all(), (name, dtype)


def test_importing_the_session_warms_up_before_the_script_computes_anything():
    """In a fresh interpreter: torch alone leaves the kernels cold; importing the session
    (what a training script does at its top) warms them."""
    code = (
        "import torch\n"
        "from snakesweep.session import kernel_warmup\n"
        "print(kernel_warmup._done)\n"
        "from snakesweep.session import TrialSession\n"
        "print(kernel_warmup._done)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]
