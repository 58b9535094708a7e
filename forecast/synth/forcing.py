"""Forcings of the synthetic climate: calendar, equilibrium heights, orography, drag, stirring.

Everything here is a pure function of coordinates (degrees), a land fraction and the config, or,
for :class:`Stirring`, a seeded torch generator; no files are read.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from forecast.synth.config import ForcingConfig
from forecast.synth.spectral import SphericalHarmonics

__all__ = [
    "RANGES",
    "ScalarTransforms",
    "Stirring",
    "drag_rate",
    "equilibrium_height",
    "season",
    "solar_declination",
    "stirring_envelope",
    "synthetic_orography",
]

TROPICAL_YEAR_DAYS = 365.2422
_EQUINOX = np.datetime64("2000-03-20T07:35", "s")  # March equinox used as the phase origin
OBLIQUITY_DEG = 23.44


def _days_since_equinox(time: np.datetime64) -> float:
    return float((np.datetime64(time, "s") - _EQUINOX) / np.timedelta64(1, "s")) / 86400.0


def solar_declination(time: np.datetime64) -> float:
    """Solar declination (degrees) at ``time``, sinusoidal in the tropical year: +23.44 at the June
    solstice, -23.44 at the December one."""
    phase = 2 * math.pi * _days_since_equinox(time) / TROPICAL_YEAR_DAYS
    return OBLIQUITY_DEG * math.sin(phase)


def season(time: np.datetime64, lag_days: float) -> float:
    """Seasonal phase in [-1, 1]: the solar declination over the obliquity, ``lag_days`` late.

    +1 is the height of (thermal) northern summer, -1 of northern winter.
    """
    return (
        solar_declination(np.datetime64(time, "s") - np.timedelta64(int(lag_days * 86400), "s"))
        / OBLIQUITY_DEG
    )


def equilibrium_height(
    lat: np.ndarray, lon: np.ndarray, land: np.ndarray, phase: float, cfg: ForcingConfig
) -> np.ndarray:
    """Radiative-equilibrium height anomaly (m), shape ``(nlat, nlon)``, towards which the layer relaxes.

    ``lat``, ``lon`` in degrees (``nlat``,), (``nlon``,); ``land`` a smooth land fraction on that grid;
    ``phase`` from :func:`season`. Zonal part: per hemisphere a drop from the thermal equator
    (at ``thermal_equator_factor`` x declination, so the maximum follows the sun) to the pole,
    stronger in winter, shared between a broad sin^2 profile and a tanh front at a latitude that moves
    equatorward in winter. Zonally varying part: land higher than sea in summer, lower in winter.
    The global mean is not removed here.
    """
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))[:, None]  # (nlat, 1)
    lat_s = np.deg2rad(cfg.thermal_equator_factor * OBLIQUITY_DEG * phase)
    width = np.deg2rad(cfg.jet_width)
    height = np.zeros((phi.shape[0], np.asarray(lon).size))
    for sign in (1.0, -1.0):
        winter = -sign * phase  # 1 in the depth of this hemisphere's winter
        drop = cfg.pole_drop + cfg.pole_drop_seasonal * winter + (cfg.south_extra_drop if sign < 0 else 0.0)
        # Broad part: 0 at the thermal equator, 1 at this hemisphere's pole, flat at both ends.
        span = 0.5 * np.pi - sign * lat_s
        x = np.clip(sign * (phi - lat_s) / span, 0.0, 1.0)
        broad = np.sin(0.5 * np.pi * x) ** 2
        jet_lat = np.deg2rad(cfg.jet_latitude - cfg.jet_shift * winter)
        front = 0.5 * (1.0 + np.tanh((sign * phi - jet_lat) / width))
        height -= drop * ((1.0 - cfg.jet_fraction) * broad + cfg.jet_fraction * front)
    # sin(2 lat): largest contrast in mid-latitudes, opposite signs in the two hemispheres.
    height += cfg.land_contrast * phase * np.sin(2 * phi) * land
    return height


# Mountain ranges as polylines (lat, lon east) with a peak height (m) and a Gaussian half-width
# (degrees of great circle); placed to follow the real ranges at the scale a T31 model resolves.
RANGES: tuple[tuple[str, tuple[tuple[float, float], ...], float, float], ...] = (
    ("Alaska", ((61.0, 208.0), (63.0, 215.0), (60.0, 222.0)), 2200.0, 3.5),
    ("Rockies", ((58.0, 232.0), (50.0, 243.0), (44.0, 250.0), (37.0, 253.0)), 3000.0, 4.0),
    ("Mexican plateau", ((30.0, 252.0), (22.0, 258.0), (17.0, 263.0)), 2200.0, 3.5),
    (
        "Andes",
        ((8.0, 287.0), (-4.0, 281.0), (-17.0, 291.0), (-30.0, 290.0), (-45.0, 288.0), (-52.0, 287.0)),
        5000.0,
        3.5,
    ),
    ("Tibet", ((34.0, 78.0), (33.0, 86.0), (33.0, 95.0), (31.0, 100.0)), 5800.0, 5.0),
    ("Tian Shan-Altai", ((42.0, 76.0), (45.0, 86.0), (48.0, 92.0)), 2800.0, 3.5),
    ("Mongolia", ((47.0, 96.0), (46.0, 106.0)), 1500.0, 5.0),
    ("Iran-Anatolia", ((39.0, 33.0), (37.0, 45.0), (32.0, 53.0), (33.0, 62.0)), 1800.0, 3.5),
    ("Alps", ((46.0, 7.0), (47.0, 13.0)), 1800.0, 3.5),
    ("Ethiopia", ((13.0, 38.0), (8.0, 39.0)), 2800.0, 3.5),
    ("East Africa", ((2.0, 36.0), (-8.0, 34.0), (-15.0, 32.0)), 1500.0, 4.0),
    ("Southern Africa", ((-20.0, 25.0), (-28.0, 28.0)), 1300.0, 5.0),
    ("Scandinavia", ((60.0, 7.0), (66.0, 15.0), (69.0, 20.0)), 1200.0, 3.5),
    ("Brazilian highlands", ((-12.0, 313.0), (-20.0, 315.0)), 900.0, 4.0),
    ("Great Dividing Range", ((-17.0, 145.0), (-30.0, 151.0), (-37.0, 147.0)), 900.0, 3.5),
    ("Greenland", ((66.0, 315.0), (72.0, 320.0), (78.0, 318.0)), 3300.0, 6.0),
    ("East Antarctica", ((-80.0, 30.0), (-82.0, 80.0), (-78.0, 130.0)), 3800.0, 12.0),
    ("West Antarctica", ((-80.0, 250.0), (-78.0, 280.0)), 1800.0, 7.0),
)


def _great_circle_deg(lat1: np.ndarray, lon1: np.ndarray, lat2: float, lon2: float) -> np.ndarray:
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dlon = np.deg2rad(lon1 - lon2)
    c = np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(dlon)
    return np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0)))


def synthetic_orography(lat: np.ndarray, lon: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Surface height (m), shape ``(nlat, nlon)``: Gaussian ridges along :data:`RANGES`, times ``land``.

    Each range is a ridge whose height decays as exp(-(d / half-width)^2) with the great-circle
    distance ``d`` to its polyline; overlapping ranges take the maximum. Not smoothed: project it
    on the model's truncation before use.
    """
    la = np.asarray(lat, dtype=np.float64)[:, None]
    lo = np.asarray(lon, dtype=np.float64)[None, :]
    height = np.zeros((la.shape[0], lo.shape[1]))
    for _, points, peak, halfwidth in RANGES:
        dist = np.full(height.shape, np.inf)
        for (a_lat, a_lon), (b_lat, b_lon) in zip(points[:-1], points[1:], strict=True):
            n = max(2, int(np.hypot(b_lat - a_lat, b_lon - a_lon) / 0.5) + 1)
            for t in np.linspace(0.0, 1.0, n):  # densify the segment every ~0.5 deg
                p_lat, p_lon = a_lat + t * (b_lat - a_lat), a_lon + t * (b_lon - a_lon)
                dist = np.minimum(dist, _great_circle_deg(la, lo, p_lat, p_lon))
        height = np.maximum(height, peak * np.exp(-((dist / halfwidth) ** 2)))
    return height * land


def drag_rate(land: np.ndarray, ocean_days: float, land_days: float) -> np.ndarray:
    """Rayleigh drag rate (s-1) blended by land fraction ``land`` (any shape)."""
    land = np.clip(land, 0.0, 1.0)
    return ((1.0 - land) / ocean_days + land / land_days) / 86400.0


def stirring_envelope(lat: np.ndarray, land: np.ndarray, phase: float, cfg: ForcingConfig) -> np.ndarray:
    """Weights ``(nlat, nlon)`` of the stirring: two storm-track belts, stronger in winter and, by
    ``stirring_ocean_weight``, over sea than over land (``land``: smooth land fraction ``(nlat, nlon)``)."""
    phi = np.asarray(lat, dtype=np.float64)[:, None]
    env = np.zeros_like(phi)
    for sign in (1.0, -1.0):
        winter = -sign * phase
        centre = cfg.stirring_latitude - 0.5 * cfg.jet_shift * winter
        belt = np.exp(-(((sign * phi - centre) / cfg.stirring_width) ** 2))
        env += (1.0 + cfg.stirring_seasonal * winter) * belt
    # Normalised per latitude circle, so the ocean weight moves stirring along a belt, not between belts.
    weight = 1.0 + cfg.stirring_ocean_weight * (1.0 - 2.0 * np.clip(land, 0.0, 1.0))
    return env * weight / weight.mean(axis=-1, keepdims=True)


class ScalarTransforms(Protocol):
    """Scalar spherical-harmonic transforms on the model grid (:class:`SphericalHarmonics` or a faster
    implementation of the same maths)."""

    def to_spec(self, field: torch.Tensor) -> torch.Tensor: ...

    def to_grid(self, spec: torch.Tensor) -> torch.Tensor: ...


class Stirring:
    """Red-noise vorticity forcing in a band of total wavenumbers, from a seeded generator.

    The spectral pattern follows an AR(1) process of decorrelation ``tau_days`` whose grid field
    has unit RMS and which drifts east at ``drift`` (rad s-1), so the eddies it excites travel
    rather than stand; :meth:`forcing` shapes it by a latitude envelope and scales it to s-2, with
    ``transforms`` (default ``sph``'s own).
    """

    def __init__(
        self,
        sph: SphericalHarmonics,
        degrees: tuple[int, int],
        tau_days: float,
        seed: int,
        drift: float = 0.0,
        transforms: ScalarTransforms | None = None,
    ) -> None:
        self.sph = sph
        self.transforms: ScalarTransforms = sph if transforms is None else transforms
        lo, hi = degrees
        degree = torch.arange(sph.lmax)[:, None]
        self.band = (degree >= lo) & (degree <= min(hi, sph.lmax - 1)) & sph.valid  # (lmax, mmax)
        order = torch.arange(sph.lmax)[None, :]
        # Real-field variance (1/4pi) sum_l (2l + 1) E|c|^2 for orthonormal harmonics: m > 0 counts twice.
        count = float((self.band * torch.where(order > 0, 2.0, 1.0)).sum())
        self.scale = math.sqrt(4 * math.pi / max(count, 1.0))
        self.tau = tau_days * 86400.0
        self.drift = float(drift)  # rad s-1: the pattern moves east like eddies steered by the jets
        self.generator = torch.Generator().manual_seed(int(seed))
        self.state = self._noise()

    def _noise(self) -> torch.Tensor:
        shape = self.band.shape
        re = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        im = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        im[:, 0] = 0.0
        amp = torch.where(torch.arange(shape[1]) > 0, math.sqrt(0.5), 1.0)  # E|c|^2 = 1 for every slot
        return torch.complex(re * amp, im * amp) * self.band * self.scale

    def advance(self, seconds: float) -> None:
        """Move the AR(1) pattern on by ``seconds``."""
        r = math.exp(-seconds / self.tau)
        # f(lon - drift t) has coefficients c_m exp(-i m drift t): a rigid eastward translation.
        order = torch.arange(self.sph.lmax, dtype=torch.float64)
        shift = torch.exp(-1j * order * (self.drift * seconds))
        self.state = r * self.state * shift + math.sqrt(1.0 - r * r) * self._noise()

    def forcing(self, envelope: torch.Tensor, amplitude: float) -> torch.Tensor:
        """Spectral vorticity tendency (s-2), ``(lmax, mmax)``, for a grid ``envelope`` ``(nlat, nlon)``."""
        t = self.transforms
        return t.to_spec(amplitude * envelope * t.to_grid(self.state))
