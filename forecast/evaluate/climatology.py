"""Day-of-year x hour climatology of a training store, smoothed over a window of days.

For every channel, day of year ``d`` (1..366) and hour ``h`` the climatology is the mean of all
store fields at hour ``h`` whose day of year lies within ``window_days`` centred on ``d`` (wrapping
over the year end), over the training period only (WeatherBench2's "hourly, day-of-year, sliding
window" climatology). Sums and counts are accumulated block by block over the time axis, so memory
holds the climatology and one block, whatever the length of the store. Stored as its own zarr
``(dayofyear, hour, latitude, longitude)`` per channel.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from functools import partial
from pathlib import Path

import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from scipy.ndimage import uniform_filter1d

from forecast import __version__
from forecast.errors import InputError
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON, TIME, VALID_TIME
from forecast.storage import atomic_directory

__all__ = ["DOY", "HOUR", "build_climatology", "climatology_at", "open_climatology", "write_climatology"]

log = logging.getLogger(__name__)

DOY = "dayofyear"
HOUR = "hour"


def _period(truth: xr.Dataset, start: datetime | None, end: datetime | None) -> tuple[np.datetime64, np.datetime64]:
    t = truth[TIME].values
    lo = start or truth.attrs.get("stats_start") or t[0]
    hi = end or truth.attrs.get("stats_end") or t[-1]
    return np.datetime64(pd.Timestamp(lo), "ns"), np.datetime64(pd.Timestamp(hi), "ns")


def build_climatology(truth: xr.Dataset, variables: list[str] | None = None, start: datetime | None = None,
                      end: datetime | None = None, window_days: int = 61, block: int = 64,
                      progress: bool = False) -> xr.Dataset:
    """The climatology of ``truth`` (:func:`~forecast.evaluate.align.open_truth`) over ``[start, end]``.

    The period defaults to the store's statistics period (its training period), else the whole store.
    Days of year the window leaves without data are NaN.
    """
    variables = variables or list(truth.attrs.get("channels", truth.data_vars))
    lo, hi = _period(truth, start, end)
    times = pd.DatetimeIndex(truth[TIME].values)
    sel = np.flatnonzero((times >= lo) & (times <= hi))
    if sel.size == 0:
        raise InputError(f"no time of the truth store lies in the climatology period {lo} .. {hi}")
    hours = np.unique(times[sel].hour)
    doy = times[sel].day_of_year.values - 1  # 0..365
    key = doy * hours.size + np.searchsorted(hours, times[sel].hour.values)
    shape = (366 * hours.size, truth.sizes[LAT], truth.sizes[LON])
    sums = {v: np.zeros(shape) for v in variables}
    counts = np.zeros(366 * hours.size)
    np.add.at(counts, key, 1.0)
    starts = range(0, sel.size, block)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="climatology", unit="block")
    for b in starts:
        idx = sel[b:b + block]
        chunk = truth[variables].isel({TIME: idx}).compute()
        for v in variables:
            np.add.at(sums[v], key[b:b + block], chunk[v].values.astype(np.float64))
    # Centred running sums over `window_days` days (wrapping over the year), then sum / count.
    c = uniform_filter1d(counts.reshape(366, hours.size), window_days, axis=0, mode="wrap")
    coords = {DOY: np.arange(1, 367), HOUR: hours, LAT: truth[LAT].values, LON: truth[LON].values}
    out = {}
    for v in variables:
        s = uniform_filter1d(sums[v].reshape(366, hours.size, *shape[1:]), window_days, axis=0, mode="wrap")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(c[..., None, None] > 0, s / c[..., None, None], np.nan)
        attrs = {k: truth[v].attrs[k] for k in ("units", "long_name", "standard_name", "short_name", "level")
                 if k in truth[v].attrs}
        out[v] = xr.Variable((DOY, HOUR, LAT, LON), mean.astype(np.float32), attrs)
    ds = xr.Dataset(out, coords=coords)
    ds[DOY].attrs = {"long_name": "day of year (1 = 1 January)"}
    ds[HOUR].attrs = {"long_name": "hour of day (UTC)", "units": "hours"}
    empty = int((c == 0).any(axis=1).sum())
    ds.attrs = {
        "title": "day-of-year x hour climatology written by forecast climatology",
        "truth_store": str(truth.attrs.get("path", "")),
        "period_start": str(np.datetime_as_string(lo, unit="m")),
        "period_end": str(np.datetime_as_string(hi, unit="m")),
        "window_days": int(window_days),
        "n_times": int(sel.size),
        "days_without_data": empty,
        "channels": list(variables),
        "forecast_version": __version__,
        "method": f"mean over the fields at the same hour within a centred {window_days}-day window of days "
                  "of the year (wrapping), over the period",
    }
    if truth.attrs.get("attribution"):
        ds.attrs["attribution"] = truth.attrs["attribution"]
    if empty:
        log.warning("climatology: %d day(s) of the year have no data within the %d-day window", empty, window_days)
    return ds


def write_climatology(clim: xr.Dataset, path: str | Path) -> Path:
    """Write ``clim`` as a consolidated zarr, atomically (replacing an existing one)."""
    path = Path(path)
    with atomic_directory(path) as tmp:
        clim.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(str(tmp))
    return path


def open_climatology(path: str | Path) -> xr.Dataset:
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise InputError(f"no climatology at {path}; build it with `forecast climatology STORE --out {path}`")
    ds = xr.open_zarr(path)
    if DOY not in ds.dims or HOUR not in ds.dims:
        raise InputError(f"{path} is not a climatology (no {DOY} x {HOUR} dimensions)")
    return ds


def climatology_at(clim: xr.Dataset, valid_time: xr.DataArray, variables: list[str],
                   chunks: dict[str, int] | None = None) -> xr.Dataset:
    """The climatology at each ``valid_time`` ``(init_time, lead_time)``: a lazy dataset of those dims.

    Only the (day of year, hour) pairs needed are read; refuses valid times whose hour the climatology
    lacks or whose day it has no data for (a window too narrow for its period).
    """
    missing = [v for v in variables if v not in clim]
    if missing:
        raise InputError(f"the climatology has no {missing} (it has {list(clim.data_vars)})")
    t = pd.DatetimeIndex(valid_time.values.reshape(-1))
    hours = clim[HOUR].values
    hour_pos = np.searchsorted(hours, t.hour.values).clip(0, hours.size - 1)
    bad = hours[hour_pos] != t.hour.values
    if bad.any():
        raise InputError(f"the climatology has hours {hours.tolist()} but the forecast is valid at "
                         f"{sorted(set(t.hour.values[bad].tolist()))} h")
    key = (t.day_of_year.values - 1) * hours.size + hour_pos
    uniq, inverse = np.unique(key, return_inverse=True)
    flat = clim[variables].stack(key=(DOY, HOUR)).drop_vars(["key", DOY, HOUR]).transpose("key", LAT, LON)
    needed = flat.isel(key=uniq).compute()
    for v in variables:
        empty = np.isnan(needed[v].values).all(axis=(1, 2))
        if empty.any():
            days = sorted({int(k // hours.size) + 1 for k in uniq[empty]})
            raise InputError(f"the climatology has no data for variable {v!r} on day(s) of year {days[:6]}; "
                             f"rebuild it with a wider window_days (now {clim.attrs.get('window_days')}) or over "
                             "a period covering those days")
    # Each forecast chunk takes its fields from the (small) table of needed days with numpy indexing.
    inits = (chunks or {}).get(INIT_TIME, -1)
    pos = dask.array.from_array(inverse.reshape(valid_time.shape), chunks=(inits, -1))
    h, w = clim.sizes[LAT], clim.sizes[LON]
    out = xr.Dataset(coords={INIT_TIME: valid_time[INIT_TIME], LEAD_TIME: valid_time[LEAD_TIME],
                             VALID_TIME: valid_time, LAT: clim[LAT], LON: clim[LON]})
    for v in variables:
        table = needed[v].values
        data = pos.map_blocks(partial(_take, table=table), new_axis=[2, 3], chunks=(*pos.chunks, (h,), (w,)),
                              dtype=table.dtype)
        out[v] = xr.Variable((INIT_TIME, LEAD_TIME, LAT, LON), data, clim[v].attrs)
    return out


def _take(pos: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[pos]
