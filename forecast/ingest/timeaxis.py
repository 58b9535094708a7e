"""Time axes that need a way in: renamed dimensions, integer times with given units, irregular steps, the
configured period, and the physical range of the values.

Pure functions over xarray (lazy with dask), used by :mod:`forecast.ingest.readers` (one file as it is
opened) and :mod:`forecast.ingest.pipeline` (one channel assembled from all files):

* :func:`prepare_time` renames dimensions (``time_index`` -> ``time``) and decodes integer times from
  units given in the config (``hours since 1940-01-01``) for sources that do not carry CF units;
* :func:`require_datetime` refuses a time axis that is still not made of dates, naming the option;
* :func:`resample_time` brings an irregular series (e.g. 7-8 h apart) onto the model step: ``nearest``
  takes, for every time of the step's grid (00/06/12/18 UTC for 6 h), the source field closest in time;
  ``linear`` weighs the two source fields around it by their distance in time. Times whose source
  neighbours lie more than ``max_gap`` apart (a hole in the data) are refused, not invented;
* :func:`check_period` refuses a series that starts after ``time.start`` or ends before ``time.end``;
* :func:`check_range` refuses values outside a variable's plausible physical range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.schema import TIME, fmt_step, fmt_time

__all__ = ["check_period", "check_range", "prepare_time", "require_datetime", "resample_time", "synoptic_grid"]

_TIME_NAMES = ("valid_time", TIME)


def prepare_time(ds: xr.Dataset, where: str, rename_dims: dict[str, str] | None = None,
                 time_units: str | None = None) -> xr.Dataset:
    """Rename dimensions (and their coordinates) as the source config says, then decode an integer time
    axis with ``time_units`` (CF form, ``"hours since 1940-01-01"``); dates already decoded are kept."""
    renames = {k: v for k, v in (rename_dims or {}).items() if k in ds.dims or k in ds.variables}
    missing = sorted(set(rename_dims or {}) - set(renames))
    if missing:
        raise InputError(f"{where}: rename_dims names {missing}, which it does not have (dims: {list(ds.dims)})")
    for old, new in renames.items():
        if new in ds.variables and new not in ds.dims and old in ds.dims:
            ds = ds.set_coords(new).swap_dims({old: new})  # `time` is a variable along `time_index`
            ds = ds.drop_vars(old, errors="ignore")
        else:
            ds = ds.rename({old: new})
    name = next((n for n in _TIME_NAMES if n in ds.dims), None)
    if time_units is None or name is None or np.issubdtype(ds[name].dtype, np.datetime64):
        return ds
    try:
        dates = xr.coding.times.decode_cf_datetime(np.asarray(ds[name].values), time_units, "proleptic_gregorian")
    except Exception as exc:  # noqa: BLE001 - xarray and cftime raise several types for bad units
        raise InputError(f"{where}: time axis {name!r} cannot be decoded with time_units {time_units!r} "
                         f"({type(exc).__name__}: {exc})") from exc
    return ds.assign_coords({name: np.asarray(dates, dtype="datetime64[ns]")})


def require_datetime(ds: xr.Dataset, where: str) -> None:
    """Raise :class:`InputError` if ``ds``'s ``time`` axis does not hold dates (it was not CF-decodable)."""
    if TIME in ds.dims and not np.issubdtype(ds[TIME].dtype, np.datetime64):
        units = ds[TIME].attrs.get("units")
        shown = f"units {units!r}" if units else "no units attribute"
        raise InputError(
            f"{where}: time axis {TIME!r} holds {ds[TIME].dtype} values with {shown}, not dates (not CF-decodable); "
            "set `time_units:` in the source config, e.g. time_units: 'hours since 1940-01-01' (and "
            "`rename_dims: {time_index: time}` if the time dimension has another name)")


def synoptic_grid(start: np.datetime64, end: np.datetime64, step: pd.Timedelta) -> np.ndarray:
    """Times ``(T,)`` from ``start`` to ``end`` on multiples of ``step`` since midnight 1970-01-01: for a 6 h
    step the synoptic hours 00/06/12/18 UTC."""
    step_ns = int(step.value)
    t0 = -(-np.datetime64(start, "ns").astype(np.int64) // step_ns) * step_ns
    t1 = np.datetime64(end, "ns").astype(np.int64) // step_ns * step_ns
    return np.arange(t0, t1 + 1, step_ns).astype("datetime64[ns]")


def resample_time(da: xr.DataArray, step: pd.Timedelta, method: str, max_gap: pd.Timedelta, channel: str,
                  origin: dict[np.datetime64, Path]) -> tuple[xr.DataArray, dict[np.datetime64, Path]]:
    """``da`` ``(time, ...)`` on the step's grid (:func:`synoptic_grid` over its span), ``nearest`` or
    ``linear`` in time (see the module docstring); returns it and the time -> source file map."""
    src = np.asarray(da[TIME].values, dtype="datetime64[ns]")
    targets = synoptic_grid(src[0], src[-1], step)
    if targets.size == 0:
        raise InputError(f"channel {channel!r}: the sources ({_span(src)}) hold no time of the {fmt_step(step)} grid")
    hi = np.clip(np.searchsorted(src, targets, side="left"), 0, src.size - 1)
    lo = np.where(src[hi] > targets, hi - 1, hi)
    width = (src[hi] - src[lo]).astype("timedelta64[ns]")
    holes = width > max_gap.to_timedelta64()
    if holes.any():
        i = int(np.argmax(holes))
        raise InputError(f"channel {channel!r}: no source time within {fmt_step(max_gap)} around "
                         f"{fmt_time(targets[i])}: the sources jump from {fmt_time(src[lo[i]])} "
                         f"({origin.get(src[lo[i]], '?')}) to {fmt_time(src[hi[i]])}; raise time.max_gap to bridge it")
    dt = (targets - src[lo]).astype(np.float64)
    w = np.divide(dt, width.astype(np.float64), out=np.zeros_like(dt), where=width > np.timedelta64(0))
    if method == "nearest":
        pick = np.where(w > 0.5, hi, lo)
        out = da.isel({TIME: pick})
        where = {t: origin.get(src[i], Path("?")) for t, i in zip(targets, pick, strict=True)}
    else:
        weight = xr.DataArray(w.astype(np.float32), dims=TIME)
        # The two neighbours' time labels differ: drop them so the weighted sum does not align on them.
        out = da.isel({TIME: lo}).drop_vars(TIME) * (1 - weight) + da.isel({TIME: hi}).drop_vars(TIME) * weight
        out.attrs = dict(da.attrs)
        where = {t: origin.get(src[i], Path("?")) for t, i in zip(targets, lo, strict=True)}
    return out.assign_coords({TIME: targets}).astype(da.dtype), where


def _span(times: np.ndarray) -> str:
    return f"{fmt_time(times[0])} .. {fmt_time(times[-1])}"


def check_period(times: np.ndarray, start: object | None, end: object | None, step: pd.Timedelta, channel: str,
                 origin: dict[np.datetime64, Path]) -> None:
    """Refuse ``times`` that start after ``start`` or end before ``end`` (the configured period) by a step or
    more: missing steps at either end are as much a gap as one in the middle."""
    times = np.asarray(times, dtype="datetime64[ns]")
    step_ns = step.to_timedelta64()
    fix = "download them, or set time.open_ended: true to take what the sources hold"
    for side, bound, have, word in (("start", start, times[0], "begin"), ("end", end, times[-1], "stop")):
        if bound is None:
            continue
        want = np.datetime64(pd.Timestamp(bound), "ns")
        n = int(((have - want) if side == "start" else (want - have)) // step_ns)
        if n >= 1:
            raise InputError(f"channel {channel!r}: {n} step(s) of {fmt_step(step)} missing at the {side}: time.{side} "
                             f"is {fmt_time(want)}, the sources {word} at {fmt_time(have)} ({origin.get(have, '?')}); "
                             f"{fix}")


def check_range(name: str, low: float, high: float, expected: tuple[float, float], units: str,
                files: list[Path]) -> None:
    """Refuse a channel whose observed values ``[low, high]`` leave its ``expected`` physical range (a wrong
    units label, another variable); ``files`` are the sources the values came from."""
    if expected[0] <= low and high <= expected[1]:
        return
    shown = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
    raise InputError(
        f"{shown}: variable {name!r} has values in [{low:.6g}, {high:.6g}] {units}, outside its plausible range "
        f"[{expected[0]:g}, {expected[1]:g}] {units}: are the units right? If the values are, set "
        f"`valid_range: [low, high]` (or `valid_range: any`) for it in the ingest config")
