"""Losses on the sphere: quadrature-weighted (area-weighted) mean squared error and ensemble CRPS."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forecast.grids import area_weights

__all__ = ["AreaWeightedCRPS", "AreaWeightedMSE"]


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


class AreaWeightedCRPS(AreaWeightedMSE):
    """Almost fair CRPS of an ensemble (Lang et al. 2024, AIFS-CRPS), area- and channel-weighted like the MSE.

    For members ``x_1..x_E`` and truth ``y`` at one point::

        CRPS = mean_i |x_i - y| - c / (E (E - 1)) * sum_{i<j} |x_i - x_j|,   c = alpha + (1 - alpha) (E - 1) / E

    ``alpha = 1`` is the fair CRPS (an unbiased estimate of the CRPS of the distribution the members are
    drawn from, whatever ``E``); ``alpha = 0`` the CRPS of the ``E``-member empirical distribution. A value
    just below 1 keeps the fair score's calibration while penalising members that collapse onto each
    other, which the fair score alone does not once they are close (its gradient vanishes there).
    ``pred`` ``(B, E, ..., C, H, W)``, ``target`` ``(B, ..., C, H, W)``; ``E >= 2``.
    """

    def __init__(self, latitudes: np.ndarray, channel_weights: np.ndarray | None = None, alpha: float = 0.95):
        super().__init__(latitudes, channel_weights)
        self.alpha = alpha

    def pointwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CRPS at every point ``(B, ..., C, H, W)``."""
        e = pred.shape[1]
        if e < 2:
            raise ValueError(f"an ensemble CRPS needs at least 2 members, got {e}")
        pred, target = pred.float(), target.float()
        skill = (pred - target.unsqueeze(1)).abs().mean(1)
        i, j = torch.triu_indices(e, e, offset=1)
        pairs = (pred[:, i] - pred[:, j]).abs().sum(1)  # sum over i < j
        c = self.alpha + (1.0 - self.alpha) * (e - 1) / e
        return skill - c / (e * (e - 1)) * pairs

    def per_channel(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        crps = self.pointwise(pred, target) * self.lat_weights
        return crps.mean(dim=(-1, -2)).reshape(-1, crps.shape[-3]).mean(0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.pointwise(pred, target) * self.lat_weights * self.channel_weights).mean()
