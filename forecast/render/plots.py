"""Plots of a scores dataset (:func:`forecast.evaluate.score.read_scores`): scores vs lead time with the
baselines on the same axes, a scorecard of relative skill, spread/skill, rank histograms, energy spectra.

Each function takes the dataset and returns a ``matplotlib.figure.Figure``; nothing is computed here
beyond ratios of stored scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from forecast.evaluate.score import forecast_names
from forecast.render.styles import pretty_units
from forecast.schema import LEAD_TIME, parse_duration

__all__ = [
    "metric_vs_lead",
    "rank_histogram_plot",
    "relative_skill",
    "scorecard",
    "spectra_plot",
    "spread_skill_plot",
]

_LINES = {"persistence": {"color": "0.45", "linestyle": "--"}, "climatology": {"color": "black", "linestyle": ":"}}
_TITLES = {"rmse": "RMSE", "acc": "ACC", "crps": "CRPS", "mae": "MAE", "bias": "bias", "spread": "spread",
           "spread_skill": "spread / skill"}
_UNITLESS = {"acc", "spread_skill"}
# Scorecard metrics: lower is better (True) or higher (False).
_LOWER_BETTER = {"rmse": True, "mae": True, "crps": True, "acc": False}


def _hours(scores: xr.Dataset) -> np.ndarray:
    return scores[LEAD_TIME].values / np.timedelta64(1, "h")


def _units(scores: xr.Dataset, variable: str) -> str:
    return str(scores["units"].sel(variable=variable).values)


def _grid(n: int, width: float = 4.0, height: float = 3.0) -> tuple[Figure, np.ndarray]:
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _interval(scores: xr.Dataset, name: str, metric: str, region: str, variable: str) -> np.ndarray | None:
    """``(2, lead)`` lower and upper bounds of a score, or None where the scores hold none."""
    if "score_interval" not in scores or name not in scores["score_interval"]["source"].values:
        return None
    ci = scores["score_interval"].sel(source=name, metric=metric, region=region, variable=variable)
    ci = ci.transpose("bound", LEAD_TIME).values
    return ci if np.isfinite(ci).any() else None


def _plot_with_interval(ax, hours: np.ndarray, y: np.ndarray, ci: np.ndarray | None, **style) -> None:
    """A score against lead time with its confidence interval as error bars (none where it has no interval)."""
    if ci is None:
        ax.plot(hours, y, marker=".", **style)
        return
    err = np.abs(np.stack([y - ci[0], ci[1] - y]))
    ax.errorbar(hours, y, yerr=np.where(np.isfinite(err), err, 0.0), marker=".", capsize=2, elinewidth=0.8, **style)


def _interval_note(scores: xr.Dataset) -> str:
    if "score_interval" not in scores:
        return ""
    return (f"; bars: {100 * float(scores.attrs.get('confidence', 0.9)):g}% intervals over "
            f"{scores.attrs.get('n_init_times', '?')} initial times")


def metric_vs_lead(scores: xr.Dataset, metric: str, region: str = "global",
                   variables: Sequence[str] | None = None) -> Figure:
    """One panel per variable: ``metric`` of the forecast and its baselines against lead time, with the
    confidence intervals of the scores as error bars where the scores hold them."""
    variables = list(variables or scores["variable"].values)
    fig, axes = _grid(len(variables))
    hours = _hours(scores)
    for ax, var in zip(axes, variables, strict=False):
        for name in forecast_names(scores):
            y = scores[name].sel(metric=metric, region=region, variable=var).values
            if np.isfinite(y).any():
                _plot_with_interval(ax, hours, y, _interval(scores, name, metric, region, var), label=name,
                                    **_LINES.get(name, {"linewidth": 2}))
        ax.set_title(var)
        ax.set_xlabel("lead time [h]")
        unit = "" if metric in _UNITLESS else f" [{pretty_units(_units(scores, var))}]"
        ax.set_ylabel(_TITLES.get(metric, metric) + unit)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{_TITLES.get(metric, metric)} vs lead time, {region}{_interval_note(scores)}", fontsize=10)
    return fig


def relative_skill(scores: xr.Dataset, baseline: str, region: str = "global",
                   metrics: Sequence[str] = ("rmse", "acc", "crps"), significance: bool = False) -> pd.DataFrame:
    """Percent improvement of the forecast over ``baseline``: rows ``metric/variable``, columns lead hours.

    Errors (RMSE, MAE, CRPS): ``100 (baseline - forecast) / baseline``, percent; ACC: ``100 (forecast -
    baseline)``, points (a ratio of correlations near zero means nothing). Positive is better than the
    baseline; NaN where the baseline's score is undefined. ``significance=True``: the same table of the
    paired p-values of forecast vs ``baseline`` instead (NaN where the scores hold none).
    """
    if baseline not in scores:
        raise ValueError(f"baseline {baseline!r} is not in the scores (they hold {forecast_names(scores)})")
    main = forecast_names(scores)[0]
    has_p = "p_value" in scores and baseline in scores["p_value"]["reference"].values
    rows = {}
    for m in metrics:
        if m not in scores["metric"].values:
            continue
        for var in scores["variable"].values:
            f = scores[main].sel(metric=m, region=region, variable=var).values
            b = scores[baseline].sel(metric=m, region=region, variable=var).values
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = (b - f) / b if _LOWER_BETTER.get(m, True) else f - b
            if not np.isfinite(rel).any():
                continue
            if significance:
                p = (scores["p_value"].sel(reference=baseline, metric=m, region=region, variable=var).values
                     if has_p else np.full(rel.shape, np.nan))
                rows[f"{_TITLES.get(m, m)} {var}"] = np.where(np.isfinite(rel), p, np.nan)
            else:
                rows[f"{_TITLES.get(m, m)} {var}"] = 100.0 * rel
    return pd.DataFrame(rows, index=_hours(scores)).T


def _significance_legend(scores: xr.Dataset) -> str:
    alpha = 1.0 - float(scores.attrs.get("confidence", 0.9))
    return (f"cells: % better (ACC: points); hatched = not significant at {100 * alpha:g}% "
            f"(paired block bootstrap over {scores.attrs.get('n_init_times', '?')} initial times)")


def scorecard(scores: xr.Dataset, baseline: str = "persistence", region: str = "global",
              metrics: Sequence[str] = ("rmse", "acc", "crps"), limit: float = 50.0) -> Figure:
    """A WeatherBench2-style scorecard: relative skill (:func:`relative_skill`) per metric, variable and lead,
    blue where the forecast beats ``baseline``, red where it loses, with the percentage in each cell.
    Colours saturate at a fixed ``+-limit`` % so scorecards of different runs compare. Cells whose paired
    difference is not significant (p-value at or above ``1 - confidence``) are hatched; without p-values in the
    scores no cell is marked, and the title says so."""
    table = relative_skill(scores, baseline, region, metrics)
    pvalues = relative_skill(scores, baseline, region, metrics, significance=True).to_numpy(dtype=np.float64)
    alpha = 1.0 - float(scores.attrs.get("confidence", 0.9))
    fig = Figure(figsize=(1.6 + 0.55 * table.shape[1], 1.5 + 0.35 * max(table.shape[0], 1)), layout="constrained")
    ax = fig.subplots()
    values = table.to_numpy(dtype=np.float64)
    mesh = ax.pcolormesh(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -limit, limit))
    for (i, j), v in np.ndenumerate(values):
        if not np.isfinite(v):
            continue
        weak = np.isfinite(pvalues[i, j]) and pvalues[i, j] >= alpha
        if weak:
            ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="////", edgecolor="0.55", linewidth=0))
        ax.text(j + 0.5, i + 0.5, f"{v:.0f}", ha="center", va="center", fontsize=7,
                fontweight="normal" if weak or not np.isfinite(pvalues[i, j]) else "bold")
    ax.set_xticks(np.arange(table.shape[1]) + 0.5, [f"{h:g}" for h in table.columns], fontsize=7)
    ax.set_yticks(np.arange(table.shape[0]) + 0.5, table.index, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("lead time [h]")
    fig.colorbar(mesh, ax=ax, label=f"% better than {baseline} (ACC: points)", extend="both")
    note = _significance_legend(scores) if np.isfinite(pvalues).any() else "no significance in these scores"
    ax.set_title(f"{forecast_names(scores)[0]} vs {baseline}, {region}\n{note}", fontsize=9)
    return fig


def spread_skill_plot(scores: xr.Dataset, region: str = "global") -> Figure:
    """Per variable: ensemble-mean RMSE and spread against lead time, and on a second axis their ratio with the
    finite-ensemble correction ``sqrt((M + 1) / M)`` (reliable: 1, drawn there) where the scores hold it, else
    the plain ratio (reliable: ``sqrt(M / (M + 1))``)."""
    main = forecast_names(scores)[0]
    variables = list(scores["variable"].values)
    members = int(scores.attrs.get("members", 1))
    corrected = "spread_skill_corrected" in scores["metric"].values
    ratio = "spread_skill_corrected" if corrected else "spread_skill"
    reliable = 1.0 if corrected else np.sqrt(members / (members + 1.0))
    fig, axes = _grid(len(variables), 4.6, 3.2)
    hours = _hours(scores)
    for ax, var in zip(axes, variables, strict=False):
        s = scores[main].sel(region=region, variable=var)
        ax.plot(hours, s.sel(metric="rmse"), label="RMSE of the mean", linewidth=2)
        ax.plot(hours, s.sel(metric="spread"), label="spread", linewidth=2, linestyle="--")
        ax.set_ylabel(f"RMSE, spread [{pretty_units(_units(scores, var))}]")
        ax.set_xlabel("lead time [h]")
        ax.set_title(var)
        twin = ax.twinx()
        _plot_with_interval(twin, hours, s.sel(metric=ratio).values, _interval(scores, main, ratio, region, var),
                            color="C3", linewidth=1, label="spread / skill" + (" x sqrt((M+1)/M)" if corrected else ""))
        twin.axhline(reliable, color="black", linewidth=1, linestyle=":", label=f"reliable ({reliable:.3g})")
        twin.set_ylabel("spread / skill ratio", color="C3")
        low, high = twin.get_ylim()
        twin.set_ylim(min(low, 0.8 * reliable), max(high, 1.2 * reliable))
        ax.grid(alpha=0.3)
        lines = ax.get_legend_handles_labels()
        ratio_lines = twin.get_legend_handles_labels()
        ax.legend(lines[0] + ratio_lines[0], lines[1] + ratio_lines[1], fontsize=7, loc="lower right")
    fig.suptitle(f"spread and skill of {main}, {region} (M = {members} members){_interval_note(scores)}", fontsize=10)
    return fig


def rank_histogram_plot(scores: xr.Dataset, lead_index: int = -1, region: str = "global") -> Figure:
    """Rank histograms at one lead, one panel per variable, with the flat line of a reliable ensemble."""
    rh = scores["rank_histogram"].sel(region=region).isel({LEAD_TIME: lead_index})
    variables = list(scores["variable"].values)
    fig, axes = _grid(len(variables), 3.5, 2.6)
    ranks = rh["rank"].values
    for ax, var in zip(axes, variables, strict=False):
        ax.bar(ranks, rh.sel(variable=var).values, width=0.9, color="C0")
        ax.axhline(1.0 / ranks.size, color="black", linestyle=":", linewidth=1)
        ax.set_title(var)
        ax.set_xlabel("rank of the truth")
    lead = scores[LEAD_TIME].values[lead_index] / np.timedelta64(1, "h")
    fig.suptitle(f"rank histograms at {lead:g} h, {region}")
    return fig


def spectra_plot(scores: xr.Dataset, leads: Sequence[str] = ("1d", "5d")) -> Figure:
    """Zonal energy spectra of forecast (solid) and truth (dashed) at ``leads``, log-log, per variable."""
    variables = list(scores["variable"].values)
    fig, axes = _grid(len(variables))
    available = scores[LEAD_TIME].values
    picked = [parse_duration(x) for x in leads]
    picked = [p for p in picked if p in available] or [available[0], available[-1]]
    k = scores["zonal_wavenumber"].values[1:]
    for ax, var in zip(axes, variables, strict=False):
        for i, lead in enumerate(picked):
            h = lead / np.timedelta64(1, "h")
            f = scores["spectrum_forecast"].sel(variable=var, lead_time=lead).values[1:]
            t = scores["spectrum_truth"].sel(variable=var, lead_time=lead).values[1:]
            ax.loglog(k, f, color=f"C{i}", label=f"forecast {h:g} h")
            ax.loglog(k, t, color=f"C{i}", linestyle="--", label=f"truth {h:g} h")
        ax.set_xlabel("zonal wavenumber")
        ax.set_ylabel(f"power [({pretty_units(_units(scores, var))})$^2$]")
        ax.set_title(var)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle("zonal energy spectra")
    return fig
