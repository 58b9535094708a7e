"""Isotropic Gaussian random fields on the sphere, and a noise source made of them for stochastic networks.

One synthesis serves three users: initial-condition perturbations of ensembles
(:mod:`forecast.rollout.perturbations`), noise on training inputs (:mod:`forecast.train.noise`) and the
latent noise channels a stochastic SFNO takes at every step (:class:`SphericalNoise`).

Coefficients ``c_lm`` of torch-harmonics' orthonormal real SHT with ``E|c_lm|**2 = C_l`` give a field of
pointwise variance ``sum_l (2 l + 1) C_l / (4 pi)``; :func:`matern_spectrum` scales ``C_l`` so that this is 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from forecast.schema import EARTH_RADIUS

__all__ = ["SphericalNoise", "matern_spectrum", "spectral_truncation", "synthesise_grf"]


def spectral_truncation(nlat: int, nlon: int) -> int:
    """``lmax = mmax`` of every degree the grid resolves in latitude and longitude."""
    return min(nlat, nlon // 2)


def matern_spectrum(lmax: int, length_scale_km: float, smoothness: float) -> np.ndarray:
    """Angular power spectrum ``C_l`` ``(lmax,)`` of unit pointwise variance, ``C_0 = 0``.

    ``C_l ∝ (kappa**2 + l (l + 1)) ** -(smoothness + 1)`` with ``kappa = sqrt(2 smoothness) R / L``:
    the spectral density of a Matérn field of smoothness ``nu`` in 2-D, ``(kappa**2 + k**2) ** -(nu + 1)``,
    with ``k**2 -> l (l + 1) / R**2``. With orthonormal harmonics a field of coefficients with
    ``E|c_lm|**2 = C_l`` has pointwise variance ``sum_l (2 l + 1) C_l / (4 pi)``, set to 1 here.
    """
    l_deg = np.arange(lmax, dtype=np.float64)
    kappa = math.sqrt(2.0 * smoothness) * EARTH_RADIUS / (length_scale_km * 1e3)
    c = (kappa**2 + l_deg * (l_deg + 1.0)) ** -(smoothness + 1.0)
    c[0] = 0.0
    return c / np.sum((2.0 * l_deg + 1.0) * c / (4.0 * math.pi))


def synthesise_grf(z: Tensor, sqrt_cl: Tensor, isht: nn.Module) -> Tensor:
    """Gaussian random fields ``(..., H, W)`` from standard normals ``z`` ``(..., lmax, lmax, 2)`` (degree,
    order, re/im) and ``sqrt(C_l)`` ``(lmax, 1)`` (or any shape broadcasting against ``(..., lmax, 1)``),
    through ``isht`` (an ``InverseRealSHT``). The m = 0 coefficients are real with variance ``C_l``, m > 0
    complex with ``E|c|^2 = C_l`` and orders m > l are zero, so a spectrum of :func:`matern_spectrum` gives
    unit pointwise variance."""
    lmax = z.shape[-2]
    coeffs = torch.complex(z[..., 0], z[..., 1]) / math.sqrt(2.0)  # E|c|^2 = 1 for m > 0
    coeffs[..., 0] = z[..., 0, 0].to(coeffs.dtype)  # m = 0 is real, variance 1
    degree = torch.arange(lmax, device=z.device)[:, None]
    order = torch.arange(lmax, device=z.device)[None, :]
    return isht(coeffs * sqrt_cl * (order <= degree))


class SphericalNoise(nn.Module):
    """``channels`` independent Gaussian random fields, fresh at every call, from torch's global generator.

    The amplitude per degree starts at the Matérn spectrum of :func:`matern_spectrum` (unit pointwise
    variance, no global mean) and, with ``learned``, is a parameter (its log, per channel and degree)
    that training adjusts through the reparameterisation ``field = ISHT(a_l z_lm)``: a CRPS-trained model
    learns how much noise of which scale it needs. The learned amplitudes are per degree only, so they
    do not depend on the grid.

    Args:
        grid_type, nlat, nlon: the grid of the fields.
        channels: number of independent fields.
        lmax: spectral truncation (degrees and orders below it).
        length_scale_km, smoothness: the Matérn spectrum the amplitudes start from.
        learned: whether the amplitudes are trained.
    """

    def __init__(self, grid_type: str, nlat: int, nlon: int, channels: int, lmax: int, length_scale_km: float,
                 smoothness: float, learned: bool = True) -> None:
        super().__init__()
        from torch_harmonics import InverseRealSHT

        self.channels, self.lmax = channels, lmax
        self.isht = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid_type)
        cl = matern_spectrum(lmax, length_scale_km, smoothness)
        # log sqrt(C_l) per channel and degree; degree 0 has C_0 = 0 and stays switched off by the mask.
        log_amp = torch.from_numpy(0.5 * np.log(np.where(cl > 0, cl, 1.0))).float().repeat(channels, 1)
        self.log_amplitude = nn.Parameter(log_amp, requires_grad=learned)  # (channels, lmax)
        self.register_buffer("degree_mask", torch.from_numpy(cl > 0).float(), persistent=False)

    def amplitude(self) -> Tensor:
        """``sqrt(C_l)`` per channel and degree ``(channels, lmax)``."""
        return self.log_amplitude.exp() * self.degree_mask

    def forward(self, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
        """Fields ``(batch, channels, nlat, nlon)``."""
        z = torch.randn(batch, self.channels, self.lmax, self.lmax, 2, device=device)
        # The synthesis in float32 whatever the autocast: half-precision complex transforms are not supported.
        with torch.autocast(device_type=z.device.type, enabled=False):
            field = synthesise_grf(z, self.amplitude()[..., None], self.isht)
        return field.to(dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, lmax={self.lmax}, learned={self.log_amplitude.requires_grad}"
