"""Normalisation statistics: per-channel area-weighted moments over the training period only.

The statistics stream: ingestion hands each time slab's lazy data to
:meth:`StatsAccumulator.partials`, computes those small sums in the same dask pass that writes the
slab, and folds them in with :meth:`StatsAccumulator.add`. Memory therefore holds one slab, however
long the period. Area weights are cell areas, ``sin(upper) - sin(lower)`` normalised to mean 1
(WeatherBench2's convention), so a statistic is a true average over the sphere, not over grid
points that crowd at the poles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.schema import CHANNEL, LAT, LON, TIME

__all__ = ["SlabPartials", "StatsAccumulator", "period_steps"]


def period_steps(times: np.ndarray, start: datetime | None, end: datetime | None) -> np.ndarray:
    """The times of ``times`` inside ``[start, end]`` (inclusive; ``None`` leaves that side open)."""
    keep = np.ones(times.size, dtype=bool)
    if start is not None:
        keep &= times >= np.datetime64(start, "ns")
    if end is not None:
        keep &= times <= np.datetime64(end, "ns")
    return times[keep]


@dataclass
class SlabPartials:
    """Lazy sums of one slab's part of the period; compute them, then :meth:`StatsAccumulator.add`.

    ``sums`` has variables ``x``, ``x2`` (area-weighted sums of the field and its square over time,
    latitude, longitude) and ``d``, ``d2`` (the same of the differences of consecutive times inside
    the slab), each along ``channel``; ``first`` and ``last`` are the slab's first and last states in
    the period, which close the tendency across slab boundaries.
    """

    sums: xr.Dataset
    first: xr.Dataset
    last: xr.Dataset
    times: np.ndarray


@dataclass
class StatsAccumulator:
    """Running float64 sums from which mean and std of each channel and of its tendency follow."""

    channels: list[str]
    latitudes: np.ndarray
    nlon: int
    step: np.timedelta64
    start: datetime | None = None
    end: datetime | None = None
    _n: int = field(default=0, init=False)
    _n_tendency: int = field(default=0, init=False)
    _last: xr.Dataset | None = field(default=None, init=False, repr=False)
    _last_time: np.datetime64 | None = field(default=None, init=False)
    _first_time: np.datetime64 | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._w = xr.DataArray(area_weights(self.latitudes), dims=[LAT])
        self._sums = {k: np.zeros(len(self.channels)) for k in ("x", "x2", "d", "d2")}

    def check_period(self, times: np.ndarray) -> None:
        """Refuse, before any data is read, a period holding fewer than two of ``times``."""
        n = period_steps(times, self.start, self.end).size
        if n < 2:
            raise InputError(
                f"statistics period {self.start} .. {self.end} holds {n} time step(s) of the store; at least 2 "
                "are needed (set `stats:` to a period inside the data, or `stats: null` for no statistics)"
            )

    def _weighted_sum(self, ds: xr.Dataset, dims: list[str]) -> xr.Dataset:
        return (ds * self._w).sum(dims)

    def partials(self, slab: xr.Dataset) -> SlabPartials | None:
        """Lazy sums of ``slab`` (dims ``time, latitude, longitude``) inside the period, or None."""
        times = period_steps(slab[TIME].values, self.start, self.end)
        if times.size == 0:
            return None
        x = slab[self.channels].sel({TIME: times}).astype(np.float64)
        d = x.diff(TIME)
        everything = [TIME, LAT, LON]
        sums = xr.Dataset({
            "x": self._weighted_sum(x, everything).to_array(CHANNEL),
            "x2": self._weighted_sum(x * x, everything).to_array(CHANNEL),
            "d": self._weighted_sum(d, everything).to_array(CHANNEL),
            "d2": self._weighted_sum(d * d, everything).to_array(CHANNEL),
        })
        return SlabPartials(sums, x.isel({TIME: 0}), x.isel({TIME: -1}), times)

    def add(self, partials: SlabPartials) -> None:
        """Fold in computed partials of the next slab (slabs arrive in time order)."""
        for k in self._sums:
            self._sums[k] += partials.sums[k].values
        self._n += partials.times.size
        self._n_tendency += partials.times.size - 1
        if self._last is not None and partials.times[0] - self._last_time == self.step:
            d = (partials.first - self._last).to_array(CHANNEL)
            self._sums["d"] += self._weighted_sum(d, [LAT, LON]).values
            self._sums["d2"] += self._weighted_sum(d * d, [LAT, LON]).values
            self._n_tendency += 1
        if self._first_time is None:
            self._first_time = partials.times[0]
        self._last, self._last_time = partials.last, partials.times[-1]

    def result(self) -> xr.Dataset:
        """``mean``, ``std`` (the field's units) and ``tendency_mean``, ``tendency_std`` (per time step).

        Population moments over time and the sphere; tendencies are differences of consecutive times
        that both lie in the period, which is what a model predicting the next step must learn.
        """
        cells = self.latitudes.size * self.nlon
        mean = self._sums["x"] / (self._n * cells)
        var = self._sums["x2"] / (self._n * cells) - mean * mean
        tmean = self._sums["d"] / (self._n_tendency * cells)
        tvar = self._sums["d2"] / (self._n_tendency * cells) - tmean * tmean
        coord = {CHANNEL: np.array(self.channels, dtype=object)}
        out = xr.Dataset({
            "mean": (CHANNEL, mean), "std": (CHANNEL, np.sqrt(np.maximum(var, 0.0))),
            "tendency_mean": (CHANNEL, tmean), "tendency_std": (CHANNEL, np.sqrt(np.maximum(tvar, 0.0))),
        }, coords=coord)
        out.attrs = {
            "stats_start": str(np.datetime_as_string(self._first_time, unit="m")),
            "stats_end": str(np.datetime_as_string(self._last_time, unit="m")),
            "stats_steps": int(self._n),
            "area_weighting": "cell area sin(upper)-sin(lower), mean 1",
        }
        return out
