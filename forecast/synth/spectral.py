"""Spherical-harmonic operators on one grid, built on torch-harmonics' transforms.

Conventions, checked in ``tests/test_synth.py``: grids run north to south and from 0 east;
a vector field is stacked as ``(u, v)`` = (eastward, northward) on dimension -3; spectral
coefficients are torch-harmonics' orthonormal ones, shape ``(..., lmax, mmax)`` with degree
``l`` on dimension -2 and order ``m`` on dimension -1 (``m > l`` entries are zero).

The same ``(lmax, mmax)`` is passed explicitly to every transform, whatever the grid: the model's
Gaussian grid and the output's equiangular grid then share one coefficient layout, so a state
computed on one can be synthesised on the other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch_harmonics as th
from torch import nn
from torch_harmonics.quadrature import precompute_latitudes

__all__ = ["SphericalHarmonics"]


class SphericalHarmonics(nn.Module):
    """Scalar and vector spherical-harmonic transforms and spectral operators on a sphere of radius ``a``.

    ``grid`` is ``"legendre-gauss"`` (the model grid) or ``"equiangular"`` (ERA5's grid with poles).
    ``lmax`` is the number of retained degrees (triangular truncation T = lmax - 1).
    All buffers are float64; transforms run in the dtype of their input.
    """

    def __init__(self, nlat: int, nlon: int, lmax: int, grid: str, radius: float) -> None:
        super().__init__()
        if lmax > nlon // 2 + 1:
            raise ValueError(f"lmax={lmax} exceeds the longitude Nyquist limit of {nlon} points")
        self.nlat, self.nlon, self.lmax, self.grid, self.radius = nlat, nlon, lmax, grid, float(radius)
        kw = dict(lmax=lmax, mmax=lmax, grid=grid)
        self.sht = th.RealSHT(nlat, nlon, **kw).double()
        self.isht = th.InverseRealSHT(nlat, nlon, **kw).double()
        self.vsht = th.RealVectorSHT(nlat, nlon, **kw).double()
        self.ivsht = th.InverseRealVectorSHT(nlat, nlon, **kw).double()

        colat, weights = precompute_latitudes(nlat, grid=grid)
        lat = 0.5 * np.pi - colat.double()  # radians, north to south
        degree = torch.arange(lmax, dtype=torch.float64)[:, None].expand(lmax, lmax)
        eig = degree * (degree + 1.0)  # -a**2 * (eigenvalue of the Laplacian)
        inv_eig = torch.where(eig > 0, 1.0 / eig.clamp(min=1.0), torch.zeros_like(eig))
        order = torch.arange(lmax)
        self.register_buffer("lat", lat)  # (nlat,) radians
        self.register_buffer("lon", torch.arange(nlon, dtype=torch.float64) * (2 * np.pi / nlon))
        # Area weights summing to 4 pi (the quadrature weights of the forward transform).
        self.register_buffer("area", (2 * np.pi / nlon) * weights.double()[:, None].expand(nlat, nlon))
        self.register_buffer("eig", eig.contiguous())  # (lmax, mmax), l (l + 1)
        self.register_buffer("inv_eig", inv_eig.contiguous())  # 1 / (l (l + 1)), 0 at l = 0
        # Valid (l >= m) coefficients: torch-harmonics keeps m > l slots that must stay zero.
        self.register_buffer("valid", (order[:, None] >= order[None, :]))

    # -- transforms -------------------------------------------------------------------------------
    def to_spec(self, field: torch.Tensor) -> torch.Tensor:
        """Grid ``(..., nlat, nlon)`` -> complex coefficients ``(..., lmax, mmax)``."""
        return self.sht(field)

    def to_grid(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex coefficients ``(..., lmax, mmax)`` -> grid ``(..., nlat, nlon)``."""
        return self.isht(spec)

    def vortdiv(self, uv: torch.Tensor) -> torch.Tensor:
        """Winds ``(..., 2, nlat, nlon)`` (m s-1, eastward and northward) -> coefficients of
        relative vorticity and divergence ``(..., 2, lmax, mmax)`` (s-1)."""
        return self.vsht(uv) * (-self.eig / self.radius)

    def curl_div(self, vec: torch.Tensor) -> torch.Tensor:
        """Same operator as :meth:`vortdiv` for any tangent vector field: ``(k . curl A, div A)``."""
        return self.vortdiv(vec)

    def winds(self, vortdiv: torch.Tensor) -> torch.Tensor:
        """Coefficients of vorticity and divergence ``(..., 2, lmax, mmax)`` (s-1) -> winds
        ``(..., 2, nlat, nlon)`` (m s-1, eastward and northward) of the same non-divergent and
        irrotational parts (the global-mean wind is zero on a sphere)."""
        return self.ivsht(vortdiv * (-self.radius * self.inv_eig))

    # -- operators ---------------------------------------------------------------------------------
    def laplacian(self, spec: torch.Tensor) -> torch.Tensor:
        """Laplacian of a scalar in spectral space (units of ``spec`` per m**2)."""
        return spec * (-self.eig / self.radius**2)

    def integrate(self, field: torch.Tensor) -> torch.Tensor:
        """Surface integral over the sphere, ``(..., nlat, nlon)`` -> ``(...)`` (units x m**2)."""
        return (field * self.area).sum(dim=(-2, -1)) * self.radius**2

    def global_mean(self, field: torch.Tensor) -> torch.Tensor:
        """Area-weighted global mean, ``(..., nlat, nlon)`` -> ``(...)``."""
        return (field * self.area).sum(dim=(-2, -1)) / (4 * np.pi)

    def truncate(self, spec: torch.Tensor) -> torch.Tensor:
        """Zero the ``m > l`` slots, so that a coefficient array is a valid triangular state."""
        return spec * self.valid

    def latitudes_deg(self) -> np.ndarray:
        """Grid latitudes in degrees, north to south, shape ``(nlat,)``."""
        return np.rad2deg(self.lat.numpy())

    def longitudes_deg(self) -> np.ndarray:
        """Grid longitudes in degrees east from 0, shape ``(nlon,)``."""
        return np.rad2deg(self.lon.numpy())
