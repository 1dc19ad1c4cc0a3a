"""Pick MKL's vector-math kernels on one thread before any threaded use (pytorch#188792).

PyTorch's CPU builds hand contiguous float unary ops (``sqrt``, ``exp``, ``log``, ``tanh``
and more) to MKL VML: each intra-op thread calls VML on its chunk of the tensor. The oneMKL
in torch's wheels (2024.2) picks each function's kernel lazily, on that function's first
call. When the first call runs on several threads at once, one thread can run a
low-accuracy kernel for its whole chunk of that one call (errors of ~1000 ulp); the next
call is right. So only a fresh process is hit: a resumed trial's first optimizer step
(Adam's ``sqrt`` of its second moments) could differ from the uninterrupted run's, and
"bit-identical resume" would fail about once in a hundred fresh starts of a process with
two or more threads (measured in docs/ddp.md).

Calling every such function once on a few elements (serial: far below ATen's parallel
grain of 2048 elements) resolves its kernel on this thread first. It costs a few
milliseconds once per process and changes no result of a later call.
"""

from __future__ import annotations

import torch

#: Unary ops that ATen routes to MKL VML (aten/src/ATen/cpu/vml.h), and their neighbours in
#: that header: warming one that VML does not serve is harmless.
VML_OPS = (
    "abs",
    "acos",
    "asin",
    "atan",
    "cos",
    "cosh",
    "erf",
    "erfc",
    "erfinv",
    "exp",
    "expm1",
    "log",
    "log10",
    "log1p",
    "log2",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
)
#: VML keeps one kernel per function and precision; half and bfloat16 ops compute in float.
VML_DTYPES = (torch.float32, torch.float64)
#: Elements per warm-up call: enough for the vector kernel, few enough to stay on one thread.
WARMUP_ELEMENTS = 64

_done = False


def warm_up_vml() -> bool:
    """Call every VML-backed op once, serially; later calls are no-ops.

    Returns whether this call did the work (False when it was already done)."""
    global _done
    if _done:
        return False
    with torch.no_grad():
        for dtype in VML_DTYPES:
            x = torch.full((WARMUP_ELEMENTS,), 0.25, dtype=dtype)  # in every op's domain
            for name in VML_OPS:
                getattr(torch, name)(x)
    _done = True
    return True
