"""Interactive score-vs-lead charts for ``report.html``: the scores as JSON and a small SVG script.

The static figures of :mod:`forecast.render.plots` cannot be zoomed or read off; these charts draw the same
curves (forecast and baselines, with their confidence intervals as error bars) in the browser from the
numbers, with hover values, drag-to-zoom on lead time, pan, and series toggling. The script is plain
JavaScript shipped with the package (``forecast/resources/report/lead_plots.js``, no library) and inlined in
the page, so it works offline and fetches nothing. Views: RMSE, ACC, CRPS, and for ensembles the spread
against the RMSE of the ensemble mean and the spread/skill ratio with its reliable value; every region.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

import numpy as np
import xarray as xr

from forecast.evaluate.score import forecast_names
from forecast.render.styles import text_units
from forecast.schema import LEAD_TIME

__all__ = ["lead_chart", "lead_chart_data"]

_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
# Baselines drawn as in the static plots (plots._LINES): grey dashed persistence, black dotted climatology.
_FIXED = {"persistence": ("#737373", "6 3", 1.5), "climatology": ("#000000", "2 3", 1.5)}
_TITLES = {"rmse": "RMSE", "acc": "ACC", "crps": "CRPS"}
_DIGITS = 5  # significant digits kept in the page: below the scores' sampling uncertainty, a third of the bytes


def _rounded(values: np.ndarray) -> list:
    """Nested lists of ``values`` at :data:`_DIGITS` significant digits, ``None`` where not finite."""
    if values.ndim > 1:
        return [_rounded(v) for v in values]
    return [float(f"{v:.{_DIGITS}g}") if np.isfinite(v) else None for v in values.tolist()]


def _series(scores: xr.Dataset, source: str, metric: str, name: str, style: tuple[str, str, float]) -> dict | None:
    """One curve for every region and variable: ``y`` (and ``lo``, ``hi``) as ``[region][variable][lead]``."""
    y = scores[source].sel(metric=metric).transpose("region", "variable", LEAD_TIME).values
    if not np.isfinite(y).any():
        return None
    color, dash, width = style
    out: dict[str, Any] = {"name": name, "color": color, "dash": dash, "width": width, "y": _rounded(y)}
    if "score_interval" in scores and source in scores["score_interval"]["source"].values:
        ci = scores["score_interval"].sel(source=source, metric=metric)
        bounds = [ci.sel(bound=b).transpose("region", "variable", LEAD_TIME).values for b in ("lower", "upper")]
        if np.isfinite(bounds[0]).any():
            out["lo"], out["hi"] = _rounded(bounds[0]), _rounded(bounds[1])
    return out


def _styles(names: list[str]) -> dict[str, tuple[str, str, float]]:
    """Colour, dash pattern and width per forecast: the product first (thick), baselines as in the static plots."""
    free = iter(_TAB10)
    return {n: _FIXED.get(n) or (next(free), "none", 2.0 if i == 0 else 1.5) for i, n in enumerate(names)}


def _view(title: str, label: str, series: list[dict | None], unitless: bool = False, ref: float | None = None,
          ref_label: str = "") -> dict | None:
    kept = [s for s in series if s is not None]
    return {"title": title, "label": label, "unitless": unitless, "ref": ref, "refLabel": ref_label,
            "series": kept} if kept else None


def _ensemble_views(scores: xr.Dataset, main: str) -> list[dict | None]:
    """Spread against the RMSE of the ensemble mean, and the spread/skill ratio with its reliable value."""
    metrics = set(scores["metric"].values.tolist())
    members = int(scores.attrs.get("members", 1))
    if members < 2 or "spread" not in metrics:
        return []
    views = [_view("spread and RMSE of the ensemble mean", "RMSE, spread", [
        _series(scores, main, "rmse", "RMSE of the mean", (_TAB10[0], "none", 2.0)),
        _series(scores, main, "spread", "spread", (_TAB10[1], "6 3", 2.0))])]
    corrected = "spread_skill_corrected" in metrics
    ratio = "spread_skill_corrected" if corrected else "spread_skill" if "spread_skill" in metrics else None
    if ratio:
        # As plots.spread_skill_plot: with the (M+1)/M correction a reliable ensemble has ratio 1.
        reliable = 1.0 if corrected else float(np.sqrt(members / (members + 1.0)))
        names = forecast_names(scores)
        styles = _styles(names)
        title = "spread / skill" + (" x sqrt((M+1)/M)" if corrected else "")
        views.append(_view(title, "spread / skill", [_series(scores, n, ratio, n, styles[n]) for n in names],
                           unitless=True, ref=reliable, ref_label=f"reliable ({reliable:.3g}, M = {members})"))
    return views


def lead_chart_data(scores: xr.Dataset) -> dict:
    """What the script draws: lead hours, regions, variables with their units, and the views, each a list of
    series ``{name, color, dash, width, y[, lo, hi]}`` with values ``[region][variable][lead]``."""
    names = forecast_names(scores)
    styles = _styles(names)
    metrics = [m for m in _TITLES if m in scores["metric"].values]
    views = [_view(_TITLES[m] + " vs lead time", _TITLES[m], [_series(scores, n, m, n, styles[n]) for n in names],
                   unitless=m == "acc") for m in metrics]
    views += _ensemble_views(scores, names[0])
    return {"hours": (scores[LEAD_TIME].values / np.timedelta64(1, "h")).tolist(),
            "regions": [str(r) for r in scores["region"].values],
            "variables": [str(v) for v in scores["variable"].values],
            "units": [text_units(str(u)) for u in scores["units"].values],
            "views": [v for v in views if v is not None]}


def lead_chart(scores: xr.Dataset) -> str:
    """The charts' HTML: controls, panels, the data and the script, inline (empty without any view)."""
    data = lead_chart_data(scores)
    if not data["views"]:
        return ""
    script = resources.files("forecast").joinpath("resources/report/lead_plots.js").read_text()
    note = ""
    if any("lo" in s for v in data["views"] for s in v["series"]):
        note = (f" Bars: {100 * float(scores.attrs.get('confidence', 0.9)):g}% intervals over "
                f"{html.escape(str(scores.attrs.get('n_init_times', '?')))} initial times.")
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        "<div id='lead-plots'><p>Hover a panel for the values at a lead; drag across it to zoom on lead time "
        f"(double-click or <i>reset</i> to undo, arrows to pan); click a legend entry to hide or show it.{note}</p>"
        "<label>score <select id='lp-view'></select></label> <label>region <select id='lp-region'></select></label> "
        "<button type='button' id='lp-left' title='pan to shorter leads'>&#9664;</button>"
        "<button type='button' id='lp-right' title='pan to longer leads'>&#9654;</button> "
        "<button type='button' id='lp-reset'>reset zoom</button>"
        "<div id='lp-legend'></div><div id='lp-panels'></div><div id='lp-tip' hidden></div>"
        "<noscript>The interactive charts need JavaScript; the static plots are in figures/ beside this page."
        "</noscript></div>"
        f"<script>const LEAD_DATA = {payload};\n{script}</script>")


CSS = ("#lp-panels{display:flex;flex-wrap:wrap;gap:0.5em}.lp-panel{border:1px solid #eee;font-size:11px;"
       "user-select:none}.lp-panel text{fill:#333}.lp-title{font-weight:bold;font-size:12px}.lp-grid{stroke:#e6e6e6}"
       ".lp-frame{fill:none;stroke:#999}.lp-line{fill:none}.lp-bars{fill:none;stroke-width:1;opacity:0.7}"
       ".lp-ref{stroke:#000;stroke-dasharray:1 3;stroke-width:1.2}.lp-guide{stroke:#888;stroke-width:1}"
       ".lp-band{fill:#4a90d9;opacity:0.2}.lp-over{fill:transparent;cursor:crosshair}#lp-legend{margin:0.4em 0}"
       ".lp-toggle{margin:0 0.3em 0.3em 0;background:#fff;border:1px solid #bbb;border-radius:3px;cursor:pointer}"
       ".lp-toggle[aria-pressed=false]{opacity:0.4;text-decoration:line-through}.lp-swatch{display:inline-block;"
       "width:10px;height:10px;margin-right:4px;vertical-align:middle}#lp-tip{position:absolute;background:#fff;"
       "border:1px solid #999;padding:4px 6px;font-size:12px;pointer-events:none;box-shadow:1px 1px 4px #0003}"
       "#lp-tip table{font-size:12px;margin:0.2em 0 0}#lp-tip td{border:0;padding:0 4px;text-align:left}"
       ".lp-refnote{font-size:12px;color:#333}")
