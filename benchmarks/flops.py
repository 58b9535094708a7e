"""FLOP counts of a forward pass and the machine's fp32 matmul peak, for the roofline benchmarks.

``torch.utils.flop_counter.FlopCounterMode`` counts matmuls, convolutions and the einsums that
decompose into them (the SHT's Legendre sums are real einsums, so they are counted), at
``2 * m * n * k`` per matmul whatever the dtype. It does not count FFTs, elementwise work, norms or
activations. :class:`ExtraFlops` adds what it misses that is worth adding:

* FFTs, estimated as ``5 N log2 N`` per complex and ``2.5 N log2 N`` per real transform of ``N`` points;
* complex matmuls (the spectral filters), which cost 8 real flops per multiply-add, not 2: the
  difference, ``6 * m * n * k``, is added.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

_FFT_OPS = {"_fft_r2c": 2.5, "_fft_c2r": 2.5, "_fft_c2c": 5.0}
_MATMUL_OPS = {"mm", "bmm"}


class ExtraFlops(TorchDispatchMode):
    """Counts what ``FlopCounterMode`` misses: FFT flops and the complex part of complex matmuls."""

    def __init__(self) -> None:
        super().__init__()
        self.fft = 0.0
        self.complex_extra = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name not in _FFT_OPS and name not in _MATMUL_OPS:
            # Composite ops (einsum, fft_rfft2, ...) reach a mode whole: decompose them as FlopCounterMode does,
            # so that the FFT and matmul primitives they are made of come through here.
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if name in _FFT_OPS:
            x, dims = args[0], args[1]
            # The real side of the transform holds the N points: the input of r2c, the output of c2r.
            real = out if name == "_fft_c2r" else x
            n = math.prod(real.shape[d] for d in dims)
            self.fft += _FFT_OPS[name] * real.numel() * math.log2(max(n, 2))
        elif name in _MATMUL_OPS and args[0].is_complex():
            a, b = args[0], args[1]
            self.complex_extra += 6.0 * a.numel() * b.shape[-1]  # m*k*(batch) * n
        return out


def count_forward_flops(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """FLOPs of ``model(x)``: counted matmul/conv/einsum, FFT estimate, complex-matmul correction, total."""
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        extra = ExtraFlops()
        with extra:
            model(x)
    counted = float(counter.get_total_flops())
    return {"matmul_conv_einsum": counted, "fft_estimate": extra.fft, "complex_matmul_extra": extra.complex_extra,
            "total": counted + extra.fft + extra.complex_extra}


def matmul_peak(n: int = 2048, repeats: int = 5, device: str = "cpu") -> dict[str, Any]:
    """The best fp32 GFLOP/s of ``torch.matmul`` on two ``n x n`` matrices over ``repeats`` calls (one warm-up)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        torch.matmul(a, b)
        sync()
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {"n": n, "repeats": repeats, "best_s": min(times), "gflops": flops / min(times) / 1e9,
            "median_gflops": flops / sorted(times)[len(times) // 2] / 1e9}
