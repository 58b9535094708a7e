"""Forecasts against truth on valid time: open both lazily, check they can be compared, line them up.

A product (:mod:`forecast.products`) has dims ``(init_time, lead_time[, member], latitude, longitude)``
(or WeatherBench2's ``time, prediction_timedelta, number`` with pressure levels stacked on ``level``);
the truth is a training store (``forecast ingest``) with one ``(time, latitude, longitude)`` array per
channel. :func:`align` refuses different grids, different units, or valid (and initial) times the truth
does not hold, naming them, then returns the truth at each ``valid_time = init_time + lead_time``
chunked like the forecast, all lazily (dask).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from forecast.data.store import open_store
from forecast.errors import InputError
from forecast.grids import grid_from_coords
from forecast.products.io import open_product
from forecast.products.layout import channel_view, dims_for
from forecast.schema import (
    INIT_TIME,
    LAT,
    LEAD_TIME,
    LEVEL,
    LON,
    MEMBER,
    TIME,
    VALID_TIME,
    VARIABLE_ALIASES,
    canonical_units,
    channel_name,
    parse_duration,
)

__all__ = ["Aligned", "align", "canonical_product", "chunk_inits", "fields_at", "open_forecast", "open_truth", "spread",
           "take_rows"]

log = logging.getLogger(__name__)


def _fmt(t) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "m"), unit="m"))


def _grid_text(lat: np.ndarray, lon: np.ndarray) -> str:
    g = grid_from_coords(lat, lon)
    return g.describe() if g else f"{lat.size} x {lon.size} (lat {lat[0]:g}..{lat[-1]:g}, lon {lon[0]:g}..{lon[-1]:g})"


def open_truth(path: str | Path) -> xr.Dataset:
    """A training store's channels ``(time, latitude, longitude)`` and its static fields, lazily.

    Unlike :func:`forecast.data.store.open_training_store` it needs no normalisation statistics, so a
    store ingested with ``stats: null`` (e.g. a verification period) serves as truth.
    """
    ds = open_store(path)
    keep = list(ds.attrs["channels"]) + [s for s in ds.attrs.get("static_channels", []) if s in ds]
    out = ds[keep]
    out.attrs = {**ds.attrs, "path": str(path)}
    return out


def canonical_product(ds: xr.Dataset) -> xr.Dataset:
    """A product in the project's naming: dims ``(init_time, lead_time[, member], latitude, longitude)``,
    one variable per channel (``z500``, ``msl``), whatever naming it was written with."""
    if "prediction_timedelta" in ds.dims:
        d = dims_for("weatherbench2")
        ds = ds.rename({k: v for k, v in {d.init: INIT_TIME, d.lead: LEAD_TIME, d.member: MEMBER}.items()
                        if k in ds.dims or k in ds.coords})
        out = {}
        for name, var in ds.data_vars.items():
            short = str(var.attrs.get("short_name") or VARIABLE_ALIASES.get(str(name), name))
            if LEVEL in var.dims:
                for lv in var[LEVEL].values:
                    out[channel_name(short, float(lv))] = var.sel({LEVEL: lv}, drop=True).assign_attrs(
                        level=float(lv))
            else:
                out[channel_name(short, None)] = var
        attrs = ds.attrs
        ds = xr.Dataset(out).drop_vars(LEVEL, errors="ignore")
        ds.attrs = attrs
    else:  # the project's naming as stored (xr.open_zarr): channels on the level axis, one array each
        ds = channel_view(ds)
    missing = [d for d in (INIT_TIME, LEAD_TIME, LAT, LON) if d not in ds.dims]
    if missing:
        raise InputError(f"forecast has no dimension(s) {missing}; expected (init_time, lead_time[, member], "
                         f"latitude, longitude) or WeatherBench2's (time, prediction_timedelta[, number], ...)")
    if not np.issubdtype(ds[LEAD_TIME].dtype, np.timedelta64):
        raise InputError(f"lead_time is {ds[LEAD_TIME].dtype}, expected timedeltas")
    if VALID_TIME not in ds.coords:
        ds = ds.assign_coords({VALID_TIME: ds[INIT_TIME] + ds[LEAD_TIME]})
    return ds


def chunk_inits(ds: xr.Dataset, chunk_mb: float) -> int:
    """Initial times per dask chunk so that one chunk of one variable holds about ``chunk_mb`` MB."""
    per_init = max(np.prod([ds.sizes[d] for d in ds.dims if d not in (INIT_TIME, "bnds")]) * 4, 1)  # not the bounds
    return int(max(1, min(ds.sizes[INIT_TIME], chunk_mb * 2**20 // per_init)))


def open_forecast(path: str | Path, chunk_mb: float = 64.0, allow_incomplete: bool = False,
                  total_mb: float | None = None) -> xr.Dataset:
    """A product (zarr) as :func:`canonical_product`, lazily, in chunks of whole leads, members and grids: of
    at most ``chunk_mb`` MB per variable and, with ``total_mb``, at most that for every variable together."""
    ds = canonical_product(open_product(path, allow_incomplete=allow_incomplete))
    chunks = {d: -1 for d in ds.dims}
    chunks[INIT_TIME] = chunk_inits(ds, chunk_mb)
    if total_mb is not None:
        fields = sum(INIT_TIME in v.dims for v in ds.data_vars.values())
        chunks[INIT_TIME] = min(chunks[INIT_TIME], chunk_inits(ds, total_mb / max(fields, 1)))
    out = ds.chunk(chunks)
    out.attrs = {**ds.attrs, "path": str(path)}
    return out


@dataclass
class Aligned:
    """Forecast and truth on the same cases, all ``xr.Dataset`` with one variable per channel.

    ``forecast`` ``(init_time, lead_time[, member], lat, lon)``; ``truth`` the truth at each valid time
    ``(init_time, lead_time, lat, lon)``; ``initial`` the truth at each initial time ``(init_time, lat, lon)``
    (the persistence forecast); ``units`` per variable; ``land_sea_mask`` ``(lat, lon)`` or ``None``.
    """

    forecast: xr.Dataset
    truth: xr.Dataset
    initial: xr.Dataset | None
    units: dict[str, str]
    land_sea_mask: np.ndarray | None

    @property
    def variables(self) -> list[str]:
        return list(self.forecast.data_vars)

    @property
    def is_ensemble(self) -> bool:
        return MEMBER in self.forecast.dims


def _check_grid(forecast: xr.Dataset, truth: xr.Dataset) -> None:
    flat, flon = forecast[LAT].values, forecast[LON].values
    tlat, tlon = truth[LAT].values, truth[LON].values
    same = (flat.shape == tlat.shape and flon.shape == tlon.shape
            and np.allclose(flat, tlat, atol=1e-4) and np.allclose(flon, tlon, atol=1e-4))
    if not same:
        raise InputError(f"the forecast's grid, {_grid_text(flat, flon)}, differs from the truth's, "
                         f"{_grid_text(tlat, tlon)}; ingest the truth on the forecast's grid "
                         f"(forecast ingest --set grid.nlat=... --set grid.type=...)")


def _select_variables(forecast: xr.Dataset, truth: xr.Dataset, variables: list[str] | None) -> list[str]:
    channels = list(truth.attrs.get("channels", truth.data_vars))
    if variables is None:
        chosen = [c for c in channels if c in forecast.data_vars]
        if not chosen:
            raise InputError(f"the forecast's variables {list(forecast.data_vars)} and the truth's channels "
                             f"{channels} have none in common")
        return chosen
    for v in variables:
        if v not in forecast.data_vars:
            raise InputError(f"variable {v!r} is not in the forecast (it has {list(forecast.data_vars)})")
        if v not in channels:
            raise InputError(f"variable {v!r} is not in the truth store (it has {channels})")
    return list(variables)


def _check_units(forecast: xr.Dataset, truth: xr.Dataset, variables: list[str]) -> dict[str, str]:
    units = {}
    for v in variables:
        fu = canonical_units(forecast[v].attrs.get("units"))
        tu = canonical_units(truth[v].attrs.get("units"))
        if fu != tu:
            raise InputError(f"variable {v!r}: the forecast is in {forecast[v].attrs.get('units')!r} but the truth "
                             f"in {truth[v].attrs.get('units')!r}; convert one of them before scoring")
        units[v] = tu
    return units


def _time_index(store_times: np.ndarray, wanted: np.ndarray, what: str, store: str) -> np.ndarray:
    """Positions of ``wanted`` (any shape) in ``store_times``; refuses times the store lacks."""
    flat = wanted.reshape(-1)
    pos = np.clip(np.searchsorted(store_times, flat), 0, store_times.size - 1)
    missing = np.unique(flat[store_times[pos] != flat])
    if missing.size:
        shown = ", ".join(_fmt(t) for t in missing[:4]) + (" ..." if missing.size > 4 else "")
        raise InputError(f"the truth store {store} has no data at {missing.size} {what} time(s) of the forecast: "
                         f"{shown} (it covers {_fmt(store_times[0])} .. {_fmt(store_times[-1])})")
    return pos.reshape(wanted.shape)


def fields_at(truth: xr.Dataset, pos: np.ndarray, dims: tuple[str, ...], chunks: tuple[int, ...]) -> xr.Dataset:
    """The ``truth`` fields ``(time, lat, lon)`` at store positions ``pos`` (shape of ``dims``, initial time first),
    lazily, in ``chunks`` of initial times: each chunk one task that reads the distinct times it needs (few
    store chunks, as one slice would) and spreads them over its cases, instead of dask's point-wise indexing
    (hundreds of tasks per chunk, each of which a cluster schedules)."""
    edges = np.cumsum([0, *chunks])
    out = {}
    for v in truth.data_vars:
        data = truth[v].transpose(TIME, LAT, LON).data
        pieces = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            uniq, inverse = np.unique(pos[a:b], return_inverse=True)
            fields = take_rows(data, uniq)
            task = dask.delayed(spread)(inverse.reshape(pos[a:b].shape), fields)
            pieces.append(dask.array.from_delayed(task, (*pos[a:b].shape, *data.shape[1:]), dtype=data.dtype))
        out[v] = xr.Variable((*dims, LAT, LON), dask.array.concatenate(pieces, axis=0), truth[v].attrs)
    return xr.Dataset(out, coords={LAT: truth[LAT], LON: truth[LON]})


def take_rows(data, rows: np.ndarray):
    """``data[rows]`` (``rows`` sorted, distinct): numpy's, or for dask slices of each run of consecutive rows,
    which read whole store chunks with a task or two each (dask's fancy indexing shuffles, with many more)."""
    if not isinstance(data, dask.array.Array):
        return np.asarray(data)[rows]
    runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return dask.array.concatenate([data[r[0]:r[-1] + 1] for r in runs], axis=0)


def spread(pos: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[pos]``: the distinct fields a chunk read, at each of its cases (a dask task)."""
    return table[pos]


def align(forecast: xr.Dataset, truth: xr.Dataset, variables: list[str] | None = None,
          lead_times: list[str] | None = None, persistence: bool = True) -> Aligned:
    """Line ``forecast`` (:func:`canonical_product`) up with ``truth`` (:func:`open_truth`) on valid time.

    ``lead_times`` (durations) selects leads; by default every lead after 0 (lead 0 is the initial
    condition, not a forecast). ``persistence`` also needs the truth at every initial time.
    """
    _check_grid(forecast, truth)
    chosen = _select_variables(forecast, truth, variables)
    units = _check_units(forecast, truth, chosen)
    # Same grid to 1e-4 degrees: take the truth's coordinates so that xarray aligns them exactly.
    fc = forecast[chosen].assign_coords({LAT: truth[LAT].values, LON: truth[LON].values})
    leads = fc[LEAD_TIME].values
    if lead_times is None:
        keep = leads > np.timedelta64(0, "ns")
    else:
        wanted = np.array([parse_duration(x) for x in lead_times], dtype="timedelta64[ns]")
        absent = [x for x, w in zip(lead_times, wanted, strict=True) if w not in leads]
        if absent:
            raise InputError(f"lead time(s) {absent} are not in the forecast (it has "
                             f"{[f'{pd.Timedelta(x) / pd.Timedelta(hours=1):g}h' for x in leads]})")
        keep = np.isin(leads, wanted)
    if not keep.any():
        raise InputError("the forecast has no lead time after 0 to score")
    fc = fc.isel({LEAD_TIME: np.flatnonzero(keep)})
    store = str(truth.attrs.get("path", "(truth)"))
    times = truth[TIME].values.astype("datetime64[ns]")
    valid = (fc[INIT_TIME].values[:, None] + fc[LEAD_TIME].values[None, :]).astype("datetime64[ns]")
    fc = fc.assign_coords({VALID_TIME: ((INIT_TIME, LEAD_TIME), valid)})
    pos = _time_index(times, valid, "valid", store)
    inits = fc.chunksizes.get(INIT_TIME, (fc.sizes[INIT_TIME],))
    at_valid = fields_at(truth[chosen], pos, (INIT_TIME, LEAD_TIME), inits).assign_coords(
        {INIT_TIME: fc[INIT_TIME], LEAD_TIME: fc[LEAD_TIME]})
    initial = None
    if persistence:
        pos0 = _time_index(times, fc[INIT_TIME].values.astype("datetime64[ns]"), "initial", store)
        initial = fields_at(truth[chosen], pos0, (INIT_TIME,), inits).assign_coords({INIT_TIME: fc[INIT_TIME]})
    lsm = np.asarray(truth["lsm"].values) if "lsm" in truth else None
    return Aligned(fc, at_valid, initial, units, lsm)
