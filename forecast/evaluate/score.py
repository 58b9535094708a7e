"""Score a forecast and its baselines on the same cases: one tidy dataset ``(metric, region, variable, lead_time)``.

What is computed (the maths, :mod:`forecast.evaluate.metrics`) is separate from how it runs. As in
WeatherBench2, each score is a per-initial-time *statistic* (area-weighted MSE, CRPS, ACC, ...) that is
then *finalised* over the initial times (RMSE = root of the mean MSE). The statistics of a block of
initial times are built lazily over the dask-chunked forecast and computed together in one pass
(:func:`forecast.compute.session`: threads, or a ``dask.distributed`` LocalCluster); block after
block, the product is read once, chunk by chunk, so products larger than memory are scored. Chunks and
blocks are sized from what a worker may hold (``memory_mb``; on a cluster, what its memory limit leaves),
and the truth and the climatology are read chunk by chunk at the valid times each chunk needs.

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
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast import __version__
from forecast.compute import SCHEDULER_NAMES, Scheduler, Session, session
from forecast.config import dump_config
from forecast.errors import InputError
from forecast.evaluate.align import Aligned, align, open_forecast, open_truth
from forecast.evaluate.baselines import climatology_ensemble, persistence_ensemble
from forecast.evaluate.bootstrap import (
    BOUND,
    block_lengths,
    bootstrap_samples,
    confidence_interval,
    paired_difference,
)
from forecast.evaluate.climatology import build_climatology, climatology_at, open_climatology, write_climatology
from forecast.evaluate.config import ENSEMBLE_BASELINES, METRICS, EvaluateConfig, StatisticsConfig
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
from forecast.remote import is_url, upload_files
from forecast.schema import INIT_TIME, LEAD_TIME, MEMBER, VALID_TIME
from forecast.storage import atomic_files, check_output_path

__all__ = ["BASELINES", "SCORES", "STATISTICS", "EvaluateResult", "Forecast", "dispersion_verdict", "evaluate",
           "few_cases_warning", "finalise", "forecast_names", "read_scores", "run_evaluate", "score_summary",
           "score_uncertainty", "scores_table", "write_scores"]

log = logging.getLogger(__name__)

BASELINES = ("persistence", "climatology", *ENSEMBLE_BASELINES)
METRIC = "metric"
VARIABLE = "variable"
SOURCE = "source"
STATISTIC = "statistic"
REFERENCE = "reference"
# Names of variables and dimensions of a scores dataset besides the forecasts'.
RESERVED = ("truth", SOURCE, STATISTIC, REFERENCE, METRIC, VARIABLE, "members", "units", "statistics",
            "score_interval", "difference_interval", "p_value", "block_length", "rank_histogram")


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


# Scores as functions of the init-time means of their statistics (WB2: RMSE is the root of the mean MSE) and
# of the forecast's member count M. The point estimate averages the statistics over every initial time; the
# bootstrap (:mod:`forecast.evaluate.bootstrap`) over resamples of them. spread_skill_corrected multiplies
# the ratio by sqrt((M + 1) / M) (Fortin et al. 2014), so that a reliable ensemble scores 1 whatever M.
SCORES: dict[str, tuple[tuple[str, ...], Callable[[dict, int], xr.Dataset]]] = {
    "rmse": (("mse",), lambda m, k: np.sqrt(m["mse"])),
    "bias": (("bias",), lambda m, k: m["bias"]),
    "mae": (("mae",), lambda m, k: m["mae"]),
    "acc": (("acc",), lambda m, k: m["acc"]),
    "crps": (("crps",), lambda m, k: m["crps"]),
    "spread": (("variance",), lambda m, k: np.sqrt(m["variance"])),
    "spread_skill": (("variance", "mse"), lambda m, k: np.sqrt(m["variance"] / m["mse"])),
    "spread_skill_corrected": (("variance", "mse"), lambda m, k: np.sqrt((k + 1) / k * m["variance"] / m["mse"])),
}
# Bytes a worker holds per byte of forecast while it scores a block (all statistics at once): the forecast's
# chunk, the truth, climatology and persistence at its valid times, and the temporaries of the statistics
# (errors, anomalies and their squares, float64 products with the area weights). Measured on a 420 MB product
# at 91 x 180, every metric and baseline: 5 to 6 on threads, up to 11 on a 400 MB LocalCluster worker
# (tests/reliability/test_evaluate_memory.py checks a product larger than a worker's memory limit).
WORKING_SET = 8
# What one worker may hold while it scores (MB) with the threaded schedulers, unless the config says.
THREAD_MEMORY_MB = 128.0

# Statistics whose undefined (NaN) values are left out of the init-time mean: the ACC of a forecast whose
# anomaly is zero. Any other NaN (a diverged forecast) makes the score NaN.
_SKIPNA = {"acc"}


def finalise(metric: str, statistics: dict, members: int = 1):
    """The score ``metric`` from its per-initial-time ``statistics`` (``{name: Dataset or DataArray}`` with
    ``init_time``): their means over initial times through :data:`SCORES`."""
    needs, combine = SCORES[metric]
    with np.errstate(invalid="ignore", divide="ignore"):
        return combine({k: statistics[k].mean(INIT_TIME, skipna=k in _SKIPNA) for k in needs}, members)


def _forecasts(aligned: Aligned, climatology: xr.Dataset | None, masks: xr.DataArray, name: str,
               baselines: list[str], ensembles: dict[str, xr.Dataset]) -> dict[str, Forecast]:
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
    for key, fields in ensembles.items():
        out[key] = Forecast(fields, aligned.truth, climatology, masks)
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


def _chunks_per_block(forecast: xr.Dataset, workers: int, memory_mb: float | None) -> int:
    """Chunks of initial times computed together: as many as fit ``memory_mb`` per worker (at least one each,
    at most 4), one pass of the workers over them; 4 per worker without a budget."""
    if memory_mb is None:
        return 4 * workers
    chunk = max(forecast.chunks.get(INIT_TIME) or (forecast.sizes[INIT_TIME],))
    chunk_bytes = forecast.nbytes * chunk / max(forecast.sizes[INIT_TIME], 1)  # every variable of one chunk
    return workers * int(np.clip(memory_mb * 2**20 // (WORKING_SET * chunk_bytes), 1, 4))


def _reduced(value: xr.Dataset) -> xr.Dataset:
    """A statistic only its init-time mean is kept of (rank histogram, spectra): its sum and count over the
    block's initial times (NaN skipped, as ``mean`` does), so memory does not grow with the cases."""
    return xr.Dataset({"sum": value.to_dataarray("_var").sum(INIT_TIME),
                       "count": value.to_dataarray("_var").count(INIT_TIME)})


def _init_mean(parts: list[xr.Dataset]) -> xr.Dataset:
    """The init-time mean from the blocks' :func:`_reduced` sums and counts."""
    total = sum(p["sum"] for p in parts)
    count = sum(p["count"] for p in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).to_dataset("_var")


def _as_array(ds: xr.Dataset, variables: list[str], *dims: str) -> xr.DataArray:
    arr = ds[variables].to_dataarray(VARIABLE).transpose(*dims)
    arr.attrs = {}
    return arr


def evaluate(aligned: Aligned, masks: xr.DataArray, climatology: xr.Dataset | None = None, name: str = "forecast",
             metrics: list[str] | None = None, baselines: list[str] | None = None,
             spectrum_band: tuple[float, float] = (-60.0, 60.0), scheduler: Scheduler | Session = "threads",
             workers: int = 2, progress: bool = False, ensembles: dict[str, xr.Dataset] | None = None,
             statistics: StatisticsConfig | None = None, memory_mb: float | None = None) -> xr.Dataset:
    """Scores of ``aligned.forecast`` and the ``baselines`` (see the module docstring).

    The cases are processed in blocks of initial times: every statistic of a block is computed in one pass
    over its chunks, which are then released, so memory holds a few chunks whatever the size of the product.
    ``memory_mb``: what one worker may hold while it scores (MB), which sets the dask chunks per block (open
    the product in chunks of at most ``memory_mb /`` :data:`WORKING_SET`, every variable together, with
    :func:`~forecast.evaluate.align.open_forecast`'s ``total_mb``); None: 4 chunks per worker.
    Only the per-initial-time statistics the scores and their intervals need are kept; the rank histogram
    and spectra are summed block by block. ``scheduler``: a scheduler name or address, or an open
    :class:`forecast.compute.Session`. ``climatology`` is the climatology at the valid times
    (:func:`climatology_at`), needed by ACC and the climatology baseline. ``baselines``: the point
    baselines (persistence, climatology); ``ensembles``: probabilistic baselines by name, Datasets
    ``(init_time, lead_time, member, lat, lon)`` on the forecast's cases (:mod:`forecast.evaluate.baselines`).
    ``statistics``: the bootstrap's settings (:func:`score_uncertainty`); default :class:`StatisticsConfig`.
    """
    metrics = list(METRICS) if metrics is None else list(metrics)
    baselines = ["persistence", "climatology"] if baselines is None else [b for b in baselines
                                                                        if b not in ENSEMBLE_BASELINES]
    ensembles = ensembles or {}
    if name in BASELINES or name in RESERVED:
        raise InputError(f"the forecast cannot be called {name!r}: that name is taken by a baseline or by another "
                         "variable of the scores; pass --label NAME")
    forecasts = _forecasts(aligned, climatology, masks, name, baselines, ensembles)
    parts: dict = {}
    with session(scheduler, workers) as dask_session:
        chunks = aligned.forecast.chunks.get(INIT_TIME) or (aligned.forecast.sizes[INIT_TIME],)
        blocks = _blocks(tuple(chunks), _chunks_per_block(aligned.forecast, max(dask_session.workers, 1), memory_mb))
        if progress:
            from tqdm import tqdm

            blocks = tqdm(blocks, desc="evaluate", unit="block")
        # The lazy statistics of every case are built once (xarray's graph building costs as much as a block's
        # computation); each block computes its slice of them, whole chunks, the rest of the graph culled.
        lazy = _statistics(forecasts, metrics, spectrum_band)
        for inits in blocks:
            block = {key: value.isel({INIT_TIME: inits}) for key, value in lazy.items()}
            block = {key: value if key[1] in STATISTICS else _reduced(value) for key, value in block.items()}
            for key, value in zip(block, dask_session.compute(list(block.values())), strict=True):
                parts.setdefault(key, []).append(value)
    stats = {key: xr.concat(values, INIT_TIME) if key[1] in STATISTICS else _init_mean(values)
             for key, values in parts.items()}
    out = _assemble(aligned, masks, forecasts, stats, name, metrics, [*baselines, *ensembles], spectrum_band)
    per_init = _statistics_array(forecasts, stats, aligned.variables)
    uncertainty = score_uncertainty(per_init, [m for m in metrics if m in SCORES], name,
                                    [b for b in forecasts if b != name], statistics or StatisticsConfig())
    return out.merge(uncertainty).assign_attrs({**out.attrs, **uncertainty.attrs})


def _statistics_array(forecasts: dict[str, Forecast], stats: dict, variables: list[str]) -> xr.DataArray:
    """Every per-initial-time statistic in one array ``(forecast, statistic, init_time, region, variable,
    lead_time)`` (NaN where one does not apply), with each forecast's member count as a coordinate."""
    names = sorted({k for (_, k) in stats if k in STATISTICS})

    def tidy(ds: xr.Dataset) -> xr.DataArray:
        return _as_array(ds, variables, INIT_TIME, REGION, VARIABLE, LEAD_TIME).reset_coords(drop=True)

    empty = xr.full_like(tidy(next(stats[key] for key in stats if key[1] in STATISTICS)), np.nan)
    rows = [xr.concat([tidy(stats[(src, k)]) if (src, k) in stats else empty for k in names], STATISTIC)
            for src in forecasts]
    out = xr.concat(rows, SOURCE).assign_coords({SOURCE: list(forecasts), STATISTIC: names})
    members = [int(f.fields.sizes.get(MEMBER, 1)) for f in forecasts.values()]
    return out.assign_coords(members=(SOURCE, members))


def score_uncertainty(statistics: xr.DataArray, metrics: list[str], forecast: str, references: list[str],
                      config: StatisticsConfig, sources: list[str] | None = None) -> xr.Dataset:
    """Intervals of every score and paired significance of ``forecast`` minus each of ``references``.

    ``statistics``: :func:`_statistics_array`'s ``(forecast, statistic, init_time, ...)`` with a ``members``
    coordinate. One block length per region, variable and lead (the largest over every statistic series
    there, :func:`forecast.evaluate.bootstrap.block_lengths`), shared by all forecasts, so that their
    resamples pair. Returns ``score_interval`` ``(forecast, bound, metric, region, variable, lead_time)``,
    ``difference_interval`` ``(reference, bound, ...)`` and ``p_value`` ``(reference, metric, ...)`` of
    ``forecast - reference``, ``block_length`` and ``statistics`` itself (kept for ``forecast compare``).
    ``sources``: the forecasts whose intervals are computed (default all; the block length still sees all).
    """
    statistics = statistics.drop_vars("units", errors="ignore")  # read back from scores.nc it has the units
    series = [statistics.sel({SOURCE: f, STATISTIC: k}, drop=True) for f in statistics[SOURCE].values
              for k in statistics[STATISTIC].values]
    block = block_lengths([s for s in series if bool(np.isfinite(s).any())] or series[:1])
    members = dict(zip(statistics[SOURCE].values.tolist(), statistics["members"].values.tolist(), strict=True))
    sources = statistics[SOURCE].values.tolist() if sources is None else sources
    kept = statistics
    statistics = statistics.drop_vars("members")  # a coordinate along `source`: it would spread to every result
    grid = {k: statistics[k] for k in (REGION, VARIABLE, LEAD_TIME)}
    nan = xr.DataArray(np.nan, coords={BOUND: ["lower", "upper"], **grid}, dims=[BOUND, *grid])
    intervals: dict = {}
    diffs: dict = {}

    def samples(src: str, m: str):
        needs, combine = SCORES[m]
        stat = {k: statistics.sel({SOURCE: src, STATISTIC: k}, drop=True) for k in needs
                if k in statistics[STATISTIC].values}
        if len(stat) < len(needs) or not all(bool(np.isfinite(v).any()) for v in stat.values()):
            return None
        return bootstrap_samples(stat, lambda x: combine(x, members[src]), block=block,
                                 n_resamples=config.n_resamples, seed=config.seed)

    for m in metrics:
        main = samples(forecast, m) if config.n_resamples else None
        for src in dict.fromkeys([*sources, *references]):
            s = main if src == forecast else (samples(src, m) if config.n_resamples else None)
            intervals[(src, m)] = nan if s is None else confidence_interval(s, config.confidence)
            if src in references:
                diffs[(src, m)] = (xr.Dataset({"interval": nan, "p_value": nan.isel({BOUND: 0}, drop=True)})
                                   if s is None or main is None else paired_difference(main, s, config.confidence))
    return _uncertainty_dataset(kept, sources, metrics, references, block, intervals, diffs, config)


def _uncertainty_dataset(statistics: xr.DataArray, names: list[str], metrics: list[str], references: list[str],
                         block: xr.DataArray, intervals: dict, diffs: dict, config: StatisticsConfig) -> xr.Dataset:
    score_interval = xr.concat([xr.concat([intervals[(f, m)] for m in metrics], METRIC) for f in names], SOURCE)
    out = xr.Dataset({
        "score_interval": score_interval.assign_coords({SOURCE: names, METRIC: metrics}).transpose(
            SOURCE, BOUND, METRIC, REGION, VARIABLE, LEAD_TIME).assign_attrs(
            long_name=f"{100 * config.confidence:g}% confidence interval of each score",
            method="circular block bootstrap over initial times (Wilks 1997 block length), percentile interval",
            confidence=config.confidence, n_resamples=config.n_resamples),
        "block_length": block.transpose(REGION, VARIABLE, LEAD_TIME).assign_attrs(
            long_name="bootstrap block length (initial times)", units="1"),
        "statistics": statistics.astype(np.float32).assign_attrs(
            long_name="per-initial-time statistics the scores are means of (float32)"),
    })
    if references:
        diff = xr.concat([xr.concat([diffs[(r, m)] for m in metrics], METRIC) for r in references], REFERENCE)
        diff = diff.assign_coords({REFERENCE: references, METRIC: metrics})
        out["difference_interval"] = diff["interval"].transpose(REFERENCE, BOUND, METRIC, REGION, VARIABLE,
                                                                LEAD_TIME).assign_attrs(
            long_name=f"{100 * config.confidence:g}% confidence interval of the forecast's score minus the "
                      "reference's (paired: the same resampled initial times)")
        out["p_value"] = diff["p_value"].transpose(REFERENCE, METRIC, REGION, VARIABLE, LEAD_TIME).assign_attrs(
            long_name="two-sided paired bootstrap p-value of no difference between forecast and reference",
            significance_level=round(1.0 - config.confidence, 6))
    out.attrs = {"confidence": config.confidence, "n_resamples": config.n_resamples, "bootstrap_seed": config.seed,
                 "min_init_times": config.min_init_times}
    return out


def _assemble(aligned: Aligned, masks: xr.DataArray, forecasts: dict[str, Forecast], stats: dict, name: str,
              metrics: list[str], baselines: list[str], spectrum_band: tuple[float, float]) -> xr.Dataset:
    variables = aligned.variables
    score_names = [m for m in metrics if m in SCORES]
    leads = aligned.truth[LEAD_TIME]
    out = xr.Dataset(coords={METRIC: score_names, REGION: masks[REGION].values, VARIABLE: variables,
                             LEAD_TIME: leads.values})
    for src, f in forecasts.items():
        arr = xr.DataArray(np.full((len(score_names), masks.sizes[REGION], len(variables), leads.size), np.nan),
                           dims=[METRIC, REGION, VARIABLE, LEAD_TIME], coords=out.coords)
        for i, m in enumerate(score_names):
            if all((src, k) in stats for k in SCORES[m][0]):
                value = finalise(m, {k: stats[(src, k)] for k in SCORES[m][0]}, f.fields.sizes.get(MEMBER, 1))
                arr[i] = _as_array(value, variables, REGION, VARIABLE, LEAD_TIME).values
        out[src] = arr.assign_attrs(long_name=f"scores of {src}", role="forecast" if src == name else "baseline",
                                    members=int(f.fields.sizes.get(MEMBER, 1)))
    if (name, "rank_histogram") in stats:
        out["rank_histogram"] = _as_array(stats[(name, "rank_histogram")], variables, REGION,
                                          VARIABLE, LEAD_TIME, RANK).assign_attrs(
            long_name="area-weighted frequency of the truth's rank among the members",
            description="rank k: k members below the truth; ties share their weight; flat = 1/(members+1)")
    if ("truth", "spectrum") in stats:
        for src, label in ((name, "forecast"), ("truth", "truth")):
            spec = _as_array(stats[(src, "spectrum")], variables, VARIABLE, LEAD_TIME, WAVENUMBER)
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


def score_summary(scores: xr.Dataset, region: str = "global", max_leads: int = 6, bound: str | None = None
                  ) -> pd.DataFrame:
    """Scores of every forecast at up to ``max_leads`` leads (evenly spread): rows ``metric, variable, forecast``.

    ``bound`` (``lower`` or ``upper``): that bound of the scores' confidence intervals instead of the scores.
    """
    leads = scores["lead_time"].values
    picks = np.unique(np.linspace(0, leads.size - 1, min(max_leads, leads.size)).round().astype(int))
    rows = []
    for m in scores["metric"].values:
        for v in scores["variable"].values:
            for name in forecast_names(scores):
                da = scores[name] if bound is None else scores["score_interval"].sel({SOURCE: name, BOUND: bound})
                values = da.sel(region=region, metric=m, variable=v).isel(lead_time=picks).values
                if np.isfinite(scores[name].sel(region=region, metric=m, variable=v).values).any():
                    rows.append({"metric": str(m), "variable": str(v), "forecast": name,
                                 **{f"{leads[i] / np.timedelta64(1, 'h'):g} h": x for i, x in zip(picks, values,
                                                                                                    strict=True)}})
    return pd.DataFrame(rows).set_index(["metric", "variable", "forecast"])


def few_cases_warning(scores: xr.Dataset) -> str | None:
    """A warning when the scores rest on fewer initial times than the config's ``statistics.min_init_times``."""
    n, least = int(scores.attrs.get("n_init_times", 0)), int(scores.attrs.get("min_init_times", 20))
    if n >= least:
        return None
    return (f"these scores rest on {n} initial time(s), fewer than {least}: a score's value depends on which cases "
            "were picked, and its interval is wide or, below about 10, unreliable; score more initial times "
            "(e.g. a longer `init` range in the predict config)")


def dispersion_verdict(scores: xr.Dataset, region: str = "global") -> str | None:
    """One line on an ensemble's dispersion: per variable, at how many leads the spread/skill ratio (corrected by
    ``sqrt((M + 1) / M)`` where the scores hold it, so that reliable is 1) lies significantly below or above its
    reliable value (its interval excludes it; the value itself without intervals). None for a point forecast."""
    main = forecast_names(scores)[0]
    members = int(scores.attrs.get("members", 1))
    metrics = scores[METRIC].values
    if members < 2 or "spread_skill" not in metrics:
        return None
    ratio = "spread_skill_corrected" if "spread_skill_corrected" in metrics else "spread_skill"
    reliable = 1.0 if ratio == "spread_skill_corrected" else float(np.sqrt(members / (members + 1.0)))
    value = scores[main].sel({METRIC: ratio, REGION: region})
    if "score_interval" in scores:
        ci = scores["score_interval"].sel({SOURCE: main, METRIC: ratio, REGION: region})
        low, high = ci.sel({BOUND: "upper"}) < reliable, ci.sel({BOUND: "lower"}) > reliable
    else:
        low, high = value < reliable, value > reliable
    n = value.sizes[LEAD_TIME]
    parts, under, over = [], 0, 0
    for v in scores[VARIABLE].values.tolist():
        u, o = int(low.sel({VARIABLE: v}).sum()), int(high.sel({VARIABLE: v}).sum())
        under, over = under + (u > n / 2), over + (o > n / 2)
        parts.append(f"{v} {float(value.sel({VARIABLE: v}).mean()):.2f} ({u}/{n} leads below, {o} above)")
    k = len(parts)
    verdict = ("under-dispersive (spread too small)" if under > k / 2 else
               "over-dispersive (spread too large)" if over > k / 2 else "not clearly over- or under-dispersive")
    return (f"{verdict}: mean {'corrected ' if reliable == 1.0 else ''}spread/skill ratio (reliable "
            f"{reliable:.3g}), {region}: " + "; ".join(parts))


def scores_table(ds: xr.Dataset) -> pd.DataFrame:
    """The scores as a long table: ``forecast, metric, region, variable, units, lead_time_hours, value`` and, where
    the scores hold intervals, their ``lower`` and ``upper`` bounds."""
    frames = []
    units = dict(zip(ds[VARIABLE].values.tolist(), ds["units"].values.tolist(), strict=True))
    for name, da in ds.data_vars.items():
        if da.dims != (METRIC, REGION, VARIABLE, LEAD_TIME):
            continue
        df = da.drop_vars("units").to_dataframe(name="value").reset_index()
        df.insert(0, "forecast", name)
        if "score_interval" in ds and name in ds[SOURCE].values:
            for bound in ("lower", "upper"):
                ci = ds["score_interval"].sel({SOURCE: name, BOUND: bound}, drop=True).drop_vars("units")
                df[bound] = ci.transpose(*da.dims).values.reshape(-1)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    table["units"] = table[VARIABLE].map(units)
    table["lead_time_hours"] = table[LEAD_TIME] / pd.Timedelta(hours=1)
    extra = [c for c in ("lower", "upper") if c in table]
    return table[["forecast", METRIC, REGION, VARIABLE, "units", "lead_time_hours", "value", *extra]]


def write_scores(ds: xr.Dataset, out_dir: str | Path) -> tuple[Path | str, Path | str]:
    """``scores.nc`` (everything) and ``scores.csv`` (:func:`scores_table`) in ``out_dir``, as one unit: both
    replace the previous pair or neither does (:func:`forecast.storage.atomic_files`). At a URL (``s3://``,
    ``memory://``...) each file is replaced whole, ``scores.csv`` first, but the pair not as one unit."""
    if is_url(str(out_dir)):
        with tempfile.TemporaryDirectory(prefix="forecast-scores-") as tmp:
            nc, csv = write_scores(ds, tmp)
            nc_url, csv_url = upload_files([csv, nc], str(out_dir))[::-1]
        return nc_url, csv_url
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


def _ensemble_baselines(config: EvaluateConfig, aligned: Aligned, truth: xr.Dataset) -> dict[str, xr.Dataset]:
    """The probabilistic baselines the config asks for, on the forecast's cases; none for a point forecast
    (its CRPS is its MAE, compared with the point baselines)."""
    wanted = [b for b in config.baselines if b in ENSEMBLE_BASELINES]
    if not wanted or not aligned.is_ensemble:
        return {}
    members = config.baseline_members or aligned.forecast.sizes[MEMBER]
    out = {}
    if "persistence_ensemble" in wanted:
        out["persistence_ensemble"] = persistence_ensemble(truth, aligned.forecast, aligned.variables, members)
    if "climatology_ensemble" in wanted:
        c = config.climatology
        out["climatology_ensemble"] = climatology_ensemble(truth, aligned.forecast, aligned.variables, members,
                                                           config.ensemble_window_days, c.start, c.end)
    return out


def run_evaluate(config: EvaluateConfig, product: str | Path, truth: str | Path | None = None,
                 out_dir: str | Path | None = None, label: str | None = None, progress: bool = True) -> EvaluateResult:
    """``forecast evaluate``: open, align, score, write ``scores.nc`` and ``scores.csv`` into ``out_dir``.

    One dask session (:func:`forecast.compute.session`) for the whole run: the product's chunks and blocks are
    sized from what its workers may hold (``memory_mb``, by default what a cluster's memory limit leaves)."""
    t0 = time.perf_counter()
    truth = truth or config.truth
    if truth is None:
        raise InputError("no truth store: pass --truth STORE (or set `truth:` in the config)")
    with (session(config.scheduler, config.workers) as dask_session,
          tempfile.TemporaryDirectory(prefix="forecast-evaluate-") as tmp):
        memory_mb = _memory_mb(config, dask_session)
        fc = open_forecast(product, config.chunk_mb, config.allow_incomplete, memory_mb / WORKING_SET)
        tr = open_truth(truth)
        aligned = align(fc, tr, config.variables, config.lead_times, persistence="persistence" in config.baselines)
        masks = region_masks(config.regions, tr.latitude.values, tr.longitude.values, aligned.land_sea_mask,
                             config.land_threshold)
        clim = None
        if "acc" in config.metrics or "climatology" in config.baselines:
            clim = climatology_at(_climatology(config, tr, aligned.variables, progress, Path(tmp)),
                                  aligned.forecast[VALID_TIME], aligned.variables,
                                  {INIT_TIME: aligned.forecast.chunksizes[INIT_TIME][0]})
        name = label or forecast_label(fc, product)
        out_dir = out_dir or config.run_dir(name)
        if not is_url(str(out_dir)):
            out_dir = check_output_path(out_dir)  # before the scoring, not after it
        scores = evaluate(aligned, masks, clim, name, config.metrics, config.baselines, config.spectrum_lat_band,
                          dask_session, config.workers, progress, _ensemble_baselines(config, aligned, tr),
                          config.statistics, memory_mb)
    provenance = ("model_name", "model_sha256", "model_paths", "history", "perturbation_type", "ensemble_members")
    scores.attrs.update({f"product_{k}": str(fc.attrs[k]) for k in provenance if k in fc.attrs})
    scores.attrs.update({"product": str(product), "truth": str(truth),
                         "climatology": config.climatology.path or "built from the truth store",
                         "evaluate_config": dump_config(config)})
    nc, csv = write_scores(scores, out_dir)
    return EvaluateResult(scores, nc, csv, time.perf_counter() - t0)


def _memory_mb(config: EvaluateConfig, dask_session: Session) -> float:
    """What one worker may hold while it scores (MB): the config's ``memory_mb``, else what a cluster's workers'
    memory limit leaves (:meth:`Session.worker_memory`), else :data:`THREAD_MEMORY_MB`."""
    if config.memory_mb is not None:
        return config.memory_mb
    free = dask_session.worker_memory()
    return THREAD_MEMORY_MB if free is None else max(free / 2**20, 1.0)


def _climatology(config: EvaluateConfig, truth: xr.Dataset, variables: list[str], progress: bool,
                 tmp: Path) -> xr.Dataset:
    """The day-of-year x hour climatology, lazily from its file; one built from the truth store is written to
    ``tmp`` and read back lazily too, so that scoring reads the days each block needs instead of holding it
    (except on a running cluster, whose workers may not see ``tmp``: there it stays in memory)."""
    c = config.climatology
    if c.path:
        return open_climatology(c.path)
    built = build_climatology(truth, variables, c.start, c.end, c.window_days, progress=progress)
    if config.scheduler not in SCHEDULER_NAMES:
        return built
    return open_climatology(write_climatology(built, tmp / "climatology.zarr"))
