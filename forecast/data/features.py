"""Known-in-advance inputs: solar geometry and position encodings on the model grid.

These are the forcings a forecaster receives beside its state at every step; all are exact
functions of valid time and position, so they are recomputed at each rollout step rather than stored.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FORCING_NAMES",
    "POSITION_NAMES",
    "cos_zenith",
    "forcings",
    "position_features",
    "static_inputs",
    "year_phase",
]

FORCING_NAMES = ("cos_zenith", "sin_year", "cos_year")
POSITION_NAMES = ("sin_lat", "cos_lat", "sin_lon", "cos_lon")
_TROPICAL_YEAR_DAYS = 365.2422


def year_phase(times: np.ndarray) -> np.ndarray:
    """Fraction of the tropical year since 2000-01-01T00 (0 at the start of 2000), shape ``(T,)``."""
    days = (np.asarray(times, dtype="datetime64[ns]") - np.datetime64("2000-01-01T00:00", "ns")) / np.timedelta64(
        1, "D"
    )
    return np.mod(days / _TROPICAL_YEAR_DAYS, 1.0)


def cos_zenith(times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle, shape ``(T, nlat, nlon)``; negative at night.

    Uses the declination and the equation-of-time-free hour angle of Spencer-style low-order
    formulas (accurate to ~1 deg), enough for a learned model to see day, night and season.
    """
    t = np.asarray(times, dtype="datetime64[ns]")
    day_of_year = (t - t.astype("datetime64[Y]")) / np.timedelta64(1, "D")  # fractional, 0 at Jan 1 00 UTC
    utc_hours = (t - t.astype("datetime64[D]")) / np.timedelta64(1, "h")
    gamma = 2.0 * np.pi * day_of_year / 365.0
    decl = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma) - 0.006758 * np.cos(2 * gamma)
            + 0.000907 * np.sin(2 * gamma) - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))[None, :, None]
    hour_angle = np.deg2rad(15.0 * (utc_hours[:, None, None] - 12.0) + np.asarray(lon, dtype=np.float64)[None, None, :])
    d = decl[:, None, None]
    return np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.cos(hour_angle)


def forcings(times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Time-dependent forcings ``(T, len(FORCING_NAMES), nlat, nlon)`` float32 at valid ``times``."""
    cz = cos_zenith(times, lat, lon)
    phase = 2.0 * np.pi * year_phase(times)[:, None, None]
    ones = np.ones_like(cz)
    return np.stack([cz, np.sin(phase) * ones, np.cos(phase) * ones], axis=1).astype(np.float32)


def position_features(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Static position encodings ``(len(POSITION_NAMES), nlat, nlon)`` float32."""
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))[:, None]
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))[None, :]
    shape = (phi.shape[0], lam.shape[1])
    return np.stack([np.broadcast_to(np.sin(phi), shape), np.broadcast_to(np.cos(phi), shape),
                     np.broadcast_to(np.sin(lam), shape), np.broadcast_to(np.cos(lam), shape)]).astype(np.float32)


def static_inputs(static: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Network-ready static inputs ``(S + len(POSITION_NAMES), nlat, nlon)`` float32.

    Each static field (land-sea mask, orography, ...) is standardised by its own area-weighted mean
    and standard deviation, so orography in metres and a 0-1 mask enter on the same scale; position
    encodings follow.
    """
    from forecast.grids import area_weights

    w = area_weights(lat)[:, None]
    out = []
    for field in np.asarray(static, dtype=np.float64):
        mean = (field * w).mean()
        std = np.sqrt(((field - mean) ** 2 * w).mean())
        out.append((field - mean) / std if std > 0 else field - mean)
    stacked = np.stack(out) if out else np.zeros((0, len(lat), len(lon)))
    return np.concatenate([stacked, position_features(lat, lon)]).astype(np.float32)
