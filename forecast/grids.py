"""Global latitude-longitude grids: the model grids and the cell geometry used for regridding and weights.

Two model grids are supported, matching torch-harmonics' quadratures:

* ``equiangular``: ``nlat`` equally spaced latitudes from 90 to -90 *including both poles*
  (ERA5's regular grid, e.g. 73 x 144 at 2.5 deg), ``nlon`` longitudes from 0.
* ``legendre-gauss``: ``nlat`` Gaussian latitudes (roots of P_nlat, no poles), ``nlon`` longitudes.

Latitudes are always ordered north to south and longitudes from 0 east, as ERA5 delivers them.
Cell bounds follow the conventions of CDO / WeatherBench2: midpoints between neighbouring centres,
clipped at the poles; for a Gaussian grid the bounds are placed so that each cell's area is exactly
its Gauss-Legendre quadrature weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from forecast.schema import LAT, LON

GridType = Literal["equiangular", "legendre-gauss"]

__all__ = [
    "Grid",
    "GridType",
    "area_weights",
    "gaussian_latitudes",
    "grid_from_coords",
    "latitude_bounds",
    "longitude_bounds",
]


def gaussian_latitudes(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian latitudes (degrees, north to south) and their quadrature weights (summing to 2)."""
    x, w = np.polynomial.legendre.leggauss(nlat)  # ascending in sin(latitude)
    return np.rad2deg(np.arcsin(x[::-1])), w[::-1].copy()


def _is_gaussian(lat: np.ndarray) -> bool:
    n = lat.size
    if n < 2:
        return False
    gauss, _ = gaussian_latitudes(n)
    ordered = np.sort(lat)[::-1]
    return bool(np.allclose(ordered, gauss, atol=1e-3))


def latitude_bounds(lat: np.ndarray) -> np.ndarray:
    """Cell bounds in degrees, shape ``(nlat, 2)`` as (northern, southern) edge for each centre.

    The order of ``lat`` (north first or south first) is kept; the outermost edges are the poles,
    so the cells tile the sphere.
    """
    lat = np.asarray(lat, dtype=np.float64)
    descending = lat.size > 1 and lat[0] > lat[-1]
    north_first = lat if descending else lat[::-1]
    if _is_gaussian(north_first):
        _, w = gaussian_latitudes(north_first.size)
        sin_edges = 1.0 - np.concatenate([[0.0], np.cumsum(w)])
        edges = np.rad2deg(np.arcsin(np.clip(sin_edges, -1.0, 1.0)))
        edges[0], edges[-1] = 90.0, -90.0
    else:
        mid = 0.5 * (north_first[1:] + north_first[:-1])
        edges = np.concatenate([[90.0], mid, [-90.0]])
    bounds = np.stack([edges[:-1], edges[1:]], axis=-1)
    return bounds if descending else bounds[::-1].copy()


def longitude_bounds(lon: np.ndarray) -> np.ndarray:
    """Periodic cell bounds in degrees, shape ``(nlon, 2)`` as (western, eastern) edge."""
    lon = np.asarray(lon, dtype=np.float64)
    if lon.size == 1:
        return np.array([[lon[0] - 180.0, lon[0] + 180.0]])
    nxt = np.concatenate([lon[1:], [lon[0] + 360.0]])
    prv = np.concatenate([[lon[-1] - 360.0], lon[:-1]])
    return np.stack([0.5 * (prv + lon), 0.5 * (lon + nxt)], axis=-1)


def area_weights(lat: np.ndarray) -> np.ndarray:
    """Relative cell areas ``sin(upper) - sin(lower)``, normalised to mean 1 (WeatherBench2's definition)."""
    b = np.deg2rad(latitude_bounds(lat))
    w = np.abs(np.sin(b[:, 0]) - np.sin(b[:, 1]))
    return w / w.mean()


@dataclass(frozen=True)
class Grid:
    """A global regular or Gaussian grid, north to south, longitudes from 0."""

    type: GridType
    nlat: int
    nlon: int

    def __post_init__(self) -> None:
        if self.nlat < 2 or self.nlon < 4:
            raise ValueError(f"grid {self.nlat} x {self.nlon} is too small")

    @property
    def latitudes(self) -> np.ndarray:
        if self.type == "equiangular":
            return np.linspace(90.0, -90.0, self.nlat)
        return gaussian_latitudes(self.nlat)[0]

    @property
    def longitudes(self) -> np.ndarray:
        return np.arange(self.nlon) * (360.0 / self.nlon)

    @property
    def resolution(self) -> float:
        """Longitude spacing in degrees."""
        return 360.0 / self.nlon

    def coords(self) -> dict[str, np.ndarray]:
        return {LAT: self.latitudes, LON: self.longitudes}

    def describe(self) -> str:
        return f"{self.type} {self.nlat} x {self.nlon} ({self.resolution:g} deg)"


def grid_from_coords(lat: np.ndarray, lon: np.ndarray) -> Grid | None:
    """The :class:`Grid` whose coordinates these are (north to south, from 0 east), else ``None``."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    for kind in ("equiangular", "legendre-gauss"):
        try:
            g = Grid(kind, lat.size, lon.size)
        except ValueError:
            return None
        if np.allclose(lat, g.latitudes, atol=1e-4) and np.allclose(lon, g.longitudes, atol=1e-4):
            return g
    return None
