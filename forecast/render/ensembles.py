"""``forecast ensembles``: several ensembles on the same cases, side by side, as figures and one report page.

Figures (``figures/``): fair CRPS and corrected spread/skill against lead time (every ensemble in one panel
per variable), rank histograms at two leads (one row per ensemble), the member-to-truth spectral ratio per
spherical harmonic degree at two leads, and maps of the truth and two members of every ensemble at the
last lead. The page (``report.html``, self-contained, and ``report.md``) holds the table of
:func:`forecast.evaluate.ensembles.ensemble_table` and the checks of
:func:`forecast.evaluate.ensembles.ensemble_checks`.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from forecast.evaluate.align import open_forecast, open_truth
from forecast.evaluate.ensembles import DEGREE
from forecast.render.figure import save_figure
from forecast.render.maps import Panel, map_figure
from forecast.render.report import _CSS, _data_uri, _markdown, _section, write_pages
from forecast.render.styles import pretty_units, style_for
from forecast.schema import INIT_TIME, LEAD_TIME, MEMBER, TIME
from forecast.storage import atomic_file

__all__ = ["render_ensembles"]

_LABELS = {"crps": "fair CRPS", "spread_skill_corrected": "spread / skill, (M+1)/M-corrected"}


def _hours(scores: xr.Dataset) -> np.ndarray:
    return scores[LEAD_TIME].values / np.timedelta64(1, "h")


def _units(scores: xr.Dataset, var: str) -> str:
    return str(scores["units"].sel(variable=var).values) if "units" in scores else ""


def metric_panels(runs: dict[str, xr.Dataset], metric: str, region: str = "global") -> Figure:
    """``metric`` against lead time, one panel per variable, one line per ensemble (90 % intervals shaded
    where the scores hold them); spread/skill gets the reliable line and the 0.8-1.2 band."""
    first = next(iter(runs.values()))
    variables = list(first["variable"].values)
    fig = Figure(figsize=(3.8 * len(variables), 3.2), layout="constrained")
    axes = fig.subplots(1, len(variables), squeeze=False)[0]
    for ax, var in zip(axes, variables, strict=True):
        for i, (name, scores) in enumerate(runs.items()):
            if metric not in scores["metric"].values:
                continue
            y = scores[name].sel(metric=metric, region=region, variable=var).values
            ax.plot(_hours(scores), y, marker=".", color=f"C{i}", label=name)
            if "score_interval" in scores and name in scores["score_interval"]["source"].values:
                band = scores["score_interval"].sel(source=name, metric=metric, region=region, variable=var)
                ax.fill_between(_hours(scores), band.isel(bound=0), band.isel(bound=1), color=f"C{i}", alpha=0.15)
        if metric.startswith("spread_skill"):
            ax.axhline(1.0, color="black", linewidth=1, linestyle=":")
            ax.axhspan(0.8, 1.2, color="0.9", zorder=0)
        unit = "" if metric.startswith("spread_skill") else f" [{pretty_units(_units(first, var))}]"
        ax.set(title=var, xlabel="lead time [h]", ylabel=_LABELS.get(metric, metric) + unit)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{_LABELS.get(metric, metric)} against lead time, {region}", fontsize=10)
    return fig


def rank_panels(runs: dict[str, xr.Dataset], hours: tuple[float, ...], region: str = "global") -> Figure:
    """Rank histograms: one row per ensemble (with members), one column per (lead, variable)."""
    ens = {n: s for n, s in runs.items() if "rank_histogram" in s}
    first = next(iter(ens.values()))
    variables = list(first["variable"].values)
    cols = [(h, v) for h in hours for v in variables]
    fig = Figure(figsize=(2.2 * len(cols), 1.7 * len(ens) + 0.6), layout="constrained")
    axes = fig.subplots(len(ens), len(cols), squeeze=False, sharey=True)
    for r, (name, scores) in enumerate(ens.items()):
        for c, (h, var) in enumerate(cols):
            ax = axes[r, c]
            k = int(np.argmin(np.abs(_hours(scores) - h)))
            rh = scores["rank_histogram"].sel(region=region, variable=var).isel({LEAD_TIME: k})
            ax.bar(rh["rank"].values, rh.values, width=0.9, color=f"C{r}")
            ax.axhline(1.0 / rh["rank"].size, color="black", linestyle=":", linewidth=1)
            ax.set_title(f"{name}: {var} {h:g} h", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle("rank histograms (flat: members and truth indistinguishable)", fontsize=10)
    return fig


def spectrum_panels(spectra: dict[str, xr.Dataset], hours: tuple[float, ...], factor: float = 2.0) -> Figure:
    """Member-to-truth power ratio per degree, one panel per variable, a line per ensemble and lead."""
    first = next(iter(spectra.values()))
    variables = list(first["variable"].values)
    fig = Figure(figsize=(3.8 * len(variables), 3.2), layout="constrained")
    axes = fig.subplots(1, len(variables), squeeze=False)[0]
    styles = ["-", "--", ":"]
    for ax, var in zip(axes, variables, strict=True):
        ax.axhspan(1 / factor, factor, color="0.9", zorder=0)
        for i, (name, sp) in enumerate(spectra.items()):
            hrs = sp[LEAD_TIME].values / np.timedelta64(1, "h")
            for j, h in enumerate(hours):
                k = int(np.argmin(np.abs(hrs - h)))
                ratio = sp["ratio"].sel(variable=var).isel({LEAD_TIME: k})
                ax.semilogy(sp[DEGREE].values[1:], ratio.values[1:], color=f"C{i}", linestyle=styles[j % 3],
                            label=f"{name} {hrs[k]:g} h")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set(title=var, xlabel="spherical harmonic degree", ylabel="member power / truth power")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"single-member spectra relative to the truth (shaded: within a factor {factor:g})", fontsize=10)
    return fig


def member_maps(runs: dict[str, xr.Dataset], variable: str, hours: float, out: Path, dpi: int) -> list[Path]:
    """For every ensemble, a row of maps: truth, members 0 and 1 at the lead nearest ``hours`` of the first
    initial time (one figure per ensemble, same colour range)."""
    paths = []
    for name, scores in runs.items():
        product = open_forecast(scores.attrs["product"])
        truth = open_truth(scores.attrs["truth"])
        lead = product[LEAD_TIME].values[int(np.argmin(np.abs(_hours(product) - hours)))]
        init = product[INIT_TIME].values[0]
        field = product[variable].sel({INIT_TIME: init, LEAD_TIME: lead})
        valid = truth[variable].sel({TIME: init + lead})
        style = style_for(variable, _units(scores, variable))
        members = [field.isel({MEMBER: m}) for m in range(min(2, field.sizes.get(MEMBER, 1)))] \
            if MEMBER in field.dims else [field]
        panels = [Panel(valid.load(), "truth")] + [Panel(m.load(), f"{name} member {i}") for i, m in
                                                   enumerate(members)]
        h = lead / np.timedelta64(1, "h")
        fig = map_figure(panels, style, "robinson", f"{variable}, {name}: init {str(init)[:16]} + {h:g} h")
        paths.append(save_figure(fig, out / f"members_{name}_{variable}.png", dpi))
    return paths


def _hours_of(hours: tuple[float, ...]) -> str:
    return " and ".join(f"{h:g} h" for h in hours)


def render_ensembles(runs: dict[str, xr.Dataset], spectra: dict[str, xr.Dataset], table: pd.DataFrame,
                     checks: pd.DataFrame, out_dir: str | Path, map_variable: str = "z500",
                     hours: tuple[float, ...] = (24.0, 120.0), dpi: int = 90) -> tuple[Path, Path]:
    """Draw the figures into ``out_dir/figures`` and write ``report.md`` / ``report.html``; returns the pages."""
    out_dir = Path(out_dir)
    figs = out_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    items = [(save_figure(metric_panels(runs, m), figs / f"{m}_vs_lead.png", dpi), _LABELS[m] + " vs lead time")
             for m in ("crps", "spread_skill_corrected")]
    items.append((save_figure(rank_panels(runs, hours), figs / "rank_histograms.png", dpi),
                  f"rank histograms at {_hours_of(hours)}"))
    items.append((save_figure(spectrum_panels(spectra, hours), figs / "member_spectra.png", dpi),
                  f"single-member spectra at {_hours_of(hours)}"))
    items += [(p, f"{map_variable}: truth and two members") for p in member_maps(runs, map_variable, hours[-1],
                                                                                 figs, dpi)]
    title = "Ensembles side by side: " + ", ".join(runs)
    shown = table.round(3)
    md = [f"# {title}", "", "## Scores (global)", "", _markdown(shown.set_index(["ensemble", "variable",
                                                                                 "lead_hours"])), "",
          "## Checks", "", _markdown(checks.set_index(["ensemble", "variable"])), ""]
    md += [f"![{t}](figures/{p.name})\n\n*{t}*\n" for p, t in items]
    page = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    page += _section("scores", "Scores (global)", [shown.to_html(index=False)])
    page += _section("checks", "Checks", [checks.to_html(index=False)])
    page += _section("figures", "Figures", [f"<figure><img src='{_data_uri(p)}' alt='{html.escape(t)}'>"
                                            f"<figcaption>{html.escape(t)}</figcaption></figure>" for p, t in items])
    page.append("</body></html>")
    with atomic_file(out_dir / "table.csv") as tmp:
        tmp.write_text(table.to_csv(index=False))
    return write_pages(out_dir, md, page)
