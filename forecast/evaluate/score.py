"""Score a forecast and its baselines on the same cases: one tidy dataset ``(metric, region, variable, lead_time)``.

What is computed (the maths, :mod:`forecast.evaluate.metrics`) is separate from how it runs. As in
WeatherBench2, each score is a per-initial-time *statistic* (area-weighted MSE, CRPS, ACC, ...) that is
then *finalised* over the initial times (RMSE = root of the mean MSE). The statistics of a block of
initial times are built lazily over the dask-chunked forecast and computed together in one pass
(:func:`forecast.compute.session`: threads, or a ``dask.distributed`` LocalCluster); block after
block, the product is read once, chunk by chunk, so products larger than memory are scored.

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
from forecast.compute import Scheduler, session
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
    ensemble_variance,
    mae,
    mse,
    rank_histogram,
    zonal_energy_spectrum,
)
from forecast.evaluate.regions import REGION, region_masks
from forecast.schema import INIT_TIME, LEAD_TIME, MEMBER, VALID_TIME
from forecast.storage import atomic_files

__all__ = ["BASELINES", "SCORES", "STATISTICS", "EvaluateResult", "Forecast", "evaluate", "forecast_names",
           "read_scores", "run_evaluate", "score_summary", "scores_table", "write_scores"]

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

    def cases(self, inits: slice) -> Forecast:
        """The same forecast on a block of initial times."""
        pick = {INIT_TIME: inits}
        clim = None if self.climatology is None else self.climatology.isel(pick)
        return Forecast(self.fields.isel(pick), self.truth.isel(pick), clim, self.masks)


# Per-initial-time statistics (lazy Datasets with dims init_time, lead_time, region), or None where one
# does not apply to a forecast. Deterministic statistics of an ensemble are those of its mean.
STATISTICS: dict[str, Callable[[Forecast], xr.Dataset | None]] = {
    "mse": lambda f: mse(f.mean, f.truth, f.masks),
    "bias": lambda f: bias(f.mean, f.truth, f.masks, time_dim=None),
    "mae": lambda f: mae(f.mean, f.truth, f.masks, time_dim=None),
    "acc": lambda f: None if f.climatology is None else acc(f.mean, f.truth, f.climatology, f.masks, time_dim=None),
    "crps": lambda f: crps(f.fields, f.truth, f.masks, time_dim=None),
    "variance": lambda f: ensemble_variance(f.fields, f.masks) if f.ensemble else None,
}


def _mean(x: xr.Dataset) -> xr.Dataset:
    return x.mean(INIT_TIME, skipna=False)


# Scores from the statistics averaged over initial times (WB2: RMSE is the root of the mean MSE).
SCORES: dict[str, tuple[tuple[str, ...], Callable[..., xr.Dataset]]] = {
    "rmse": (("mse",), lambda s: np.sqrt(_mean(s["mse"]))),
    "bias": (("bias",), lambda s: _mean(s["bias"])),
    "mae": (("mae",), lambda s: _mean(s["mae"])),
    "acc": (("acc",), lambda s: s["acc"].mean(INIT_TIME)),  # undefined (NaN) ACCs are left out of the mean
    "crps": (("crps",), lambda s: _mean(s["crps"])),
    "spread": (("variance",), lambda s: np.sqrt(_mean(s["variance"]))),
    "spread_skill": (("variance", "mse"), lambda s: np.sqrt(_mean(s["variance"]) / _mean(s["mse"]))),
}


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


def _statistics(forecasts: dict[str, Forecast], metrics: list[str], spectrum_band: tuple[float, float]) -> dict:
    """Lazy per-initial-time statistics ``{(forecast, statistic): Dataset}`` that ``metrics`` need."""
    needed = {stat for m in metrics if m in SCORES for stat in SCORES[m][0]}
    lazy: dict = {}
    for src, f in forecasts.items():
        for stat in sorted(needed):
            result = STATISTICS[stat](f)
            if result is not None:
                lazy[(src, stat)] = result
    main_name, main = next(iter(forecasts.items()))
    if "rank_histogram" in metrics and main.ensemble:
        lazy[(main_name, "rank_histogram")] = rank_histogram(main.fields, main.truth, main.masks, time_dim=None)
    if "spectrum" in metrics:
        spec = zonal_energy_spectrum(main.fields, spectrum_band, time_dim=None)
        lazy[(main_name, "spectrum")] = spec.mean(MEMBER) if MEMBER in spec.dims else spec
        lazy[("truth", "spectrum")] = zonal_energy_spectrum(main.truth, spectrum_band, time_dim=None)
    return lazy


def _blocks(chunks: tuple[int, ...], per_block: int) -> list[slice]:
    """Slices of initial times covering ``per_block`` dask chunks each."""
    edges = np.concatenate([[0], np.cumsum(chunks)])[::per_block].tolist()
    edges = edges if edges[-1] == sum(chunks) else [*edges, sum(chunks)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _as_array(ds: xr.Dataset, variables: list[str], *dims: str) -> xr.DataArray:
    arr = ds[variables].to_dataarray(VARIABLE).transpose(*dims)
    arr.attrs = {}
    return arr


def evaluate(aligned: Aligned, masks: xr.DataArray, climatology: xr.Dataset | None = None, name: str = "forecast",
             metrics: list[str] | None = None, baselines: list[str] | None = None,
             spectrum_band: tuple[float, float] = (-60.0, 60.0), scheduler: Scheduler = "threads",
             workers: int = 2, progress: bool = False) -> xr.Dataset:
    """Scores of ``aligned.forecast`` and the ``baselines`` (see the module docstring).

    The cases are processed in blocks of initial times (4 dask chunks per worker): every statistic
    of a block is computed in one pass over its chunks, which are then released, so memory holds a few
    chunks whatever the size of the product. ``climatology`` is the climatology at the valid times
    (:func:`climatology_at`), needed by ACC and the climatology baseline.
    """
    metrics = list(METRICS) if metrics is None else list(metrics)
    baselines = list(BASELINES) if baselines is None else list(baselines)
    if name in BASELINES or name == "truth":
        raise InputError(f"the forecast cannot be called {name!r}: that name is taken by a baseline")
    forecasts = _forecasts(aligned, climatology, masks, name, baselines)
    chunks = aligned.forecast.chunks.get(INIT_TIME) or (aligned.forecast.sizes[INIT_TIME],)
    blocks = _blocks(tuple(chunks), 4 * max(workers, 1))
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc="evaluate", unit="block")
    parts: dict = {}
    with session(scheduler, workers) as dask_session:
        for inits in blocks:
            lazy = _statistics({k: f.cases(inits) for k, f in forecasts.items()}, metrics, spectrum_band)
            for key, value in zip(lazy, dask_session.compute(list(lazy.values())), strict=True):
                parts.setdefault(key, []).append(value)
    stats = {key: xr.concat(values, INIT_TIME) for key, values in parts.items()}
    return _assemble(aligned, masks, forecasts, stats, name, metrics, baselines, spectrum_band)


def _assemble(aligned: Aligned, masks: xr.DataArray, forecasts: dict[str, Forecast], stats: dict, name: str,
              metrics: list[str], baselines: list[str], spectrum_band: tuple[float, float]) -> xr.Dataset:
    variables = aligned.variables
    score_names = [m for m in metrics if m in SCORES]
    leads = aligned.truth[LEAD_TIME]
    out = xr.Dataset(coords={METRIC: score_names, REGION: masks[REGION].values, VARIABLE: variables,
                             LEAD_TIME: leads.values})
    for src in forecasts:
        arr = xr.DataArray(np.full((len(score_names), masks.sizes[REGION], len(variables), leads.size), np.nan),
                           dims=[METRIC, REGION, VARIABLE, LEAD_TIME], coords=out.coords)
        for i, m in enumerate(score_names):
            needs, finalise = SCORES[m]
            if all((src, k) in stats for k in needs):
                with np.errstate(invalid="ignore", divide="ignore"):
                    value = finalise({k: stats[(src, k)] for k in needs})
                arr[i] = _as_array(value, variables, REGION, VARIABLE, LEAD_TIME).values
        out[src] = arr.assign_attrs(long_name=f"scores of {src}", role="forecast" if src == name else "baseline")
    if (name, "rank_histogram") in stats:
        out["rank_histogram"] = _as_array(stats[(name, "rank_histogram")].mean(INIT_TIME), variables, REGION,
                                          VARIABLE, LEAD_TIME, RANK).assign_attrs(
            long_name="area-weighted frequency of the truth's rank among the members",
            description="rank k: k members below the truth; ties share their weight; flat = 1/(members+1)")
    if ("truth", "spectrum") in stats:
        for src, label in ((name, "forecast"), ("truth", "truth")):
            spec = _as_array(stats[(src, "spectrum")].mean(INIT_TIME), variables, VARIABLE, LEAD_TIME, WAVENUMBER)
            out[f"spectrum_{label}"] = spec.assign_attrs(
                long_name=f"zonal energy spectrum of the {label}",
                description=f"power per zonal wavenumber (units squared), area-weighted mean over latitudes "
                            f"{spectrum_band[0]:g}..{spectrum_band[1]:g}, mean over initial times"
                            + (" and members" if label == "forecast" and aligned.is_ensemble else ""))
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


def forecast_names(scores: xr.Dataset) -> list[str]:
    """The scored forecasts of a scores dataset: the product's first, then the baselines."""
    names = [str(n) for n, v in scores.data_vars.items() if v.dims == (METRIC, REGION, VARIABLE, LEAD_TIME)]
    main = scores.attrs.get("forecast")
    return sorted(names, key=lambda n: n != main)


def score_summary(scores: xr.Dataset, region: str = "global", max_leads: int = 6) -> pd.DataFrame:
    """Scores of every forecast at up to ``max_leads`` leads (evenly spread): rows ``metric, variable, forecast``."""
    leads = scores["lead_time"].values
    picks = np.unique(np.linspace(0, leads.size - 1, min(max_leads, leads.size)).round().astype(int))
    rows = []
    for m in scores["metric"].values:
        for v in scores["variable"].values:
            for name in forecast_names(scores):
                values = scores[name].sel(region=region, metric=m, variable=v).isel(lead_time=picks).values
                if np.isfinite(values).any():
                    rows.append({"metric": str(m), "variable": str(v), "forecast": name,
                                 **{f"{leads[i] / np.timedelta64(1, 'h'):g} h": x for i, x in zip(picks, values,
                                                                                                    strict=True)}})
    return pd.DataFrame(rows).set_index(["metric", "variable", "forecast"])


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
    """``scores.nc`` (everything) and ``scores.csv`` (:func:`scores_table`) in ``out_dir``, as one unit: both
    replace the previous pair or neither does (:func:`forecast.storage.atomic_files`)."""
    out_dir = Path(out_dir)
    nc, csv = out_dir / "scores.nc", out_dir / "scores.csv"
    with atomic_files([nc, csv]) as (tmp_nc, tmp_csv):
        scores_table(ds).to_csv(tmp_csv, index=False, float_format="%.6g")
        ds.to_netcdf(tmp_nc, engine="netcdf4")
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
    nc, csv = write_scores(scores, out_dir or config.run_dir(name))
    return EvaluateResult(scores, nc, csv, time.perf_counter() - t0)
