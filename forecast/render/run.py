"""``forecast render``: every figure of one evaluation run, listed in ``figures/index.json``.

From the scores (``scores.nc``): RMSE / ACC / CRPS vs lead time with the baselines, a scorecard per
region against the config's baseline, and for ensembles spread/skill and rank histograms, plus the
zonal energy spectra. From the product and the truth store (their paths are recorded in the scores):
maps of forecast | truth | error (ensembles: mean | truth | error of the mean | spread) at the
config's leads and views, and a GIF of the rollout. The index is written last, so its presence
means the figures are complete.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.align import align, open_forecast, open_truth
from forecast.evaluate.config import EvaluateConfig, RenderConfig
from forecast.evaluate.metrics import ensemble_mean, gridpoint_scores
from forecast.evaluate.score import read_scores
from forecast.render import plots
from forecast.render.animate import animate_rollout
from forecast.render.figure import save_figure
from forecast.render.maps import Panel, map_figure
from forecast.render.styles import lead_style, style_for
from forecast.schema import INIT_TIME, LEAD_TIME, MEMBER, TIME, parse_duration
from forecast.storage import atomic_file

__all__ = ["FigureEntry", "render_evaluation"]

log = logging.getLogger(__name__)

INDEX = "index.json"


@dataclass
class FigureEntry:
    path: str  # relative to the figures folder
    kind: str  # lead, scorecard, spread_skill, rank_histogram, spectra, map, skill_map, frame, animation
    title: str
    variable: str | None = None
    lead_hours: float | None = None  # frames of the interactive view: their lead and member
    member: str | None = None


def _score_figures(scores: xr.Dataset, cfg: RenderConfig, dpi: int, out: Path) -> list[FigureEntry]:
    entries = []
    metrics = [m for m in ("rmse", "acc", "crps") if m in scores["metric"].values]
    for m in metrics:
        path = save_figure(plots.metric_vs_lead(scores, m), out / f"{m}_vs_lead.png", dpi)
        entries.append(FigureEntry(path.name, "lead", f"{m.upper()} vs lead time (global)"))
    if cfg.baseline in scores:
        for region in scores["region"].values:
            table = plots.relative_skill(scores, cfg.baseline, str(region))
            if table.empty:
                continue
            path = save_figure(plots.scorecard(scores, cfg.baseline, str(region)), out / f"scorecard_{region}.png", dpi)
            entries.append(FigureEntry(path.name, "scorecard", f"scorecard vs {cfg.baseline}, {region}"))
    if "spread" in scores["metric"].values and int(scores.attrs.get("members", 1)) > 1:
        path = save_figure(plots.spread_skill_plot(scores), out / "spread_skill.png", dpi)
        entries.append(FigureEntry(path.name, "spread_skill", "spread and skill (global)"))
    if "rank_histogram" in scores:
        path = save_figure(plots.rank_histogram_plot(scores), out / "rank_histogram.png", dpi)
        entries.append(FigureEntry(path.name, "rank_histogram", "rank histograms at the last lead (global)"))
    if "spectrum_forecast" in scores:
        path = save_figure(plots.spectra_plot(scores, cfg.spectrum_leads), out / "spectra.png", dpi)
        entries.append(FigureEntry(path.name, "spectra", "zonal energy spectra"))
    return entries


def _truth_at(truth: xr.Dataset, variable: str, times: np.ndarray) -> xr.DataArray:
    pos = np.searchsorted(truth[TIME].values, times)
    ok = (pos < truth.sizes[TIME]) & (truth[TIME].values[np.clip(pos, 0, truth.sizes[TIME] - 1)] == times)
    if not ok.all():
        raise InputError(f"the truth store has no {variable} at {times[~ok][:3]}")
    return truth[variable].isel({TIME: pos})


def _utc(t: np.datetime64) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%d %H UTC")


def map_title(variable: str, init: np.datetime64, lead: np.timedelta64, extra: str = "") -> str:
    """``z500: init 2001-01-01 00 UTC, +120 h, valid 2001-01-06 00 UTC`` (and ``extra``)."""
    hours = lead / np.timedelta64(1, "h")
    return f"{variable}: init {_utc(init)}, +{hours:g} h, valid {_utc(init + lead)}" + (f", {extra}" if extra else "")


def _map_figures(product: xr.Dataset, truth: xr.Dataset, scores: xr.Dataset, cfg: RenderConfig, dpi: int,
                 out: Path) -> list[FigureEntry]:
    variables = cfg.variables or [str(v) for v in scores["variable"].values]
    if not 0 <= cfg.init_index < product.sizes[INIT_TIME]:
        raise InputError(f"render.init_index {cfg.init_index} is outside the product's "
                         f"{product.sizes[INIT_TIME]} initial times")
    case = product.isel({INIT_TIME: cfg.init_index})
    init = case[INIT_TIME].values
    entries = []
    for var in variables:
        if var not in case:
            raise InputError(f"render.variables: {var!r} is not in the product (it has {list(case.data_vars)})")
        units = str(case[var].attrs.get("units", ""))
        for lead_text in cfg.map_leads:
            lead = parse_duration(lead_text)
            if lead not in case[LEAD_TIME].values:
                log.warning("render: lead %s is not in the product; no map drawn", lead_text)
                continue
            fc = case[var].sel({LEAD_TIME: lead}).load()
            obs = _truth_at(truth, var, np.array([init + lead])).isel({TIME: 0}).load()
            hours = lead / np.timedelta64(1, "h")
            if MEMBER in fc.dims:
                mean = ensemble_mean(fc)
                panels = [Panel(mean, "ensemble mean"), Panel(obs, "truth"), Panel(mean - obs, "error of the mean",
                                                                                     "error"),
                          Panel(fc.std(MEMBER, ddof=1), f"spread ({fc.sizes[MEMBER]} members)", "spread")]
            else:
                panels = [Panel(fc, "forecast"), Panel(obs, "truth"), Panel(fc - obs, "error", "error")]
            style = lead_style(style_for(var, units, obs.values, cfg.ranges, cfg.error_ranges),
                               [p.field.values for p in panels if p.kind == "value"],
                               [p.field.values for p in panels if p.kind == "error"], cfg.ranges, cfg.error_ranges, var)
            note = ("colour ranges of this lead, shared by its panels" if not style.fixed else
                    "fixed colour range from the config (compares across leads and runs)")
            for view in cfg.projections:
                title = map_title(var, init, lead, view.replace("_", " "))
                path = save_figure(map_figure(panels, style, view, title, note),
                                   out / f"map_{var}_{hours:g}h_{view}.png", dpi)
                entries.append(FigureEntry(path.name, "map", title, var))
    return entries


def _skill_maps(product: xr.Dataset, truth: xr.Dataset, scores: xr.Dataset, cfg: RenderConfig, dpi: int,
                out: Path) -> list[FigureEntry]:
    """RMSE, bias and CRPS at every grid point over all initial times, per variable and lead, in Robinson."""
    variables = cfg.variables or [str(v) for v in scores["variable"].values]
    leads = [x for x in cfg.skill_map_leads if parse_duration(x) in product[LEAD_TIME].values]
    if not leads:
        return []
    aligned = align(product, truth, variables, leads, persistence=False)
    entries = []
    n = aligned.forecast.sizes[INIT_TIME]
    for var in variables:
        for lead in aligned.forecast[LEAD_TIME].values:
            pick = {LEAD_TIME: lead}
            skill = gridpoint_scores(aligned.forecast[var].sel(pick), aligned.truth[var].sel(pick)).compute()
            errors = [skill["rmse"].values, skill["bias"].values]
            style = lead_style(style_for(var, str(aligned.units[var])), [], errors)
            panels = [Panel(skill["rmse"], "RMSE", "skill"),
                      Panel(skill["crps"], "CRPS" + (" (fair)" if aligned.is_ensemble else " (= MAE)"), "skill"),
                      Panel(skill["bias"], "bias (forecast - truth)", "error")]
            hours = lead / np.timedelta64(1, "h")
            title = f"{var}: skill at every grid point at +{hours:g} h over {n} initial times"
            fig = map_figure(panels, style, "robinson", title, "RMSE, bias and CRPS share one colour range")
            path = save_figure(fig, out / f"skill_map_{var}_{hours:g}h.png", dpi)
            entries.append(FigureEntry(path.name, "skill_map", title, var))
    return entries


def _frames(product: xr.Dataset, truth: xr.Dataset, scores: xr.Dataset, cfg: RenderConfig,
            out: Path) -> list[FigureEntry]:
    """Small single maps for the report's interactive view (:class:`InteractiveConfig`): forecast (or ensemble
    mean), truth and a few members per variable and lead, of initial time ``init_index``, each variable with
    one colour range over all its frames so that moving through leads and members compares like with like."""
    icfg = cfg.interactive
    case = product.isel({INIT_TIME: cfg.init_index})
    init = case[INIT_TIME].values
    every = parse_duration(icfg.lead_every)
    leads = [x for x in case[LEAD_TIME].values if x > np.timedelta64(0, "ns") and x % every == np.timedelta64(0)]
    entries = []
    for var in cfg.variables or [str(v) for v in scores["variable"].values]:
        field = case[var].sel({LEAD_TIME: leads}).load()
        obs = _truth_at(truth, var, init + np.array(leads)).load()
        style = style_for(var, str(case[var].attrs.get("units", "")), obs.values, cfg.ranges, cfg.error_ranges)
        style = lead_style(style, [obs.values], None, cfg.ranges, cfg.error_ranges, var)
        for i, lead in enumerate(leads):
            hours = float(lead / np.timedelta64(1, "h"))
            f = field.isel({LEAD_TIME: i})
            views = {"truth": obs.isel({TIME: i})}
            if MEMBER in f.dims:
                views = {"ensemble mean": ensemble_mean(f), **views}
                views.update({f"member {int(m)}": f.sel({MEMBER: m}) for m in f[MEMBER].values[:icfg.members]})
            else:
                views = {"forecast": f, **views}
            for member, data in views.items():
                title = map_title(var, init, lead, member)
                note = "one colour range for all frames of this variable"
                short = f"{var}, valid {_utc(init + lead)} (+{hours:g} h)"  # the page shows the full title
                fig = map_figure([Panel(data, member)], style, icfg.projection, short, note, gridlines=False)
                name = f"frames/{var}_{hours:g}h_{member.replace(' ', '_')}.png"
                path = save_figure(fig, out / name, icfg.dpi)
                entries.append(FigureEntry(f"frames/{path.name}", "frame", title, var, hours, member))
    return entries


def _animation(product: xr.Dataset, truth: xr.Dataset, scores: xr.Dataset, cfg: RenderConfig, out: Path,
               dpi: int) -> FigureEntry:
    var = cfg.animation.variable or str(scores["variable"].values[0])
    if var not in product:
        raise InputError(f"render.animation.variable {var!r} is not in the product")
    field = product[var].isel({INIT_TIME: cfg.init_index})
    if MEMBER in field.dims:
        field = field.isel({MEMBER: 0})  # one trajectory: member 0 (the control when there is one)
    init = field[INIT_TIME].values
    obs = _truth_at(truth, var, init + field[LEAD_TIME].values).rename({TIME: LEAD_TIME})
    obs = obs.assign_coords({LEAD_TIME: field[LEAD_TIME].values})
    style = style_for(var, str(product[var].attrs.get("units", "")), None, cfg.ranges, cfg.error_ranges)
    path = animate_rollout(field.rename(var), style, out / f"rollout_{var}.gif", cfg.animation.projection,
                           cfg.animation.fps, cfg.animation.max_frames, min(dpi, 80), truth=obs)
    return FigureEntry(path.name, "animation", f"rollout of {var} from {np.datetime_as_string(init, unit='h')}", var)


def render_evaluation(config: EvaluateConfig, run_dir: str | Path, product: str | Path | None = None,
                      truth: str | Path | None = None, maps: bool = True, progress: bool = True) -> Path:
    """Draw every figure of the evaluation in ``run_dir`` (holding ``scores.nc``) into ``run_dir/figures``.

    ``product`` and ``truth`` default to the paths recorded in the scores; ``maps=False`` draws only the
    score plots (no product or store needed). Returns the index file.
    """
    run_dir = Path(run_dir)
    scores = read_scores(run_dir)
    cfg = config.render
    out = run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    steps = ["scores"] + (["maps", "animation"] if maps else [])
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="render", unit="step")
    entries: list[FigureEntry] = []
    fc = tr = None
    for step in steps:
        if step == "scores":
            entries += _score_figures(scores, cfg, cfg.dpi, out)
            continue
        if fc is None:
            product, truth = product or scores.attrs.get("product"), truth or scores.attrs.get("truth")
            if product is None or truth is None:
                raise InputError(f"{run_dir / 'scores.nc'} does not record its product and truth; pass --product "
                                 "and --truth (or --no-maps)")
            fc = open_forecast(product, config.chunk_mb, allow_incomplete=True)
            tr = open_truth(truth)
        if step == "maps":
            entries += _map_figures(fc, tr, scores, cfg, cfg.dpi, out)
            entries += _skill_maps(fc, tr, scores, cfg, cfg.dpi, out)
            entries += _frames(fc, tr, scores, cfg, out) if cfg.interactive.enabled else []
        else:
            entries.append(_animation(fc, tr, scores, cfg, out, cfg.dpi))
    index = out / INDEX
    with atomic_file(index) as tmp:
        tmp.write_text(json.dumps({"forecast": scores.attrs.get("forecast"), "figures": [asdict(e) for e in entries]},
                                  indent=1))
    return index
