"""Figures and report of ``forecast climate`` (a ``climate.nc`` from :mod:`forecast.evaluate.climate_run`).

Maps (cartopy, the view of ``render.projection``, the fixed per-variable colours of
:mod:`forecast.render.styles`): time means of run and truth with the bias of the run (and of the reference,
the noise floor); the ratio of temporal std; the amplitude of the annual harmonic. Plots: the global-mean
seasonal cycle, zonal means, time-mean power spectra with the factor-2 band, the 30-day means of global mean
and std with the range the verdict allows, and area-weighted histograms with the percentiles. Nothing is
computed here beyond selecting stored fields. ``figures/index.json`` is written last; the report page
(``report.html`` / ``report.md``) gathers the verdict, the scores and every figure.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from forecast.errors import InputError
from forecast.evaluate.climate_run import SOURCE, climate_table, read_climate
from forecast.evaluate.config import ClimateConfig
from forecast.render.figure import save_figure
from forecast.render.maps import Panel, map_figure
from forecast.render.plots import _grid
from forecast.render.report import _fmt, _markdown, write_pages
from forecast.render.run import INDEX, FigureEntry
from forecast.render.styles import Style, pretty_units, style_for
from forecast.storage import atomic_file

__all__ = ["drift_plot", "histogram_plot", "render_climate", "seasonal_plot", "spectra_plot", "write_climate_report",
           "zonal_plot"]

_SECTIONS = {"verdict": "Drift and the stability verdict", "bias": "Time-mean bias", "variability": "Variability",
             "seasonal": "Seasonal cycle", "spectra": "Power spectra", "distribution": "Distributions"}
_TRUTH = {"color": "black", "linestyle": "--", "label": "truth"}


def _units(ds: xr.Dataset, var: str) -> str:
    return str(ds["units"].sel(variable=var).values)


def _label(ds: xr.Dataset, role: str) -> str:
    return f"{role}: {ds['source_name'].sel({SOURCE: role}).values}"


def _by_variable(ds: xr.Dataset, variables: list[str], ylabel: str, title: str, draw) -> Figure:
    """One panel per variable; ``draw(ax, var)`` fills it."""
    fig, axes = _grid(len(variables))
    for ax, var in zip(axes, variables, strict=False):
        draw(ax, var)
        ax.set_title(var)
        ax.set_ylabel(ylabel.format(u=pretty_units(_units(ds, var))))
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return fig


def seasonal_plot(ds: xr.Dataset, variables: list[str]) -> Figure:
    """Area-weighted global mean of the monthly climatology, per source and the truth."""
    def draw(ax, var):
        for i, role in enumerate(ds[SOURCE].values):
            ax.plot(ds["month"], ds["global_monthly_mean"].sel({SOURCE: role, "variable": var}), marker=".",
                    color=f"C{i}", label=_label(ds, role))
        ax.plot(ds["month"], ds["truth_global_monthly_mean"].sel({SOURCE: "model", "variable": var}), **_TRUTH)
        ax.set_xlabel("month")
    return _by_variable(ds, variables, "global mean [{u}]", "seasonal cycle (global mean of monthly means)", draw)


def zonal_plot(ds: xr.Dataset, variables: list[str]) -> Figure:
    """Time-mean zonal means against latitude."""
    def draw(ax, var):
        for i, role in enumerate(ds[SOURCE].values):
            ax.plot(ds["latitude"], ds["zonal_mean"].sel({SOURCE: role, "variable": var}), color=f"C{i}",
                    label=_label(ds, role))
        ax.plot(ds["latitude"], ds["truth_zonal_mean"].sel({SOURCE: "model", "variable": var}), **_TRUTH)
        ax.set_xlabel("latitude [deg]")
    return _by_variable(ds, variables, "zonal mean [{u}]", "time-mean zonal means", draw)


def spectra_plot(ds: xr.Dataset, variables: list[str], factor: float = 2.0) -> Figure:
    """Time-mean spherical-harmonic power per degree (log-log, from degree 1), the truth's within ``factor``."""
    deg = ds["degree"].values[1:]

    def draw(ax, var):
        truth = ds["truth_power_spectrum"].sel({SOURCE: "model", "variable": var}).values[1:]
        ax.fill_between(deg, truth / factor, truth * factor, color="0.85", label=f"truth x/÷ {factor:g}")
        for i, role in enumerate(ds[SOURCE].values):
            ax.loglog(deg, ds["power_spectrum"].sel({SOURCE: role, "variable": var}).values[1:], color=f"C{i}",
                      label=_label(ds, role))
        ax.loglog(deg, truth, **_TRUTH)
        ax.set_xlabel("spherical-harmonic degree")
    return _by_variable(ds, variables, "power [({u})$^2$]", "time-mean power spectra", draw)


def drift_plot(ds: xr.Dataset, variables: list[str], days: float) -> Figure:
    """Window means of the global mean (top row) and global std (bottom row) with the verdict's allowed range."""
    fig = Figure(figsize=(max(4.0 * len(variables), 6.0), 5.6), layout="constrained")
    axes = fig.subplots(2, len(variables), squeeze=False)
    for col, var in enumerate(variables):
        for row, name in enumerate(("global_mean", "global_std")):
            ax = axes[row, col]
            sel = {SOURCE: "model", "variable": var}
            ax.axhspan(float(ds[f"{name}_low"].sel(sel)), float(ds[f"{name}_high"].sel(sel)), color="0.9",
                       label="allowed range")
            for i, role in enumerate(ds[SOURCE].values):
                start = ds["window_start"].sel({SOURCE: role}).values
                ax.plot(start, ds[f"window_{name}"].sel({SOURCE: role, "variable": var}), marker=".", color=f"C{i}",
                        label=_label(ds, role))
            ax.plot(ds["window_start"].sel({SOURCE: "model"}).values, ds[f"truth_window_{name}"].sel(sel), **_TRUTH)
            ax.set_title(f"{var}: {days:g}-day {name.replace('_', ' ')}", fontsize=9)
            ax.set_ylabel(f"[{pretty_units(_units(ds, var))}]")
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"drift ({days:g}-day means); shaded: the verdict's range", fontsize=10)
    return fig


def histogram_plot(ds: xr.Dataset, variables: list[str]) -> Figure:
    """Area-weighted histograms (log scale) with the stored percentiles as vertical lines."""
    def draw(ax, var):
        edges = ds["bin_edges"].sel({SOURCE: "model", "variable": var}).values
        centres = 0.5 * (edges[1:] + edges[:-1])
        for i, role in enumerate(ds[SOURCE].values):
            sel = {SOURCE: role, "variable": var}
            ax.semilogy(centres, ds["histogram"].sel(sel), color=f"C{i}", label=_label(ds, role))
            for p in ("percentile_low", "percentile_high"):
                ax.axvline(float(ds[p].sel(sel)), color=f"C{i}", linewidth=0.8)
        sel = {SOURCE: "model", "variable": var}
        ax.semilogy(centres, ds["truth_histogram"].sel(sel), **_TRUTH)
        for p in ("truth_percentile_low", "truth_percentile_high"):
            ax.axvline(float(ds[p].sel(sel)), color="black", linestyle=":", linewidth=0.8)
        ax.set_xlabel(f"[{pretty_units(_units(ds, var))}]")
    return _by_variable(ds, variables, "area-weighted fraction", "distributions and their percentiles", draw)


def _ratio_style(label: str) -> Style:
    return Style("RdBu_r", 0.0, 2.0, 1.0, "1", label)


def _map_figures(ds: xr.Dataset, var: str, cfg: ClimateConfig, out: Path) -> list[FigureEntry]:
    r, units, view = cfg.render, _units(ds, var), cfg.render.projection
    roles = list(ds[SOURCE].values)
    sel = {"variable": var}
    truth = ds["truth_time_mean"].sel({SOURCE: "model", **sel})
    style = style_for(var, units, truth.values, r.ranges, r.bias_ranges)
    panels = [Panel(ds["time_mean"].sel({SOURCE: "model", **sel}), "model time mean"), Panel(truth, "truth time mean")]
    panels += [Panel(ds["bias"].sel({SOURCE: role, **sel}), f"{role} bias", "error") for role in roles]
    figs = [("bias", panels, style, f"{var}: time means and biases")]
    ratios = [Panel(ds["std_ratio_map"].sel({SOURCE: role, **sel}), f"{role} / truth") for role in roles]
    figs.append(("variability", ratios, _ratio_style("temporal std ratio"), f"{var}: ratio of temporal std"))
    amp = [ds["annual_amplitude_map"].sel({SOURCE: "model", **sel}),
           ds["truth_annual_amplitude_map"].sel({SOURCE: "model", **sel})]
    if all(np.isfinite(a.values).all() for a in amp):
        top = float(max(np.nanmax(a.values) for a in amp)) or 1.0
        figs.append(("seasonal", [Panel(amp[0], "model"), Panel(amp[1], "truth")],
                     Style("magma_r", 0.0, top, top, units, "annual harmonic amplitude"),
                     f"{var}: amplitude of the annual harmonic"))
    entries = []
    for kind, ps, st, title in figs:
        path = save_figure(map_figure(ps, st, view, f"{title}, {view.replace('_', ' ')}"),
                           out / f"{kind}_map_{var}.png", r.dpi)
        entries.append(FigureEntry(path.name, kind, title, var))
    return entries


def render_climate(run_dir: str | Path, config: ClimateConfig) -> Path:
    """Draw every figure of the climate results in ``run_dir`` into ``run_dir/figures``; returns the index."""
    run_dir = Path(run_dir)
    ds = read_climate(run_dir)
    out = run_dir / "figures"
    variables = config.render.variables or [str(v) for v in ds["variable"].values]
    entries: list[FigureEntry] = []
    for var in variables:
        if var not in ds["variable"].values:
            raise InputError(f"render.variables: {var!r} is not in {run_dir / 'climate.nc'} "
                             f"(it has {list(ds['variable'].values)})")
        entries += _map_figures(ds, var, config, out)
    plots = [("verdict", "drift.png", drift_plot(ds, variables, config.window_days), "drift and stability range"),
             ("seasonal", "seasonal_cycle.png", seasonal_plot(ds, variables), "seasonal cycle of the global mean"),
             ("bias", "zonal_means.png", zonal_plot(ds, variables), "time-mean zonal means"),
             ("spectra", "spectra.png", spectra_plot(ds, variables, config.stability.spectrum_factor),
              "time-mean power spectra"),
             ("distribution", "histograms.png", histogram_plot(ds, variables), "histograms and percentiles")]
    for kind, name, fig, title in plots:
        entries.append(FigureEntry(save_figure(fig, out / name, config.render.dpi).name, kind, title))
    index = out / INDEX
    with atomic_file(index) as tmp:
        tmp.write_text(json.dumps({"forecast": ds.attrs.get("forecast"), "kind": "climate",
                                   "figures": [asdict(e) for e in entries]}, indent=1))
    return index


def _tables(ds: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The verdict (pass/fail per source and variable) and the scores (rows metric, columns source/variable)."""
    table = climate_table(ds)
    stable = table[table["metric"].str.startswith("stable")]
    verdict = stable.pivot_table(index=["source", "variable"], columns="metric", values="value")
    verdict = verdict.map(lambda v: "pass" if v == 1 else "fail")
    scores = table[~table["metric"].str.startswith("stable")]
    scores = scores.pivot_table(index=["metric", "units"], columns=["source", "variable"], values="value",
                                sort=False, dropna=False)
    return verdict, scores


def write_climate_report(run_dir: str | Path) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` in ``run_dir``: what was compared, the verdict, the scores, the figures."""
    run_dir = Path(run_dir)
    ds = read_climate(run_dir)
    figures = json.loads((run_dir / "figures" / INDEX).read_text())["figures"]
    verdict, scores = _tables(ds)
    a = ds.attrs
    about = [("run", f"{a.get('forecast')} ({a.get('product')})"), ("truth", str(a.get("truth"))),
             ("reference (noise floor)", str(a.get("reference") or "none")),
             ("times", "; ".join(f"{r}: {int(n)} ({f} .. {last})" for r, n, f, last in zip(
                 ds[SOURCE].values, ds["n_times"].values, ds["first_time"].values, ds["last_time"].values,
                 strict=True))),
             ("verdict", f"model {a.get('verdict')}" + (f", reference {a['verdict_reference']}"
                                                        if a.get("verdict_reference") else ""))]
    title = f"Climate of {a.get('forecast')}"
    sections = [(name, [f for f in figures if f["kind"] == kind]) for kind, name in _SECTIONS.items()]
    md = [f"# {title}", "", *[f"- **{k}**: {v}" for k, v in about], "", "## Stability verdict", "",
          _markdown(verdict), "", "## Scores", "", _markdown(scores), "",
          "Full results: [climate.csv](climate.csv), [climate.nc](climate.nc).", ""]
    page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>",
            f"<h1>{html.escape(title)}</h1><ul>", *[f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                                                   for k, v in about],
            "</ul><h2>Stability verdict</h2>", verdict.to_html(), "<h2>Scores</h2>", scores.map(_fmt).to_html(),
            "<p>Full results: <a href='climate.csv'>climate.csv</a>, <a href='climate.nc'>climate.nc</a>.</p>"]
    for name, items in sections:
        if items:
            md += [f"## {name}", "", *[f"![{f['title']}](figures/{f['path']})\n\n*{f['title']}*\n" for f in items]]
            page += [f"<h2>{html.escape(name)}</h2>", *[f"<figure><img src='figures/{html.escape(f['path'])}' "
                                                        f"style='max-width:100%'><figcaption>{html.escape(f['title'])}"
                                                        "</figcaption></figure>" for f in items]]
    page.append("</body></html>")
    return write_pages(run_dir, md, page)
