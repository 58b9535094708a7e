"""Regions scores are averaged over, as 0/1 masks on the grid stacked along a ``region`` dimension.

Named regions (WeatherBench2's latitude bands): ``global``; ``tropics`` (20S-20N);
``nh_extratropics`` (20N-90N); ``sh_extratropics`` (90S-20S); ``land`` and ``sea`` from the truth
store's land-sea mask (land where ``lsm >= land_threshold``). Any latitude-longitude box from the
config (:class:`~forecast.evaluate.config.BoxRegion`). A cell belongs to a region when its centre does.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.config import BoxRegion
from forecast.schema import LAT, LON

__all__ = ["NAMED_REGIONS", "REGION", "box_mask", "region_masks"]

REGION = "region"

# name -> (south, north) latitude band; land and sea come from the land-sea mask.
_BANDS: dict[str, tuple[float, float]] = {
    "global": (-90.0, 90.0),
    "tropics": (-20.0, 20.0),
    "nh_extratropics": (20.0, 90.0),
    "sh_extratropics": (-90.0, -20.0),
}
NAMED_REGIONS: tuple[str, ...] = (*_BANDS, "land", "sea")


def box_mask(lat: np.ndarray, lon: np.ndarray, south: float, north: float, west: float, east: float) -> np.ndarray:
    """0/1 mask ``(nlat, nlon)`` of cell centres inside the box (``west > east`` wraps across 0 east)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    in_lat = (lat >= south) & (lat <= north)
    if east - west >= 360.0:
        in_lon = np.ones(lon.shape, dtype=bool)
    else:
        w, e = west % 360.0, east % 360.0
        in_lon = (lon >= w) & (lon <= e) if w <= e else (lon >= w) | (lon <= e)
    return (in_lat[:, None] & in_lon[None, :]).astype(np.float64)


def region_masks(regions: list[str | BoxRegion], lat: np.ndarray, lon: np.ndarray,
                 land_sea_mask: np.ndarray | None = None, land_threshold: float = 0.5) -> xr.DataArray:
    """Masks ``(region, latitude, longitude)`` of ``regions`` on the grid; refuses unknown or empty ones."""
    names, masks = [], []
    for r in regions:
        if isinstance(r, BoxRegion):
            mask = box_mask(lat, lon, *r.lat, *r.lon)
            name = r.name
        elif r in _BANDS:
            mask = box_mask(lat, lon, *_BANDS[r], 0.0, 360.0)
            name = r
        elif r in ("land", "sea"):
            if land_sea_mask is None:
                raise InputError(f"region {r!r} needs a land-sea mask, but the truth store has no static `lsm`; "
                                 "remove it from `regions` or ingest the store with an lsm static field")
            land = np.asarray(land_sea_mask) >= land_threshold
            mask = (land if r == "land" else ~land).astype(np.float64)
            name = r
        else:
            raise InputError(f"unknown region {r!r}: use one of {list(NAMED_REGIONS)} or a box "
                             "{name: ..., lat: [south, north], lon: [west, east]}")
        if not mask.any():
            raise InputError(f"region {name!r} holds no grid cell of this {len(lat)} x {len(lon)} grid")
        names.append(name)
        masks.append(mask)
    return xr.DataArray(np.stack(masks), dims=[REGION, LAT, LON],
                        coords={REGION: names, LAT: np.asarray(lat), LON: np.asarray(lon)})
