"""Spherical-harmonic power spectra with numpy and scipy only (no torch): evaluation never imports model code.

The definition is that of the rollout's stability report (:mod:`forecast.rollout.stability`): with the
orthonormal spherical-harmonic coefficients ``c_lm = integral f Y_lm* dOmega`` of a real field ``f``,
``P_l = |c_l0|**2 + 2 sum_{m>0} |c_lm|**2``, so that ``sum_l P_l`` is the integral of ``f**2`` over the unit
sphere (Parseval), in the field's units squared.

The transform is an FFT in longitude followed by a Legendre quadrature in latitude: Gauss-Legendre weights
on Gaussian grids, Clenshaw-Curtis weights on equiangular grids with both poles (the quadratures of
torch-harmonics' ``legendre-gauss`` and ``equiangular`` grids), and the area weights of
:func:`forecast.grids.area_weights` (scaled to sum to 2) on any other grid. Degrees ``0 .. lmax - 1`` with
``lmax = min(nlat, nlon // 2)``, as in :func:`forecast.models.random_fields.spectral_truncation`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import sph_harm_y

from forecast.grids import area_weights, grid_from_coords

__all__ = ["SphericalSpectrum", "clenshaw_curtis_weights", "quadrature_weights"]


def clenshaw_curtis_weights(n: int) -> np.ndarray:
    """Clenshaw-Curtis weights ``(n,)`` at ``x_j = cos(pi j / (n - 1))`` (both ends included), summing to 2."""
    if n < 2:
        raise ValueError("Clenshaw-Curtis quadrature needs at least 2 points")
    theta = np.pi * np.arange(n) / (n - 1)
    k = np.arange(1, (n - 1) // 2 + 1)
    b = np.where(2 * k == n - 1, 1.0, 2.0)
    w = 1.0 - (b[None, :] * np.cos(2 * k[None, :] * theta[:, None]) / (4 * k[None, :] ** 2 - 1)).sum(1)
    w *= 2.0 / (n - 1)
    w[[0, -1]] /= 2.0
    return w


def quadrature_weights(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Weights ``(nlat,)`` in ``x = sin(latitude)`` summing to 2 for the grid of ``lat`` (degrees), ``lon``."""
    grid = grid_from_coords(lat, lon)
    if grid is not None and grid.type == "legendre-gauss":
        _, w = np.polynomial.legendre.leggauss(lat.size)
        return w[::-1].copy() if lat[0] > lat[-1] else w
    if grid is not None and grid.type == "equiangular":
        return clenshaw_curtis_weights(lat.size)
    w = area_weights(lat)
    return 2.0 * w / w.sum()


class SphericalSpectrum:
    """Power per degree of fields on one grid; the Legendre functions are computed once.

    ``SphericalSpectrum(lat, lon)(x)`` takes ``x`` ``(..., nlat, nlon)`` and returns ``(..., lmax)`` float64.
    """

    def __init__(self, lat: np.ndarray, lon: np.ndarray, lmax: int | None = None):
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        self.nlon = lon.size
        self.lmax = lmax or min(lat.size, lon.size // 2)
        colat = np.deg2rad(90.0 - lat)  # (nlat,)
        w = quadrature_weights(lat, lon)
        deg, order = np.arange(self.lmax), np.arange(self.lmax)
        # Orthonormal Y_lm at longitude 0 (real), zero where m > l: (m, nlat, l), times the weights and 2 pi.
        y = sph_harm_y(deg[None, None, :], order[:, None, None], colat[None, :, None], 0.0).real
        y = np.where(order[:, None, None] <= deg[None, None, :], y, 0.0)
        self._legendre = 2.0 * np.pi * w[None, :, None] * y  # (m, nlat, l)
        # Longitude origin: the FFT's phase refers to lon[0]; a shifted origin changes phases, never power.

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        lead = x.shape[:-2]
        fm = np.fft.rfft(x.reshape(-1, *x.shape[-2:]), axis=-1)[..., : self.lmax] / self.nlon  # (N, nlat, m)
        fm = np.moveaxis(fm, -1, 0)  # (m, N, nlat)
        # One real matrix product per order (BLAS) for the real and the imaginary parts: (m, N, l).
        power = np.matmul(fm.real, self._legendre) ** 2 + np.matmul(fm.imag, self._legendre) ** 2
        power[1:] *= 2.0  # orders +m and -m of a real field
        return power.sum(0).reshape(*lead, self.lmax)
