"""Mixed precision: the autocast dtype a device trains in, and the loss scaling float16 needs.

``amp: auto`` trains in bfloat16 on a CUDA GPU that has it (Ampere and later) and in float16 with dynamic
loss scaling on older ones (V100, T4): float16 gradients below about 6e-8 flush to zero, so the loss is
multiplied by a large scale before the backward pass and the gradients divided by it before the optimiser
step; a step whose gradients overflowed (inf/NaN) is skipped and the scale halved, and after a run of good
steps it doubles again (:class:`torch.amp.GradScaler`). bfloat16 has float32's exponent range and needs no
scaling. On CPUs ``auto`` is full precision.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

__all__ = ["Amp", "amp_dtype", "autocast", "grad_scaler", "optimiser_step"]

Amp = Literal["auto", "off", "bf16", "fp16"]


def amp_dtype(device_type: str, amp: Amp, bf16_supported: bool | None = None) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on a device of ``device_type`` (``cuda``, ``cpu``...), None for full precision.

    ``bf16_supported`` defaults to what the current CUDA device reports.
    """
    if amp == "off" or (amp == "auto" and device_type != "cuda"):
        return None
    if amp == "auto":
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16_supported else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to ``dtype`` on ``device`` (a no-op for None)."""
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for float16 (with it disabled every call passes through unchanged)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def optimiser_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: Iterable[torch.nn.Parameter], grad_clip: float | None) -> tuple[float, bool]:
    """Backward pass and optimiser step through ``scaler``, clipping the true (unscaled) gradients' norm.

    Returns the gradient norm (NaN without clipping) and whether the step was taken: with float16 scaling
    a step whose gradients are not finite is skipped and the scale backs off.
    """
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)  # clip what the optimiser will apply, not the scaled gradients
    params = list(params)
    grad_norm = (torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip
                 else torch.tensor(float("nan")))
    scale = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(opt)
    scaler.update()
    taken = scale is None or scaler.get_scale() >= scale  # the scale only shrinks on a skipped step
    return float(grad_norm), taken
