"""Day-of-year x hour climatology of a training store, smoothed over a window of days.

For every channel, day of year ``d`` (1..366) and hour ``h`` the climatology is the mean of all
store fields at hour ``h`` whose day of year lies within ``window_days`` centred on ``d`` (wrapping
over the year end), over the training period only (WeatherBench2's "hourly, day-of-year, sliding
window" climatology). Sums and counts are accumulated block by block over the time axis, one variable
at a time, so memory holds the climatology, one variable's sums and one block, whatever the length of
the store. Stored as its own zarr ``(dayofyear, hour, latitude, longitude)`` per channel, in chunks of
whole days. :func:`climatology_at` serves it at a forecast's valid times lazily, each chunk of initial
times reading only the days it needs.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from pathlib import Path

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from scipy.ndimage import uniform_filter1d

from forecast import __version__
from forecast.errors import InputError
from forecast.evaluate.align import spread, take_rows
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON, TIME, VALID_TIME
from forecast.storage import atomic_directory

__all__ = ["DOY", "HOUR", "build_climatology", "climatology_at", "open_climatology", "write_climatology"]

log = logging.getLogger(__name__)

DOY = "dayofyear"
HOUR = "hour"
# Target size of one chunk of a written climatology (bytes): a few days of fields, read together.
CHUNK_BYTES = 4 * 2**20


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
    counts = np.zeros(366 * hours.size)
    np.add.at(counts, key, 1.0)
    # Centred running sums over `window_days` days (wrapping over the year), then sum / count.
    c = uniform_filter1d(counts.reshape(366, hours.size), window_days, axis=0, mode="wrap")
    coords = {DOY: np.arange(1, 367), HOUR: hours, LAT: truth[LAT].values, LON: truth[LON].values}
    starts = range(0, sel.size, block)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(variables) * len(starts), desc="climatology", unit="block")
    out = {}
    for v in variables:
        # One variable at a time: memory holds one variable's float64 sums (366 x hours fields) and the result.
        sums = np.zeros((366 * hours.size, truth.sizes[LAT], truth.sizes[LON]))
        for b in starts:
            np.add.at(sums, key[b:b + block], truth[v].isel({TIME: sel[b:b + block]}).values.astype(np.float64))
            if bar is not None:
                bar.update()
        mean = _window_mean(sums.reshape(366, hours.size, *sums.shape[1:]), c, window_days)
        attrs = {k: truth[v].attrs[k] for k in ("units", "long_name", "standard_name", "short_name", "level")
                 if k in truth[v].attrs}
        out[v] = xr.Variable((DOY, HOUR, LAT, LON), mean, attrs)
    if bar is not None:
        bar.close()
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


def _window_mean(sums: np.ndarray, counts: np.ndarray, window_days: int) -> np.ndarray:
    """float32 ``(366, hours, lat, lon)``: the centred ``window_days`` running sums (wrapping) of ``sums`` over
    those of ``counts`` ``(366, hours)``, NaN where the window holds no field. Hour by hour, so the float64
    temporaries are one hour's."""
    out = np.empty(sums.shape, dtype=np.float32)
    for h in range(sums.shape[1]):
        s = uniform_filter1d(sums[:, h], window_days, axis=0, mode="wrap")
        c = np.broadcast_to(counts[:, h, None, None], s.shape)
        np.divide(s, c, out=s, where=c > 0)  # in place: one hour's float64 temporary, not three
        s[c == 0] = np.nan
        out[:, h] = s
    return out


def write_climatology(clim: xr.Dataset, path: str | Path) -> Path:
    """Write ``clim`` as a consolidated zarr, atomically (replacing an existing one), in chunks of whole days
    (every hour, the whole grid) of about :data:`CHUNK_BYTES`: evaluation reads the days its valid times need."""
    path = Path(path)
    encoding = {}
    for v in clim.data_vars:
        day_bytes = clim[v].dtype.itemsize * clim.sizes[HOUR] * clim.sizes[LAT] * clim.sizes[LON]
        days = int(max(1, min(clim.sizes[DOY], CHUNK_BYTES // day_bytes)))
        encoding[v] = {"chunks": [days if d == DOY else clim.sizes[d] for d in clim[v].dims]}
    with atomic_directory(path) as tmp:
        clim.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3, encoding=encoding)
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

    Each chunk of initial times (``chunks[INIT_TIME]``, default one chunk) reads, when it is computed, only
    the (day of year, hour) fields its own valid times need, from ``clim`` as it is: a climatology file
    (:func:`open_climatology`) is never held whole, and an in-memory one puts only those fields in the
    chunk's task. Refuses valid times whose hour the climatology lacks or whose day it has no data for (a
    window too narrow for its period).
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
    key = ((t.day_of_year.values - 1) * hours.size + hour_pos).reshape(valid_time.shape)  # (init_time, lead_time)
    _check_days(clim, variables, np.unique(key), hours.size)
    inits = (chunks or {}).get(INIT_TIME, -1)
    edges = np.cumsum([0, *dask.array.core.normalize_chunks((inits, -1), key.shape)[0]])
    h, w = clim.sizes[LAT], clim.sizes[LON]
    out = xr.Dataset(coords={INIT_TIME: valid_time[INIT_TIME], LEAD_TIME: valid_time[LEAD_TIME],
                             VALID_TIME: valid_time, LAT: clim[LAT], LON: clim[LON]})
    for v in variables:
        field = clim[v].transpose(DOY, HOUR, LAT, LON).data  # dask (a file) or numpy (built in memory)
        pieces = [_chunk_at(field, key[a:b], hours.size, (h, w)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        out[v] = xr.Variable((INIT_TIME, LEAD_TIME, LAT, LON), dask.array.concatenate(pieces, axis=0), clim[v].attrs)
    return out


def _check_days(clim: xr.Dataset, variables: list[str], keys: np.ndarray, n_hours: int) -> None:
    """Refuse (day of year, hour) ``keys`` (``(day - 1) * n_hours + hour index``) whose field is all NaN.

    One reduction over the days the keys need, chunk by chunk (a file is not held whole)."""
    days = np.unique(keys // n_hours)
    empty = clim[variables].isel({DOY: days}).isnull().all([LAT, LON]).transpose(DOY, HOUR).compute()
    for v in variables:
        flat = np.zeros((clim.sizes[DOY], n_hours), dtype=bool)
        flat[days] = empty[v].values
        bad = keys[flat.reshape(-1)[keys]]
        if bad.size:
            days = sorted({int(k // n_hours) + 1 for k in bad})
            raise InputError(f"the climatology has no data for variable {v!r} on day(s) of year {days[:6]}; "
                             f"rebuild it with a wider window_days (now {clim.attrs.get('window_days')}) or over "
                             "a period covering those days")


def _chunk_at(field, key: np.ndarray, n_hours: int, grid: tuple[int, int]) -> dask.array.Array:
    """One chunk ``(init_time, lead_time, lat, lon)`` of the climatology ``field`` ``(dayofyear, hour, lat, lon)``
    at the (day, hour) ``key`` ``(init_time, lead_time)``: one task that reads the chunk's distinct fields (runs
    of days, hour by hour: a few chunks of a file, or a copy from memory) and spreads them over its valid times."""
    uniq, inverse = np.unique(key, return_inverse=True)
    day, hour = uniq // n_hours, uniq % n_hours
    by_hour = np.lexsort((day, hour))  # the table's rows: hour by hour, days in order
    parts = [take_rows(field[:, h], day[hour == h]) for h in np.unique(hour)]
    table = dask.array.concatenate(parts) if isinstance(field, dask.array.Array) else np.concatenate(parts)
    row = np.empty_like(by_hour)
    row[by_hour] = np.arange(by_hour.size)
    data = dask.delayed(spread)(row[inverse].reshape(key.shape), table)
    return dask.array.from_delayed(data, (*key.shape, *grid), dtype=field.dtype)
