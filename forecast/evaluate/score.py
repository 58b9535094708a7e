"""Score a forecast and its baselines on the same cases: one tidy dataset ``(metric, region, variable, lead_time)``.

What is computed (the maths, :mod:`forecast.evaluate.metrics`) is separate from how it runs: every
score is first built lazily over the dask-chunked forecast, then all of them are computed in one
pass (:func:`forecast.compute.compute`: threads, or a ``dask.distributed`` LocalCluster), so a
product larger than memory is read once, chunk by chunk.

The result holds one data variable per forecast: the product's (named after it) and the baselines
``persistence`` (the truth at the initial time, for every lead) and ``climatology`` (the day-of-year x
hour climatology at the valid time), all on exactly the same initial times, leads and grid points.
Metrics that do not apply are NaN: the ensemble scores of a deterministic forecast, the ACC of the
climatology itself (its anomaly is zero). The CRPS of a deterministic forecast is its MAE. For an
ensemble, ``rank_histogram`` ``(region, variable, lead_time, rank)`` is stored beside the scores, and
with ``spectrum`` the zonal energy spectra of forecast and truth ``(variable, lead_time, zonal_wavenumber)``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast import __version__
from forecast.compute import Scheduler, compute
from forecast.config import dump_config
from forecast.errors import InputError
from forecast.evaluate.align import Aligned, align, open_forecast, open_truth
from forecast.evaluate.climatology import build_climatology, climatology_at, open_climatology
from forecast.evaluate.config import METRICS, EvaluateConfig
from forecast.evaluate.metrics import (
    RANK,
    WAVENUMBER,
    acc,
    bias,
    crps,
    ensemble_mean,
    mae,
    rank_histogram,
    rmse,
    spread,
    spread_skill_ratio,
    zonal_energy_spectrum,
)
from forecast.evaluate.regions import REGION, region_masks
from forecast.schema import INIT_TIME, LEAD_TIME, MEMBER, VALID_TIME
from forecast.storage import atomic_file

__all__ = ["BASELINES", "SCORES", "EvaluateResult", "Forecast", "evaluate", "read_scores", "run_evaluate",
           "scores_table", "write_scores"]

log = logging.getLogger(__name__)

BASELINES = ("persistence", "climatology")
METRIC = "metric"
VARIABLE = "variable"


@dataclass
class Forecast:
    """One forecast on the evaluation cases, with everything a score needs."""

    fields: xr.Dataset  # (init_time, lead_time[, member], lat, lon)
    truth: xr.Dataset  # (init_time, lead_time, lat, lon)
    climatology: xr.Dataset | None  # (init_time, lead_time, lat, lon)
    masks: xr.DataArray  # (region, lat, lon)

    @property
    def ensemble(self) -> bool:
        return MEMBER in self.fields.dims

    @property
    def mean(self) -> xr.Dataset:
        return ensemble_mean(self.fields)


# Scores along (metric, region, variable, lead_time): name -> lazy Dataset (lead_time, region), or None
# where the score does not apply to this forecast. Deterministic scores of an ensemble use its mean.
SCORES: dict[str, Callable[[Forecast], xr.Dataset | None]] = {
    "rmse": lambda f: rmse(f.mean, f.truth, f.masks),
    "bias": lambda f: bias(f.mean, f.truth, f.masks),
    "mae": lambda f: mae(f.mean, f.truth, f.masks),
    "acc": lambda f: None if f.climatology is None else acc(f.mean, f.truth, f.climatology, f.masks),
    "crps": lambda f: crps(f.fields, f.truth, f.masks),
    "spread": lambda f: spread(f.fields, f.masks) if f.ensemble else None,
    "spread_skill": lambda f: spread_skill_ratio(f.fields, f.truth, f.masks) if f.ensemble else None,
}
LOWER_IS_BETTER = {"rmse": True, "mae": True, "crps": True, "acc": False}


def _forecasts(aligned: Aligned, climatology: xr.Dataset | None, masks: xr.DataArray, name: str,
               baselines: list[str]) -> dict[str, Forecast]:
    out = {name: Forecast(aligned.forecast, aligned.truth, climatology, masks)}
    if "persistence" in baselines:
        if aligned.initial is None:
            raise ValueError("persistence needs the truth at the initial times (align(..., persistence=True))")
        persisted = aligned.initial.expand_dims({LEAD_TIME: aligned.truth[LEAD_TIME]}, axis=1)
        persisted = persisted.chunk(aligned.truth.chunksizes)
        out["persistence"] = Forecast(persisted, aligned.truth, climatology, masks)
    if "climatology" in baselines:
        if climatology is None:
            raise InputError("the climatology baseline needs a climatology (climatology.path, or a truth store "
                             "holding the climatology period)")
        out["climatology"] = Forecast(climatology.drop_vars(VALID_TIME, errors="ignore"), aligned.truth,
                                      climatology, masks)
    return out


def _lazy_scores(forecasts: dict[str, Forecast], metrics: list[str], spectrum_band: tuple[float, float]) -> dict:
    lazy: dict = {}
    for src, f in forecasts.items():
        for m in metrics:
            if m in SCORES:
                result = SCORES[m](f)
                if result is not None:
                    lazy[(src, m)] = result
    main_name, main = next(iter(forecasts.items()))
    if "rank_histogram" in metrics and main.ensemble:
        lazy[(main_name, "rank_histogram")] = rank_histogram(main.fields, main.truth, main.masks)
    if "spectrum" in metrics:
        spec = zonal_energy_spectrum(main.fields, spectrum_band)
        lazy[(main_name, "spectrum")] = spec.mean(MEMBER) if MEMBER in spec.dims else spec
        lazy[("truth", "spectrum")] = zonal_energy_spectrum(main.truth, spectrum_band)
    return lazy


def _as_array(ds: xr.Dataset, variables: list[str], *dims: str) -> xr.DataArray:
    arr = ds[variables].to_dataarray(VARIABLE).transpose(*dims)
    arr.attrs = {}
    return arr


def evaluate(aligned: Aligned, masks: xr.DataArray, climatology: xr.Dataset | None = None, name: str = "forecast",
             metrics: list[str] | None = None, baselines: list[str] | None = None,
             spectrum_band: tuple[float, float] = (-60.0, 60.0), scheduler: Scheduler = "threads",
             workers: int = 2, progress: bool = False) -> xr.Dataset:
    """Scores of ``aligned.forecast`` and the ``baselines`` (see the module docstring), computed in one pass.

    ``climatology`` is the climatology at the valid times (:func:`climatology_at`), needed by ACC and the
    climatology baseline.
    """
    metrics = list(METRICS) if metrics is None else list(metrics)
    baselines = list(BASELINES) if baselines is None else list(baselines)
    if name in BASELINES or name == "truth":
        raise InputError(f"the forecast cannot be called {name!r}: that name is taken by a baseline")
    forecasts = _forecasts(aligned, climatology, masks, name, baselines)
    lazy = _lazy_scores(forecasts, metrics, spectrum_band)
    keys = list(lazy)
    values = dict(zip(keys, compute([lazy[k] for k in keys], scheduler, workers, progress, "evaluate"), strict=True))

    variables = aligned.variables
    score_names = [m for m in metrics if m in SCORES]
    leads = aligned.truth[LEAD_TIME]
    out = xr.Dataset(coords={METRIC: score_names, REGION: masks[REGION].values, VARIABLE: variables,
                             LEAD_TIME: leads.values})
    for src in forecasts:
        arr = xr.DataArray(np.full((len(score_names), masks.sizes[REGION], len(variables), leads.size), np.nan),
                           dims=[METRIC, REGION, VARIABLE, LEAD_TIME], coords=out.coords)
        for i, m in enumerate(score_names):
            if (src, m) in values:
                arr[i] = _as_array(values[(src, m)], variables, REGION, VARIABLE, LEAD_TIME).values
        out[src] = arr.assign_attrs(long_name=f"scores of {src}", role="forecast" if src == name else "baseline")
    if (name, "rank_histogram") in values:
        out["rank_histogram"] = _as_array(values[(name, "rank_histogram")], variables, REGION, VARIABLE, LEAD_TIME,
                                          RANK).assign_attrs(
            long_name="area-weighted frequency of the truth's rank among the members",
            description="rank k: k members below the truth; ties share their weight; flat = 1/(members+1)")
    if ("truth", "spectrum") in values:
        for src in (name, "truth"):
            spec = _as_array(values[(src, "spectrum")], variables, VARIABLE, LEAD_TIME, WAVENUMBER)
            out[f"spectrum_{'forecast' if src == name else 'truth'}"] = spec.assign_attrs(
                long_name=f"zonal energy spectrum of the {'forecast' if src == name else 'truth'}",
                description=f"power per zonal wavenumber (units squared), area-weighted mean over latitudes "
                            f"{spectrum_band[0]:g}..{spectrum_band[1]:g}, mean over initial times"
                            + (" and members" if src == name and aligned.is_ensemble else ""))
    out = out.assign_coords(units=(VARIABLE, [aligned.units[v] for v in variables]))
    init = aligned.forecast[INIT_TIME].values
    out.attrs = {
        "title": f"scores of {name} and baselines",
        "forecast": name,
        "baselines": ", ".join(baselines),
        "members": int(aligned.forecast.sizes.get(MEMBER, 1)),
        "n_init_times": int(init.size),
        "first_init_time": str(np.datetime_as_string(init[0], unit="m")),
        "last_init_time": str(np.datetime_as_string(init[-1], unit="m")),
        "init_times": json.dumps([str(np.datetime_as_string(t, unit="m")) for t in init]),
        "definitions": "WeatherBench2: area weights sin(upper)-sin(lower) normalised to mean 1; RMSE = "
                       "sqrt(init-time mean of area-weighted MSE); uncentred ACC vs day-of-year x hour "
                       "climatology; fair CRPS; spread = sqrt(mean member variance, ddof=1); ensemble "
                       "deterministic scores use the ensemble mean",
        "forecast_version": __version__,
    }
    return out


def scores_table(ds: xr.Dataset) -> pd.DataFrame:
    """The scores as a long table: ``forecast, metric, region, variable, units, lead_time_hours, value``."""
    frames = []
    units = dict(zip(ds[VARIABLE].values.tolist(), ds["units"].values.tolist(), strict=True))
    for name, da in ds.data_vars.items():
        if da.dims != (METRIC, REGION, VARIABLE, LEAD_TIME):
            continue
        df = da.drop_vars("units").to_dataframe(name="value").reset_index()
        df.insert(0, "forecast", name)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    table["units"] = table[VARIABLE].map(units)
    table["lead_time_hours"] = table[LEAD_TIME] / pd.Timedelta(hours=1)
    return table[["forecast", METRIC, REGION, VARIABLE, "units", "lead_time_hours", "value"]]


def write_scores(ds: xr.Dataset, out_dir: str | Path) -> tuple[Path, Path]:
    """``scores.nc`` (everything) and ``scores.csv`` (:func:`scores_table`) in ``out_dir``, each atomically."""
    out_dir = Path(out_dir)
    nc, csv = out_dir / "scores.nc", out_dir / "scores.csv"
    with atomic_file(csv) as tmp:
        scores_table(ds).to_csv(tmp, index=False, float_format="%.6g")
    with atomic_file(nc) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
    return nc, csv


def read_scores(path: str | Path) -> xr.Dataset:
    """A ``scores.nc`` (or the folder holding it) written by :func:`write_scores`, in memory."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.nc"
    if not path.exists():
        raise InputError(f"no scores at {path}; run `forecast evaluate` first")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        out = ds.load()
    if VARIABLE not in out.dims or METRIC not in out.dims:
        raise InputError(f"{path} is not a scores file of `forecast evaluate`")
    return out


@dataclass
class EvaluateResult:
    scores: xr.Dataset
    netcdf: Path
    csv: Path
    seconds: float


def forecast_label(product: xr.Dataset, path: str | Path) -> str:
    """The name a product's scores go under: its ``title`` up to the colon (``forecast predict`` names), else
    the file name."""
    title = str(product.attrs.get("title", ""))
    return title.split(":", 1)[0].strip() if ":" in title else Path(path).stem


def run_evaluate(config: EvaluateConfig, product: str | Path, truth: str | Path | None = None,
                 out_dir: str | Path | None = None, label: str | None = None, progress: bool = True) -> EvaluateResult:
    """``forecast evaluate``: open, align, score, write ``scores.nc`` and ``scores.csv`` into ``out_dir``."""
    t0 = time.perf_counter()
    truth = truth or config.truth
    if truth is None:
        raise InputError("no truth store: pass --truth STORE (or set `truth:` in the config)")
    fc = open_forecast(product, config.chunk_mb, config.allow_incomplete)
    tr = open_truth(truth)
    aligned = align(fc, tr, config.variables, config.lead_times, persistence="persistence" in config.baselines)
    masks = region_masks(config.regions, tr.latitude.values, tr.longitude.values, aligned.land_sea_mask,
                         config.land_threshold)
    clim = None
    if "acc" in config.metrics or "climatology" in config.baselines:
        c = config.climatology
        source = (open_climatology(c.path) if c.path else
                  build_climatology(tr, aligned.variables, c.start, c.end, c.window_days, progress=progress))
        clim = climatology_at(source, aligned.forecast[VALID_TIME], aligned.variables,
                              {INIT_TIME: aligned.forecast.chunksizes[INIT_TIME][0]})
    name = label or forecast_label(fc, product)
    scores = evaluate(aligned, masks, clim, name, config.metrics, config.baselines, config.spectrum_lat_band,
                      config.scheduler, config.workers, progress)
    scores.attrs.update({"product": str(product), "truth": str(truth),
                         "climatology": config.climatology.path or "built from the truth store",
                         "evaluate_config": dump_config(config)})
    nc, csv = write_scores(scores, out_dir or config.run_dir)
    return EvaluateResult(scores, nc, csv, time.perf_counter() - t0)
