"""Losses on the sphere: quadrature-weighted (area-weighted) mean squared error."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forecast.grids import area_weights

__all__ = ["AreaWeightedMSE"]


class AreaWeightedMSE(nn.Module):
    """Mean over batch, steps, channels and the sphere of ``w_lat * w_c * (pred - target)^2``.

    ``w_lat`` are cell areas normalised to mean 1 (so a constant error e gives loss e^2), ``w_c``
    per-channel weights normalised to mean 1. Works for ``(..., C, H, W)`` tensors.
    """

    def __init__(self, latitudes: np.ndarray, channel_weights: np.ndarray | None = None):
        super().__init__()
        self.register_buffer("lat_weights", torch.as_tensor(area_weights(latitudes), dtype=torch.float32)[:, None])
        n = None if channel_weights is None else np.asarray(channel_weights, dtype=np.float64)
        cw = torch.ones(1) if n is None else torch.as_tensor(n / n.mean(), dtype=torch.float32)
        self.register_buffer("channel_weights", cw[:, None, None])

    def per_channel(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Area-weighted MSE per channel, averaged over all leading dims: ``(C,)``."""
        se = (pred.float() - target.float()) ** 2 * self.lat_weights
        return se.mean(dim=(-1, -2)).reshape(-1, se.shape[-3]).mean(0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        se = (pred.float() - target.float()) ** 2 * self.lat_weights * self.channel_weights
        return se.mean()
