"""Model against model: the scores of several evaluations on their common cases, with paired significance.

Each ``scores.nc`` of ``forecast evaluate`` keeps the per-initial-time statistics its scores are means of
(``statistics``). Two evaluations against the same truth on the same initial times therefore pair case by
case: :func:`compare_scores` takes the initial times, regions, variables, leads and metrics all of them
share, recomputes every score from the statistics there (the same formulas, :data:`SCORES`; the statistics
are stored in float32, so values agree with each evaluation's to about 1e-6), and runs the block bootstrap
of :func:`forecast.evaluate.score.score_uncertainty` once over all models, so that every model's
difference to the reference is a paired test on the same resamples. Baselines come from the reference's
file (the same truth on the same cases gives the same baselines).

The result has the layout of ``forecast evaluate``'s scores: one variable per model and baseline
``(metric, region, variable, lead_time)``, ``score_interval``, and ``p_value`` / ``difference_interval``
with a ``model`` dimension: model minus reference, one per model other than the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.bootstrap import BOUND
from forecast.evaluate.config import StatisticsConfig
from forecast.evaluate.regions import REGION
from forecast.evaluate.score import (
    METRIC,
    REFERENCE,
    SCORES,
    SOURCE,
    STATISTIC,
    VARIABLE,
    finalise,
    forecast_names,
    read_scores,
    score_uncertainty,
)
from forecast.schema import INIT_TIME, LEAD_TIME
from forecast.storage import atomic_file

__all__ = ["MODEL", "compare_scores", "comparison_table", "pair_scores", "write_comparison"]

MODEL = "model"  # the models compared with the reference, along p_value and difference_interval


def _models(runs: list[xr.Dataset], paths: list[Path]) -> list[str]:
    names = [str(r.attrs.get("forecast")) for r in runs]
    for r, p in zip(runs, paths, strict=True):
        if "statistics" not in r:
            raise InputError(f"{p} holds no per-initial-time statistics (written before issue 12); run "
                             "`forecast evaluate` again to compare it")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"several scores are of a forecast called {dupes}: evaluate them with --label NAME")
    return names


def _common(runs: list[xr.Dataset], dim: str, paths: list[Path]) -> list:
    common = [v for v in runs[0][dim].values if all(v in r[dim].values for r in runs[1:])]
    if not common:
        raise InputError(f"the scores {[str(p) for p in paths]} share no {dim.replace('_', ' ')}: compare "
                         "evaluations of the same cases")
    return common


def compare_scores(paths: list[str | Path], reference: str | None = None,
                   statistics: StatisticsConfig | None = None) -> xr.Dataset:
    """Scores of every model in ``paths`` (scores.nc files or their folders) and the reference's baselines on the
    cases all share, with intervals and paired significance of each model against ``reference`` (a model's
    name; default the first). Refuses scores without statistics, of other truths or without common cases."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise InputError("compare needs at least two scores files (forecast compare A/scores.nc B/scores.nc)")
    runs = [read_scores(p) for p in paths]
    models = _models(runs, paths)
    reference = reference or models[0]
    if reference not in models:
        raise InputError(f"reference {reference!r} is not among the compared forecasts {models}")
    truths = {str(r.attrs.get("truth")) for r in runs}
    if len(truths) > 1:
        raise InputError(f"the scores were computed against different truths {sorted(truths)}")
    pick = {d: _common(runs, d, paths) for d in (INIT_TIME, REGION, VARIABLE, LEAD_TIME, METRIC)}
    metrics = [m for m in pick.pop(METRIC) if m in SCORES]
    ref_run = runs[models.index(reference)]
    baselines = [b for b in forecast_names(ref_run)[1:] if b in ref_run["statistics"][SOURCE].values]
    parts = [r["statistics"].sel({SOURCE: [m]}) for r, m in zip(runs, models, strict=True)]
    parts.append(ref_run["statistics"].sel({SOURCE: baselines}))
    names = sorted({str(k) for p in parts for k in p[STATISTIC].values})
    stats = xr.concat([p.reindex({STATISTIC: names}) for p in parts], SOURCE, coords="minimal", join="outer")
    stats = stats.sel(pick).astype(np.float64)
    config = statistics or StatisticsConfig(**{k: ref_run.attrs[a] for k, a in
                                               (("confidence", "confidence"), ("n_resamples", "n_resamples"),
                                                ("seed", "bootstrap_seed")) if a in ref_run.attrs})
    return _assemble(stats, metrics, models, reference, runs, paths, config)


def _assemble(stats: xr.DataArray, metrics: list[str], models: list[str], reference: str, runs: list[xr.Dataset],
              paths: list[Path], config: StatisticsConfig) -> xr.Dataset:
    members = dict(zip(stats[SOURCE].values.tolist(), stats["members"].values.tolist(), strict=True))
    out = xr.Dataset()
    for src in stats[SOURCE].values.tolist():
        per = {k: stats.sel({SOURCE: src, STATISTIC: k}, drop=True) for k in stats[STATISTIC].values.tolist()}
        nan = xr.full_like(next(iter(per.values())).isel({INIT_TIME: 0}, drop=True), np.nan)
        rows = []
        for m in metrics:
            ok = all(k in per and bool(np.isfinite(per[k]).any()) for k in SCORES[m][0])
            rows.append(finalise(m, per, members[src]) if ok else nan)
        role = "reference" if src == reference else ("model" if src in models else "baseline")
        out[src] = xr.concat(rows, METRIC).assign_coords({METRIC: metrics}).transpose(
            METRIC, REGION, VARIABLE, LEAD_TIME).drop_vars("members", errors="ignore").assign_attrs(
            role=role, members=int(members[src]))
    others = [m for m in models if m != reference]
    first = score_uncertainty(stats, metrics, reference, [], config)  # every source's intervals
    pairs = [score_uncertainty(stats, metrics, m, [reference], config, sources=[m]) for m in others]
    out["score_interval"] = first["score_interval"].drop_vars("members", errors="ignore")
    out["block_length"] = first["block_length"]
    if pairs:
        for key in ("p_value", "difference_interval"):
            out[key] = xr.concat([p[key].sel({REFERENCE: reference}, drop=True) for p in pairs], MODEL).assign_coords(
                {MODEL: others}).assign_attrs(pairs[0][key].attrs, description=f"each model minus {reference}")
    units = runs[0]["units"].sel({VARIABLE: stats[VARIABLE].values})
    out = out.assign_coords(units=(VARIABLE, units.values))
    inits = stats[INIT_TIME].values
    out.attrs = {
        "title": f"comparison of {', '.join(models)} against {reference}",
        "forecast": reference, "reference": reference, "models": ", ".join(models),
        "scores_files": json.dumps([str(p) for p in paths]), "truth": str(runs[0].attrs.get("truth")),
        "n_init_times": int(inits.size), "first_init_time": str(np.datetime_as_string(inits[0], unit="m")),
        "last_init_time": str(np.datetime_as_string(inits[-1], unit="m")), "members": int(members[reference]),
        **first.attrs,
    }
    return out


def pair_scores(comparison: xr.Dataset, model: str) -> xr.Dataset:
    """``comparison`` seen as ``model``'s evaluation against the reference: the layout the scorecard draws
    (``forecast`` attribute = model, ``p_value`` with a ``reference`` dimension)."""
    ref = comparison.attrs["reference"]
    out = comparison[[model, ref, "score_interval"]]
    out["p_value"] = comparison["p_value"].sel({MODEL: model}, drop=True).expand_dims({REFERENCE: [ref]})
    return out.assign_attrs({**comparison.attrs, "forecast": model, "members": comparison[model].attrs["members"]})


def comparison_table(comparison: xr.Dataset) -> pd.DataFrame:
    """Long table of each model minus the reference: ``model, reference, metric, region, variable, units,
    lead_time_hours, model_value, reference_value, difference, lower, upper, p_value``."""
    ref = comparison.attrs["reference"]
    frames = []
    for model in comparison["p_value"][MODEL].values.tolist():
        ds = xr.Dataset({"model_value": comparison[model], "reference_value": comparison[ref],
                         "difference": comparison[model] - comparison[ref],
                         "lower": comparison["difference_interval"].sel({MODEL: model, BOUND: "lower"}, drop=True),
                         "upper": comparison["difference_interval"].sel({MODEL: model, BOUND: "upper"}, drop=True),
                         "p_value": comparison["p_value"].sel({MODEL: model}, drop=True)})
        df = ds.to_dataframe().reset_index()
        df.insert(0, "reference", ref)
        df.insert(0, "model", model)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    table["lead_time_hours"] = table[LEAD_TIME] / pd.Timedelta(hours=1)
    return table[["model", "reference", METRIC, REGION, VARIABLE, "units", "lead_time_hours", "model_value",
                  "reference_value", "difference", "lower", "upper", "p_value"]]


def write_comparison(comparison: xr.Dataset, out_dir: str | Path) -> tuple[Path, Path]:
    """``comparison.nc`` and ``comparison.csv`` (:func:`comparison_table`) in ``out_dir``, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nc, csv = out_dir / "comparison.nc", out_dir / "comparison.csv"
    with atomic_file(csv) as tmp:
        comparison_table(comparison).to_csv(tmp, index=False, float_format="%.6g")
    with atomic_file(nc) as tmp:
        comparison.to_netcdf(tmp, engine="netcdf4")
    return nc, csv
