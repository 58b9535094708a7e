"""Skill of a trained model against persistence and two climatologies on the same cases, with intervals.

A compact scorer for training runs (``forecast skill``): it rolls the model out from initial times
spread over a period of a store, in memory, and hands the forecasts to the evaluation stage
(:mod:`forecast.evaluate`), which scores them with the WeatherBench2 definitions (area-weighted RMSE
and uncentred ACC, global). Baselines, all on the same cases:

* ``persistence``: the initial state;
* ``climatology``: the evaluation stage's day-of-year x hour climatology over ``clim_period``;
* ``training_mean``: each channel's time mean per grid point over ``clim_period``. With a few months of
  data the day-of-year climatology rests on few days per window and is noisier than this plain mean,
  which is then the stronger reference.

Every score carries a block-bootstrap interval over initial times, and the model's difference to each
baseline a paired interval (:mod:`forecast.evaluate.bootstrap`): rows with a ``reference``. For products
written by ``forecast predict``, ``forecast evaluate`` gives the full set of scores, regions and baselines.
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
from forecast.evaluate.score import evaluate
from forecast.rollout.generator import rollout
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON, VALID_TIME
from forecast.train.package import ModelPackage

__all__ = ["BASELINES", "format_skill", "skill_table", "training_mean_at"]

BASELINES = ("persistence", "climatology", "training_mean")


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
    masks = region_masks(["global"], store.latitudes, store.longitudes)
    clim = build_climatology(truth, store.channels, *clim_period)
    valid = aligned.forecast[VALID_TIME]
    by_doy = evaluate(aligned, masks, climatology_at(clim, valid, store.channels), name="model",
                      metrics=["rmse", "acc"], scheduler="synchronous")
    # The training mean enters as the "climatology" of a second evaluation (RMSE only: an anomaly
    # correlation against it is another quantity); its paired differences come from that call.
    by_mean = evaluate(aligned, masks, training_mean_at(truth, store.channels, clim_period, valid), name="model",
                       metrics=["rmse"], baselines=["climatology"], scheduler="synchronous")
    rows = _tidy(by_doy, {"model": "model", "persistence": "persistence", "climatology": "climatology"})
    rows += _tidy(by_mean, {"climatology": "training_mean"})
    table = pd.DataFrame(rows).dropna(subset=["value"])  # ACC of the climatologies is undefined
    return table.sort_values(["reference", "metric", "channel", "model", "lead_hours"], key=_baseline_order
                             ).reset_index(drop=True)


def training_mean_at(truth: xr.Dataset, variables: list[str],
                     period: tuple[datetime | None, datetime | None], valid_time: xr.DataArray) -> xr.Dataset:
    """Each channel's time mean per grid point over ``period`` (inclusive; None: the store's ends),
    broadcast to ``valid_time`` ``(init_time, lead_time)``: a constant forecast ``(init_time, lead_time, lat, lon)``."""
    lo, hi = (None if p is None else np.datetime64(p, "ns") for p in period)
    mean = truth[variables].sel(time=slice(lo, hi)).mean("time").compute()
    if mean.sizes.get(LAT, 0) == 0 or any(bool(mean[v].isnull().all()) for v in variables):
        raise InputError(f"no truth in the climatology period {period} to average")
    zero = xr.zeros_like(valid_time, dtype=np.float64)
    return xr.Dataset({v: (zero + mean[v]).transpose(INIT_TIME, LEAD_TIME, LAT, LON) for v in variables})


def _tidy(scores: xr.Dataset, names: dict[str, str]) -> list[dict]:
    """Rows ``model, reference, metric, channel, lead_hours, value, lower, upper`` of the global scores of
    the forecasts in ``names`` (scores name -> table name); the model's paired differences to the baselines
    among them as rows with that ``reference`` (value = model minus baseline)."""
    rows = []
    hours = (scores[LEAD_TIME].values / np.timedelta64(1, "h")).round().astype(int)
    ci = scores["score_interval"].sel(region="global")
    for src, label in names.items():
        for m in scores["metric"].values:
            for v in scores["variable"].values:
                val = scores[src].sel(region="global", metric=m, variable=v).values
                lo, up = (ci.sel(source=src, metric=m, variable=v, bound=b).values for b in ("lower", "upper"))
                rows += [{"model": label, "reference": "", "metric": str(m), "channel": str(v), "lead_hours": int(h),
                          "value": float(a), "lower": float(b), "upper": float(c)}
                         for h, a, b, c in zip(hours, val, lo, up, strict=True)]
    diff = scores["difference_interval"].sel(region="global")
    for src, label in names.items():
        if src == "model" or src not in diff["reference"].values:
            continue
        for m in scores["metric"].values:
            for v in scores["variable"].values:
                d = (scores["model"] - scores[src]).sel(region="global", metric=m, variable=v).values
                lo, up = (diff.sel(reference=src, metric=m, variable=v, bound=b).values for b in ("lower", "upper"))
                rows += [{"model": "model", "reference": label, "metric": str(m), "channel": str(v),
                          "lead_hours": int(h), "value": float(a), "lower": float(b), "upper": float(c)}
                         for h, a, b, c in zip(hours, d, lo, up, strict=True)]
    return rows


def _baseline_order(column: pd.Series) -> pd.Series:
    if column.name in ("model", "reference"):
        order = {"": -1, "model": 0, **{b: i + 1 for i, b in enumerate(BASELINES)}}
        return column.map(lambda x: order.get(x, len(order)))
    return column


def format_skill(table: pd.DataFrame, confidence: float = 0.9) -> str:
    """The table as text: scores ``value [lower, upper]`` by lead, then the model minus each baseline with its
    paired interval (``*``: the interval excludes 0)."""
    def cell(r: pd.Series, star: bool) -> str:
        sig = "*" if star and (r.lower > 0 or r.upper < 0) else ""
        return f"{r.value:.4g} [{r.lower:.3g}, {r.upper:.3g}]{sig}"

    out = []
    for ref, part in table.groupby("reference", sort=False):
        wide = part.assign(cell=[cell(r, bool(ref)) for r in part.itertuples()]).pivot_table(
            index=["metric", "channel", "model"], columns="lead_hours", values="cell", aggfunc="first", sort=False)
        head = (f"scores [{100 * confidence:g}% interval]" if not ref else
                f"model minus {ref} [{100 * confidence:g}% paired interval; * excludes 0]")
        out += [head, wide.to_string(), ""]
    return "\n".join(out)
