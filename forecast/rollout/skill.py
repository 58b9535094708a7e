"""Skill of a trained model against persistence and climatology on the same validation cases.

A compact, in-memory scorer for training runs (``forecast skill``): it rolls the model out from
initial times spread over a period of a store, and scores model, persistence and climatology with
the WeatherBench2 definitions of :mod:`forecast.evaluate.metrics` (area-weighted RMSE and uncentred
ACC). Climatology is the training-period mean for each grid point and hour of day.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import torch
import xarray as xr

from forecast.data.store import TrainingStore
from forecast.errors import InputError
from forecast.evaluate.metrics import acc, rmse
from forecast.rollout.generator import rollout
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON
from forecast.train.package import ModelPackage

__all__ = ["hourly_climatology", "skill_table"]


def hourly_climatology(store: TrainingStore, start: datetime | None, end: datetime | None) -> xr.DataArray:
    """Mean over ``[start, end]`` per channel, hour of day and grid point: ``(hour, channel, lat, lon)``."""
    t = store.times
    sel = (t >= np.datetime64(start or t[0], "ns")) & (t <= np.datetime64(end or t[-1], "ns"))
    hours = pd.DatetimeIndex(t[sel]).hour.values
    data = np.asarray(store.state[np.flatnonzero(sel)], dtype=np.float64)
    uniq = np.unique(hours)
    clim = np.stack([data[hours == h].mean(0) for h in uniq])
    return xr.DataArray(clim, dims=["hour", "channel", LAT, LON],
                        coords={"hour": uniq, "channel": store.channels, LAT: store.latitudes, LON: store.longitudes})


def skill_table(
    package: ModelPackage,
    store: TrainingStore,
    start: datetime | None,
    end: datetime | None,
    lead_steps: list[int],
    max_cases: int = 64,
    clim_period: tuple[datetime | None, datetime | None] = (None, None),
    device: str = "cpu",
    batch_size: int = 8,
) -> pd.DataFrame:
    """Tidy table ``model, metric, channel, lead_hours, value`` for the model, persistence, climatology
    (RMSE and ACC; no ACC for the climatology itself, where it is undefined).

    Initial times are spread evenly over ``[start, end]`` such that the longest lead still lies in it;
    all three forecasts are scored on exactly those cases.
    """
    if package.channels != store.channels:
        raise InputError(f"model channels {package.channels} differ from the store's {store.channels}")
    leads = sorted(lead_steps)
    t = store.times
    lo, hi = np.datetime64(start or t[0], "ns"), np.datetime64(end or t[-1], "ns")
    first = np.flatnonzero((t >= lo) & (t <= hi))
    first = first[first + leads[-1] < t.size]
    first = first[t[first + leads[-1]] <= hi]
    if first.size == 0:
        raise InputError(f"no initial time in {start} .. {end} has {leads[-1]} steps of truth after it")
    cases = first[np.unique(np.linspace(0, first.size - 1, min(max_cases, first.size)).round().astype(int))]
    forecaster = package.build_forecaster(device)
    step_h = pd.Timedelta(store.time_step) / pd.Timedelta(hours=1)
    preds = np.zeros((cases.size, len(leads), len(store.channels), *store.shape), np.float32)
    for b0 in range(0, cases.size, batch_size):
        idx = cases[b0 : b0 + batch_size]
        x = package.normalise(torch.from_numpy(np.asarray(store.state[idx], np.float32))).to(device)
        for s in rollout(forecaster, x, t[idx], leads[-1], store.time_step, store.latitudes, store.longitudes):
            if s.lead in leads:
                preds[b0 : b0 + idx.size, leads.index(s.lead)] = package.denormalise(s.state).cpu().numpy()
    coords = {INIT_TIME: t[cases], LEAD_TIME: [int(k * step_h) for k in leads], "channel": store.channels,
              LAT: store.latitudes, LON: store.longitudes}
    dims = [INIT_TIME, LEAD_TIME, "channel", LAT, LON]
    truth = xr.DataArray(np.stack([np.asarray(store.state[cases + k]) for k in leads], 1), dims=dims, coords=coords)
    init_state = np.asarray(store.state[cases])
    persistence = xr.DataArray(np.broadcast_to(init_state[:, None], truth.shape), dims=dims, coords=coords)
    clim = hourly_climatology(store, *clim_period)
    valid_hours = (pd.DatetimeIndex(t[cases]).hour.values[:, None] + np.array(leads)[None] * step_h) % 24
    clim_f = clim.sel(hour=xr.DataArray(valid_hours, dims=[INIT_TIME, LEAD_TIME])).transpose(*dims)
    clim_f = clim_f.drop_vars("hour").assign_coords(coords)
    model = xr.DataArray(preds, dims=dims, coords=coords)
    rows = []
    for name, fc in (("model", model), ("persistence", persistence), ("climatology", clim_f)):
        scores = {"rmse": rmse(fc, truth)}
        if name != "climatology":  # ACC of the climatology against itself is undefined
            scores["acc"] = acc(fc, truth, clim_f)
        for metric, da in scores.items():
            for ch in store.channels:
                for lead in coords[LEAD_TIME]:
                    rows.append({"model": name, "metric": metric, "channel": ch, "lead_hours": lead,
                                 "value": float(da.sel(channel=ch, lead_time=lead))})
    return pd.DataFrame(rows)
