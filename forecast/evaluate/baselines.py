"""Probabilistic baselines: ensembles made of past truth, the references of an ensemble's CRPS.

* **climatological ensemble** (WeatherBench2's probabilistic climatology): the members for valid time
  ``v`` are truth fields of the climatology period at ``v``'s hour of day whose day of year lies within
  ``window_days`` centred on ``v``'s (wrapping over the year end); ``members`` of those candidates,
  evenly spread in time, are used. WB2 takes one member per climatology year; a short period (the
  embedded data's one training year) gets its members from neighbouring days instead, which is the
  same idea: the spread of the weather seen at that time of year.
* **persistence ensemble**: member ``k`` is the truth ``k`` days before the initial time (``k = 0 ..
  members - 1``, the same hour of day), persisted to every lead: a lagged-analysis ensemble whose
  spread is the recent day-to-day variability, and whose member 0 is the persistence forecast.

Both are lazy Datasets ``(init_time, lead_time, member, latitude, longitude)`` read from the truth store
with the index arithmetic of :func:`forecast.evaluate.align.align`, chunked like the forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.climatology import _period
from forecast.schema import INIT_TIME, LEAD_TIME, MEMBER, TIME

__all__ = ["climatology_ensemble", "climatology_ensemble_times", "persistence_ensemble"]


def _from_truth(truth: xr.Dataset, variables: list[str], positions: np.ndarray, like: xr.Dataset) -> xr.Dataset:
    """Truth fields at store ``positions`` ``(init_time, lead_time, member)``, with ``like``'s coordinates."""
    out = truth[variables].isel({TIME: xr.DataArray(positions, dims=[INIT_TIME, LEAD_TIME, MEMBER])}).drop_vars(TIME)
    out = out.assign_coords({INIT_TIME: like[INIT_TIME], LEAD_TIME: like[LEAD_TIME],
                             MEMBER: np.arange(positions.shape[-1])})
    chunks = {INIT_TIME: like.chunksizes.get(INIT_TIME, -1), LEAD_TIME: -1, MEMBER: -1}
    return out.chunk(chunks)


def persistence_ensemble(truth: xr.Dataset, like: xr.Dataset, variables: list[str], members: int) -> xr.Dataset:
    """The lagged persistence ensemble (module docstring) on ``like``'s initial times and leads."""
    times = truth[TIME].values.astype("datetime64[ns]")
    lags = np.arange(members) * np.timedelta64(1, "D")
    wanted = like[INIT_TIME].values.astype("datetime64[ns]")[:, None] - lags[None, :]
    pos = np.clip(np.searchsorted(times, wanted), 0, times.size - 1)
    if (times[pos] != wanted).any():
        first = wanted[times[pos] != wanted].min()
        raise InputError(f"the persistence ensemble needs the truth {members - 1} days before each initial time; "
                         f"the truth store has no data at {np.datetime_as_string(first, unit='m')} (it starts "
                         f"{np.datetime_as_string(times[0], unit='m')}); lower baseline_members")
    # Read each member once and broadcast it over the leads (indexing every lead would read it once per lead).
    fields = truth[variables].isel({TIME: xr.DataArray(pos, dims=[INIT_TIME, MEMBER])}).drop_vars(TIME)
    fields = fields.assign_coords({INIT_TIME: like[INIT_TIME], MEMBER: np.arange(members)})
    fields = fields.expand_dims({LEAD_TIME: like[LEAD_TIME].values}, axis=1)
    return fields.chunk({INIT_TIME: like.chunksizes.get(INIT_TIME, -1), LEAD_TIME: -1, MEMBER: -1})


def climatology_ensemble_times(store_times: np.ndarray, valid: np.ndarray, period: tuple[np.datetime64, np.datetime64],
                               members: int, window_days: int) -> np.ndarray:
    """Store positions of the climatological ensemble's members for each valid time: shape ``(*valid.shape,
    members)`` (module docstring). Refuses valid times with fewer candidates than ``members``."""
    t = pd.DatetimeIndex(store_times)
    inside = np.flatnonzero((store_times >= period[0]) & (store_times <= period[1]))
    doy, hour = t.day_of_year.values[inside], t.hour.values[inside]
    v = pd.DatetimeIndex(valid.reshape(-1))
    out = np.empty((v.size, members), dtype=np.int64)
    half = window_days // 2
    for i, (vd, vh) in enumerate(zip(v.day_of_year.values, v.hour.values, strict=True)):
        distance = np.abs(doy - vd)
        distance = np.minimum(distance, 366 - distance)  # wrap over the year end
        candidates = inside[(hour == vh) & (distance <= half)]
        if candidates.size < members:
            raise InputError(f"the climatological ensemble finds {candidates.size} truth fields within "
                             f"{window_days} days of {v[i]:%m-%d %H:%M} in the climatology period "
                             f"{np.datetime_as_string(period[0], unit='D')} .. "
                             f"{np.datetime_as_string(period[1], unit='D')}, fewer than its {members} members; "
                             "widen ensemble_window_days or lower baseline_members")
        out[i] = candidates[np.linspace(0, candidates.size - 1, members).round().astype(int)]
    return out.reshape(*valid.shape, members)


def climatology_ensemble(truth: xr.Dataset, like: xr.Dataset, variables: list[str], members: int, window_days: int,
                         start=None, end=None) -> xr.Dataset:
    """The climatological ensemble (module docstring) at ``like``'s valid times; the period defaults to the
    store's statistics (training) period, as the climatology's."""
    times = truth[TIME].values.astype("datetime64[ns]")
    valid = (like[INIT_TIME].values[:, None] + like[LEAD_TIME].values[None, :]).astype("datetime64[ns]")
    pos = climatology_ensemble_times(times, valid, _period(truth, start, end), members, window_days)
    return _from_truth(truth, variables, pos, like)
