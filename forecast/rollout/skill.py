"""Skill of a trained model against persistence and climatology on the same validation cases.

A compact scorer for training runs (``forecast skill``): it rolls the model out from initial times
spread over a period of a store, in memory, and hands the forecasts to the evaluation stage
(:mod:`forecast.evaluate`), which scores model, persistence and climatology with the WeatherBench2
definitions (area-weighted RMSE and uncentred ACC, global). The climatology is the evaluation stage's
day-of-year x hour climatology of the store over ``clim_period``. For products written by
``forecast predict``, ``forecast evaluate`` gives the full set of scores, regions and baselines.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import torch
import xarray as xr

from forecast.data.store import TrainingStore
from forecast.errors import InputError
from forecast.evaluate.align import align, open_truth
from forecast.evaluate.climatology import build_climatology, climatology_at
from forecast.evaluate.regions import region_masks
from forecast.evaluate.score import evaluate, scores_table
from forecast.rollout.generator import rollout
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON, VALID_TIME
from forecast.train.package import ModelPackage

__all__ = ["skill_table"]


def _cases(store: TrainingStore, start: datetime | None, end: datetime | None, last_lead: int,
           max_cases: int) -> np.ndarray:
    """Store indices of initial times spread evenly over ``[start, end]`` whose longest lead still lies in it."""
    t = store.times
    lo, hi = np.datetime64(start or t[0], "ns"), np.datetime64(end or t[-1], "ns")
    first = np.flatnonzero((t >= lo) & (t <= hi))
    first = first[first + last_lead < t.size]
    first = first[t[first + last_lead] <= hi]
    if first.size == 0:
        raise InputError(f"no initial time in {start} .. {end} has {last_lead} steps of truth after it")
    return first[np.unique(np.linspace(0, first.size - 1, min(max_cases, first.size)).round().astype(int))]


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
    cases = _cases(store, start, end, leads[-1], max_cases)
    forecaster = package.build_forecaster(device)
    preds = np.zeros((cases.size, len(leads), len(store.channels), *store.shape), np.float32)
    for b0 in range(0, cases.size, batch_size):
        idx = cases[b0 : b0 + batch_size]
        x = package.normalise(torch.from_numpy(np.asarray(store.state[idx], np.float32))).to(device)
        for s in rollout(forecaster, x, t[idx], leads[-1], store.time_step, store.latitudes, store.longitudes):
            if s.lead in leads:
                preds[b0 : b0 + idx.size, leads.index(s.lead)] = package.denormalise(s.state).cpu().numpy()
    step = pd.Timedelta(store.time_step).to_timedelta64()
    dims = [INIT_TIME, LEAD_TIME, LAT, LON]
    model = xr.Dataset(
        {ch: (dims, preds[:, :, c], {"units": store.units[c]}) for c, ch in enumerate(store.channels)},
        coords={INIT_TIME: t[cases], LEAD_TIME: np.array(leads) * step, LAT: store.latitudes, LON: store.longitudes},
    )
    truth = open_truth(store.path)
    aligned = align(model, truth)
    clim = build_climatology(truth, store.channels, *clim_period)
    scores = evaluate(aligned, region_masks(["global"], store.latitudes, store.longitudes),
                      climatology_at(clim, aligned.forecast[VALID_TIME], store.channels), name="model",
                      metrics=["rmse", "acc"], scheduler="synchronous")
    table = scores_table(scores).dropna(subset=["value"])  # ACC of the climatology is undefined
    return pd.DataFrame({"model": table.forecast, "metric": table.metric, "channel": table.variable,
                         "lead_hours": table.lead_time_hours.round().astype(int), "value": table.value}
                        ).reset_index(drop=True)
