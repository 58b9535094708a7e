"""Initial conditions for a rollout, read from a store written by ``forecast ingest``.

Any ingested store on the model grid will do, including one ingested with ``stats: null`` from a
user's own ERA5 file (it holds initial conditions but no normalisation statistics: those come from
the model package). The store is checked against the package (channels, units, grid, time step) so
that a mismatch is refused with a message saying how to ingest a matching store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.ingest.validate import fmt_time
from forecast.schema import LAT, LON, TIME
from forecast.train.package import ModelPackage

__all__ = ["InitialConditions", "open_initial_conditions"]

# Attributes of a store's channel variable worth carrying into a forecast product (not GRIB_* ones,
# which describe the source grid, not the model grid).
_CARRIED_ATTRS = ("units", "long_name", "standard_name", "short_name", "level")


class InitialConditions:
    """Lazy access to a store's channels at chosen times: ``read(times)`` -> ``(N, C, H, W)`` float32.

    Values are in physical units (the store's, checked equal to the package's).
    """

    def __init__(self, path: Path, dataset: xr.Dataset, channels: list[str]):
        self.path = path
        self.dataset = dataset
        self.channels = channels
        self.times: np.ndarray = dataset[TIME].values.astype("datetime64[ns]")
        self.attrs: dict[str, Any] = dict(dataset.attrs)

    def channel_attrs(self) -> list[dict[str, Any]]:
        """CF attributes of each channel (units, long_name, standard_name, short_name, level)."""
        return [{k: self.dataset[c].attrs[k] for k in _CARRIED_ATTRS if k in self.dataset[c].attrs}
                for c in self.channels]

    def indices(self, times: np.ndarray) -> np.ndarray:
        """Store indices of ``times``; a time the store lacks is an error naming it."""
        times = np.asarray(times, dtype="datetime64[ns]")
        idx = np.searchsorted(self.times, times).clip(0, max(self.times.size - 1, 0))
        missing = times[(self.times.size == 0) | (self.times[idx] != times)]
        if missing.size:
            span = f"{fmt_time(self.times[0])} .. {fmt_time(self.times[-1])}" if self.times.size else "no times"
            listed = ", ".join(fmt_time(t) for t in np.unique(missing)[:5])
            raise InputError(f"{self.path}: initial-condition time(s) {listed} are not in the store ({span}); "
                             "ingest a store that holds them (lagged ensembles and bred vectors also need the "
                             "earlier analyses they start from)")
        return idx

    def read(self, times: np.ndarray) -> np.ndarray:
        """States ``(N, C, H, W)`` float32 at ``times`` ``(N,)`` (repeated times are read once)."""
        unique, inverse = np.unique(np.asarray(times, dtype="datetime64[ns]"), return_inverse=True)
        idx = self.indices(unique)
        fields = np.stack([self.dataset[c].isel({TIME: idx}).transpose(TIME, LAT, LON).values for c in self.channels],
                          axis=1).astype(np.float32)  # (T_unique, C, H, W)
        return fields[inverse.reshape(-1)]

    def sample_times(self, n: int) -> np.ndarray:
        """Up to ``n`` store times spread evenly (the data reference of the stability report)."""
        pick = np.unique(np.linspace(0, self.times.size - 1, min(n, self.times.size)).round().astype(int))
        return self.times[pick]


def open_initial_conditions(path: str | Path, package: ModelPackage) -> InitialConditions:
    """Open store ``path`` and check it matches ``package`` (channels, units, grid, time step)."""
    path = Path(path)
    if not (path / "zarr.json").exists() and not (path / ".zgroup").exists():
        raise InputError(f"{path} is not a complete store; turn ERA5 files into one with `forecast ingest` "
                         "(a config with `stats: null` on the model grid stores initial conditions only)")
    ds = xr.open_zarr(path)
    how = (f"ingest it with grid: {{type: {package.grid_type}, nlat: {len(package.latitudes)}, "
           f"nlon: {len(package.longitudes)}}} and channels {package.channels}")
    missing = [c for c in package.channels if c not in ds]
    if missing:
        raise InputError(f"{path}: channels {missing} the model needs are not in the store; {how}")
    if TIME not in ds.dims:
        raise InputError(f"{path}: has no `{TIME}` dimension; was it written by `forecast ingest`?")
    lat, lon = ds[LAT].values, ds[LON].values
    if lat.shape != package.latitudes.shape or lon.shape != package.longitudes.shape or not (
        np.allclose(lat, package.latitudes, atol=1e-4) and np.allclose(lon, package.longitudes, atol=1e-4)
    ):
        raise InputError(f"{path}: grid {lat.size} x {lon.size} ({ds.attrs.get('grid_type', '?')}) differs from the "
                         f"model's {package.latitudes.size} x {package.longitudes.size} ({package.grid_type}); {how}")
    for c, units in zip(package.channels, package.units, strict=True):
        got = str(ds[c].attrs.get("units", "1"))
        if got != units:
            raise InputError(f"{path}: channel {c} is in {got!r}, the model's in {units!r}; {how}")
    step = ds.attrs.get("time_step")
    if step is not None and pd.Timedelta(step) != pd.Timedelta(package.time_step):
        raise InputError(f"{path}: time step {step} differs from the model's {package.time_step}")
    return InitialConditions(path, ds, list(package.channels))
