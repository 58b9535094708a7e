"""Figures of ``forecast compare``: scorecards of each model against the reference model per region, and scores
against lead time of every model and baseline with their intervals, listed in ``figures/index.json``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import xarray as xr

from forecast.evaluate.compare import pair_scores
from forecast.render import plots
from forecast.render.figure import save_figure
from forecast.render.run import INDEX, FigureEntry
from forecast.storage import atomic_file

__all__ = ["render_comparison"]


def render_comparison(comparison: xr.Dataset, out_dir: str | Path, dpi: int = 100,
                      metrics: tuple[str, ...] = ("rmse", "acc", "crps")) -> Path:
    """Draw the comparison's figures into ``out_dir/figures``; returns the index file."""
    out = Path(out_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    ref = comparison.attrs["reference"]
    entries = []
    for m in (m for m in metrics if m in comparison["metric"].values):
        path = save_figure(plots.metric_vs_lead(comparison, m), out / f"{m}_vs_lead.png", dpi)
        entries.append(FigureEntry(path.name, "lead", f"{m.upper()} vs lead time of every model and baseline"))
    for model in comparison["p_value"]["model"].values.tolist():
        pair = pair_scores(comparison, model)
        for region in comparison["region"].values.tolist():
            if plots.relative_skill(pair, ref, region, metrics).empty:
                continue
            name = f"scorecard_{model}_vs_{ref}_{region}.png"
            path = save_figure(plots.scorecard(pair, ref, region, metrics), out / name, dpi)
            entries.append(FigureEntry(path.name, "scorecard", f"scorecard of {model} vs {ref}, {region}"))
    index = out / INDEX
    with atomic_file(index) as tmp:
        tmp.write_text(json.dumps({"reference": ref, "figures": [asdict(e) for e in entries]}, indent=1))
    return index
