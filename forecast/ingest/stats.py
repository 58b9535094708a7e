"""Normalisation statistics: per-channel area-weighted moments over the training period only.

Pure functions over xarray (lazy with dask). Area weights are cell areas, ``sin(upper) -
sin(lower)`` normalised to mean 1 (WeatherBench2's convention), so a statistic is a true
average over the sphere, not over grid points that crowd at the poles.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.schema import CHANNEL, LAT, LON, TIME

__all__ = ["normalisation_stats", "weighted_moments"]


def weighted_moments(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Area-weighted mean and standard deviation (population, over time and space) of ``da``.

    ``da`` has dims ``(time, latitude, longitude)``; sums run in float64 in a single pass.
    """
    w = xr.DataArray(area_weights(da[LAT].values), dims=[LAT], coords={LAT: da[LAT]})
    x = da.astype(np.float64)
    mean = (x * w).mean()
    mean_sq = (x * x * w).mean()
    var = np.maximum(mean_sq - mean * mean, 0.0)
    return mean, np.sqrt(var)


def normalisation_stats(
    ds: xr.Dataset, channels: list[str], start: datetime | None = None, end: datetime | None = None
) -> xr.Dataset:
    """Statistics of ``channels`` in ``ds`` over ``[start, end]`` (inclusive), as a lazy Dataset.

    Returns variables ``mean``, ``std`` (the field's units) and ``tendency_mean``, ``tendency_std``
    (units per time step) along dim ``channel``. Tendencies are differences of consecutive times
    that both lie in the period, which is what a model predicting the next step must learn.
    """
    period = ds[channels].sel({TIME: slice(start, end)})
    n = period.sizes.get(TIME, 0)
    if n < 2:
        raise InputError(
            f"statistics period {start} .. {end} holds {n} time step(s) of the store; at least 2 are "
            "needed (set `stats:` to a period inside the data, or `stats: null` for no statistics)"
        )
    means, stds, tmeans, tstds = [], [], [], []
    for name in channels:
        da = period[name].transpose(TIME, LAT, LON)
        m, s = weighted_moments(da)
        tm, ts = weighted_moments(da.diff(TIME))
        means.append(m)
        stds.append(s)
        tmeans.append(tm)
        tstds.append(ts)
    coord = {CHANNEL: np.array(channels, dtype=object)}
    out = xr.Dataset(
        {
            "mean": xr.concat(means, dim=CHANNEL).assign_coords(coord),
            "std": xr.concat(stds, dim=CHANNEL).assign_coords(coord),
            "tendency_mean": xr.concat(tmeans, dim=CHANNEL).assign_coords(coord),
            "tendency_std": xr.concat(tstds, dim=CHANNEL).assign_coords(coord),
        }
    )
    times = period[TIME].values
    out.attrs = {
        "stats_start": str(np.datetime_as_string(times[0], unit="m")),
        "stats_end": str(np.datetime_as_string(times[-1], unit="m")),
        "stats_steps": int(n),
        "area_weighting": "cell area sin(upper)-sin(lower), mean 1",
    }
    return out
