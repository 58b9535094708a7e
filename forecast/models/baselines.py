"""Reference forecasts behind the network interface ``(B, C_in, nlat, nlon) -> (B, C_out, nlat, nlon)``.

Neither has trainable parameters; skip them when building an optimiser (``count_parameters == 0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Climatology", "Persistence"]


class Persistence(nn.Module):
    """The forecast is the current state: ``(B, C_in, H, W) -> (B, len(prognostic_indices), H, W)``.

    Args:
        prognostic_indices: for each output channel, the input channel holding that variable at the
            initial time (``range(C_out)`` when the assembled input starts with the prognostic channels).

    Inside a wrapper that predicts residuals (output = input + network), persistence is a network
    that outputs zeros; this module is the *full-state* forecast, applied without such a wrapper
    (or with the wrapper's de-normalisation only).
    """

    def __init__(self, prognostic_indices: Sequence[int]) -> None:
        super().__init__()
        indices = [int(i) for i in prognostic_indices]
        if not indices or min(indices) < 0:
            raise ValueError(f"prognostic_indices must be non-empty and non-negative, got {indices}")
        # A buffer follows the module to the device; not persistent, as it is set by the constructor.
        self.register_buffer("prognostic_indices", torch.tensor(indices, dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if int(self.prognostic_indices.max()) >= x.shape[1]:
            raise ValueError(f"input has {x.shape[1]} channels; persistence needs {self.prognostic_indices.tolist()}")
        # .to(): a model without parameters is easily left on the CPU while its inputs move.
        return x.index_select(1, self.prognostic_indices.to(x.device))  # (B, C_out, H, W), a copy


class Climatology(nn.Module):
    """The forecast is the climatology of the valid time: ``(B, C_in, H, W) -> (B, C_out, H, W)``.

    The climatology depends on the valid time, which the network interface does not carry, so the
    caller passes it: ``model(x, climatology=c)`` with ``c`` of shape ``(B, C_out, H, W)`` (one per
    sample's valid time) or ``(C_out, H, W)`` (the same for all), in the same units/normalisation as
    the forecast. Without the argument the fixed field given at construction (e.g. the all-time
    mean, a persistent buffer) is used; if there is none, calling without the argument is an error.

    Args:
        out_channels: channels of the forecast (checked against the climatology).
        climatology: optional default field ``(C_out, H, W)``.
    """

    requires_climatology = True  # tells a wrapper to pass ``climatology=`` for the valid time

    def __init__(self, out_channels: int, climatology: Tensor | None = None) -> None:
        super().__init__()
        self.out_channels = out_channels
        if climatology is not None and (climatology.ndim != 3 or climatology.shape[0] != out_channels):
            raise ValueError(f"climatology must be (C_out={out_channels}, H, W), got {tuple(climatology.shape)}")
        self.register_buffer("default", None if climatology is None else climatology.detach().clone())

    def forward(self, x: Tensor, climatology: Tensor | None = None) -> Tensor:
        clim = self.default if climatology is None else climatology
        if clim is None:
            raise ValueError("Climatology needs the valid-time climatology: call model(x, climatology=c)")
        if clim.ndim == 3:
            clim = clim.unsqueeze(0)  # (1, C_out, H, W)
        b = x.shape[0]
        if clim.shape[1] != self.out_channels or clim.shape[-2:] != x.shape[-2:] or clim.shape[0] not in (1, b):
            raise ValueError(
                f"climatology {tuple(clim.shape)} does not fit input {tuple(x.shape)} with {self.out_channels} channels"
            )
        # A fresh tensor on the input's device and dtype, so callers may modify it in place.
        return clim.to(device=x.device, dtype=x.dtype).expand(b, -1, -1, -1).clone()  # (B, C_out, H, W)
