"""Losses on the sphere: quadrature-weighted (area-weighted) mean squared error and ensemble CRPS."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forecast.grids import area_weights

__all__ = ["AreaWeightedCRPS", "AreaWeightedMSE", "SpectralCRPS", "degree_amplitudes"]


class AreaWeightedMSE(nn.Module):
    """Mean over batch, steps, channels and the sphere of ``w_lat * w_c * (pred - target)^2``.

    ``w_lat`` are cell areas normalised to mean 1 (so a constant error e gives loss e^2), ``w_c``
    per-channel weights normalised to mean 1. Works for ``(..., C, H, W)`` tensors.
    """

    def __init__(self, latitudes: np.ndarray, channel_weights: np.ndarray | None = None,
                 latitude_weighting: str = "area", zonal_mean_weight: float = 0.0):
        super().__init__()
        self.zonal_mean_weight = zonal_mean_weight
        # "uniform": every grid row alike, which weighs the polar rows of a Gaussian grid several times their area.
        w = area_weights(latitudes) if latitude_weighting == "area" else np.ones(len(latitudes))
        self.register_buffer("lat_weights", torch.as_tensor(w, dtype=torch.float32)[:, None])
        n = None if channel_weights is None else np.asarray(channel_weights, dtype=np.float64)
        cw = torch.ones(1) if n is None else torch.as_tensor(n / n.mean(), dtype=torch.float32)
        self.register_buffer("channel_weights", cw[:, None, None])

    def per_channel(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Area-weighted MSE per channel, averaged over all leading dims: ``(C,)``."""
        se = (pred.float() - target.float()) ** 2 * self.lat_weights
        return se.mean(dim=(-1, -2)).reshape(-1, se.shape[-3]).mean(0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        err = pred.float() - target.float()
        se = err**2 * self.lat_weights * self.channel_weights
        if not self.zonal_mean_weight:
            return se.mean()
        # The error of the zonal means (order m = 0) once more, x zonal_mean_weight: that part of each step's
        # error is what accumulates into a long rollout's mean circulation, and it is a small share of the MSE.
        zm = err.mean(dim=-1, keepdim=True) ** 2 * self.lat_weights * self.channel_weights
        return se.mean() + self.zonal_mean_weight * zm.mean()


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

    def __init__(self, latitudes: np.ndarray, channel_weights: np.ndarray | None = None, alpha: float = 0.95,
                 latitude_weighting: str = "area"):
        super().__init__(latitudes, channel_weights, latitude_weighting)
        self.alpha = alpha

    def pointwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CRPS at every point ``(B, ..., C, H, W)``."""
        return self.fair_pointwise(pred.float(), target.float(), self.alpha)

    @staticmethod
    def fair_pointwise(pred: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
        """The almost fair CRPS of members ``pred`` ``(B, E, ...)`` against ``target`` ``(B, ...)``: ``(B, ...)``."""
        e = pred.shape[1]
        if e < 2:
            raise ValueError(f"an ensemble CRPS needs at least 2 members, got {e}")
        skill = (pred - target.unsqueeze(1)).abs().mean(1)
        i, j = torch.triu_indices(e, e, offset=1)
        pairs = (pred[:, i] - pred[:, j]).abs().sum(1)  # sum over i < j
        c = alpha + (1.0 - alpha) * (e - 1) / e
        return skill - c / (e * (e - 1)) * pairs

    def per_channel(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        crps = self.pointwise(pred, target) * self.lat_weights
        return crps.mean(dim=(-1, -2)).reshape(-1, crps.shape[-3]).mean(0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.pointwise(pred, target) * self.lat_weights * self.channel_weights).mean()


class SpectralCRPS(nn.Module):
    """Fair CRPS of an ensemble on spherical harmonic coefficients, each degree in units of its own amplitude.

    FourCastNet 3 adds a CRPS on the coefficients to the grid-point CRPS so that members keep the right power
    at every scale. On a steep spectrum (the power of ``z500`` falls by six orders of magnitude from degree 2
    to 30) an unweighted score hardly sees the small scales, so here the coefficients of degree ``l`` and
    channel ``c`` are divided by ``a_cl``, the truth's root-mean-square coefficient at that degree: every
    degree then weighs alike, and members that are too smooth or too noisy at a degree pay for it. Real and
    imaginary parts count as separate variables; orders ``m > l`` (zero) are left out.

    Args:
        sht: torch-harmonics ``RealSHT`` of the grid with ``lmax = mmax``.
        amplitude: ``a_cl`` ``(C, lmax)``, in the units of the states (e.g. from :func:`degree_amplitudes`).
        alpha: as :class:`AreaWeightedCRPS`.
    """

    def __init__(self, sht: nn.Module, amplitude: torch.Tensor, alpha: float = 0.95) -> None:
        super().__init__()
        self.sht, self.alpha = sht, alpha
        lmax = amplitude.shape[-1]
        # Degrees the data hold (almost) nothing at (e.g. degree 0 of a conserved field) would turn rounding
        # errors into huge normalised values: they are left out.
        held = amplitude > 1e-6 * amplitude.amax(-1, keepdim=True)  # (C, l)
        inverse = torch.where(held, 1.0 / amplitude.clamp_min(1e-30), torch.zeros_like(amplitude))
        self.register_buffer("inverse_amplitude", inverse.float()[..., None])  # (C, l, 1)
        orders = torch.arange(lmax)[None, :] <= torch.arange(lmax)[:, None]  # (l, m): m <= l
        self.register_buffer("weights", (held[..., None] & orders).float()[..., None])  # (C, l, m, 1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``pred`` ``(B, E, ..., C, H, W)``, ``target`` ``(B, ..., C, H, W)`` -> scalar."""
        def coefficients(x: torch.Tensor) -> torch.Tensor:  # (..., C, l, m, 2) in units of each degree's amplitude
            return torch.view_as_real(self.sht(x.float()) * self.inverse_amplitude)

        crps = AreaWeightedCRPS.fair_pointwise(coefficients(pred), coefficients(target), self.alpha)
        leading = crps[..., 0, 0, 0, 0].numel()  # batch and steps
        return (crps * self.weights).sum() / (self.weights.sum() * 2 * leading)


def degree_amplitudes(states: torch.Tensor, sht: nn.Module) -> torch.Tensor:
    """Root-mean-square coefficient per channel and degree ``(C, lmax)`` of states ``(N, C, H, W)``:
    ``sqrt(P_l / (2 l + 1))`` with ``P_l`` the mean power of degree ``l`` (orders +-m counted)."""
    c = sht(states.double())  # (N, C, l, m) complex
    p = c.real**2 + c.imag**2
    p[..., 1:] *= 2.0
    degree = torch.arange(p.shape[-2], dtype=torch.float64)
    return torch.sqrt(p.sum(-1).mean(0) / (2.0 * degree + 1.0))
