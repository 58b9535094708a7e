"""Sub-commands of the evaluation stage: ``climatology``, ``evaluate``, ``render``, ``report``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forecast.cli.common import add_overrides, add_scheduler, scheduler_overrides
from forecast.errors import InputError


def _evaluate_config(args: argparse.Namespace, extra: list[str] | None = None):
    """The evaluation config: ``--config`` (or the defaults) with command-line options and ``--set`` applied."""
    from forecast.config import load_config, validate_config
    from forecast.evaluate.config import EvaluateConfig

    overrides = list(extra or []) + list(args.overrides)
    if args.config:
        return load_config(EvaluateConfig, args.config, overrides)
    return validate_config(EvaluateConfig, {}, overrides, source="the evaluation options")


def _cmd_climatology(args: argparse.Namespace) -> int:
    from forecast.compute import session
    from forecast.evaluate.align import open_truth
    from forecast.evaluate.climatology import build_climatology, write_climatology

    extra = [f"climatology.{k}={v}" for k, v in (("start", args.start), ("end", args.end),
                                                  ("window_days", args.window)) if v is not None]
    config = _evaluate_config(args, extra + scheduler_overrides(args))
    out = args.out or config.climatology.path
    if out is None:
        raise InputError("where should the climatology go? pass --out PATH (or set climatology.path in the config)")
    c = config.climatology
    with session(config.scheduler, config.workers):  # a cluster's client computes the blocks
        clim = build_climatology(open_truth(args.store), config.variables, c.start, c.end, c.window_days,
                                 progress=not args.no_progress)
    write_climatology(clim, out)
    print(f"wrote {out}: {len(clim.data_vars)} channel(s) x 366 days x {clim.sizes['hour']} hour(s) from "
          f"{clim.attrs['n_times']} fields over {clim.attrs['period_start']} .. {clim.attrs['period_end']} "
          f"({c.window_days}-day window)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from forecast.evaluate.score import few_cases_warning, run_evaluate, score_summary

    extra = []
    if args.climatology:
        extra.append(f"climatology.path={args.climatology}")
    extra += scheduler_overrides(args)
    config = _evaluate_config(args, extra)
    result = run_evaluate(config, args.product, args.truth, args.out, args.label, progress=not args.no_progress)
    s = result.scores
    keep = "metric in ['rmse', 'acc', 'crps']"
    table, lower, upper = (score_summary(s, bound=b).query(keep) for b in (None, "lower", "upper"))
    cells = table.copy().astype(object)
    for col in table.columns:
        cells[col] = [f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else f"{v:.3g}"
                      for v, lo, hi in zip(table[col], lower[col], upper[col], strict=True)]
    print(f"global scores [{100 * s.attrs['confidence']:g}% interval, block bootstrap over initial times]:")
    print(cells.to_string())
    warning = few_cases_warning(s)
    if warning:
        print(f"forecast evaluate: warning: {warning}")
    print(f"scored {s.attrs['forecast']} ({s.attrs['n_init_times']} initial times x {s.sizes['lead_time']} leads x "
          f"{s.attrs['members']} member(s)) and {s.attrs['baselines'] or 'no baselines'} over "
          f"{s.sizes['region']} region(s) in {result.seconds:.1f} s -> {result.netcdf}, {result.csv}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from forecast.render.run import render_evaluation

    config = _evaluate_config(args)
    index = render_evaluation(config, args.run_dir, args.product, args.truth, maps=not args.no_maps,
                              progress=not args.no_progress)
    figures = json.loads(index.read_text())["figures"]
    print(f"drew {len(figures)} figure(s) in {index.parent} (listed in {index.name})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from forecast.render.report import write_report

    md, html = write_report(args.run_dir, args.baseline)
    print(f"wrote {html} and {md}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from forecast.evaluate.compare import compare_scores, pair_scores, write_comparison
    from forecast.evaluate.score import few_cases_warning
    from forecast.render.compare import render_comparison
    from forecast.render.plots import relative_skill

    comparison = compare_scores(args.scores, args.reference)
    out = args.out or Path(args.scores[0]).parent / "comparison"
    nc, csv = write_comparison(comparison, out)
    index = None if args.no_figures else render_comparison(comparison, out)
    ref = comparison.attrs["reference"]
    alpha = 1.0 - float(comparison.attrs["confidence"])
    for model in comparison["p_value"]["model"].values.tolist():
        pair = pair_scores(comparison, model)
        skill = relative_skill(pair, ref, "global")
        p = relative_skill(pair, ref, "global", significance=True)
        marks = skill.copy().astype(object)
        for col in skill.columns:
            marks[col] = [f"{v:+.1f}{'*' if q < alpha else ''}" for v, q in zip(skill[col], p[col], strict=True)]
        print(f"{model} vs {ref}, global: % better (ACC: points); * significant at {100 * alpha:g}% "
              f"(paired block bootstrap over {comparison.attrs['n_init_times']} initial times)")
        print(marks.rename(columns=lambda h: f"{h:g} h").to_string())
    warning = few_cases_warning(comparison)
    if warning:
        print(f"forecast compare: warning: {warning}")
    print(f"compared {comparison.attrs['models']} against {ref} -> {nc}, {csv}"
          + (f", figures in {index.parent}" if index else ""))
    return 0


def _cmd_ensembles(args: argparse.Namespace) -> int:
    from forecast.evaluate.ensembles import ensemble_checks, ensemble_table, member_spectra, read_ensemble_runs
    from forecast.render.ensembles import render_ensembles

    runs = read_ensemble_runs(args.evaluations)
    unknown = sorted(set(args.generative + args.perturbed) - set(runs))
    if unknown:
        raise InputError(f"--generative/--perturbed name {unknown}, not forecasts of the evaluations {list(runs)}")
    spectra = {name: member_spectra(s.attrs["product"], args.truth or s.attrs["truth"]) for name, s in runs.items()}
    table = ensemble_table(runs, spectra)
    checks = ensemble_checks(table, args.generative, args.perturbed)
    md, html = render_ensembles(runs, spectra, table, checks, args.out, map_variable=args.map_variable)
    if not checks.empty:
        print(checks.to_string(index=False))
    print(f"wrote {html} and {md}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``forecast`` parser."""
    p = sub.add_parser("climatology", help="day-of-year x hour climatology of a store (for ACC and the baseline)",
                       description="Average a store's fields by day of year and hour of day over its training "
                                   "period (the store's statistics period unless --start/--end say otherwise), each "
                                   "day over a centred window of days (61 by default, wrapping over the year end), "
                                   "and write the result as its own zarr, read by `forecast evaluate`.")
    p.add_argument("store", help="training store (zarr, a path or URL) written by `forecast ingest`")
    p.add_argument("--out", help="climatology zarr to write (default: climatology.path of the config)")
    p.add_argument("--config", type=Path, help="evaluation config (YAML), e.g. configs/evaluate/synthetic.yaml")
    p.add_argument("--start", help="first time averaged, e.g. 2000-01-01 (default: the training period's start)")
    p.add_argument("--end", help="last time averaged, e.g. 2000-12-31T18:00 (default: the training period's end)")
    p.add_argument("--window", type=int, help="smoothing window in days (odd, default 61)")
    add_scheduler(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overrides(p)
    p.set_defaults(func=_cmd_climatology)

    p = sub.add_parser("evaluate", help="score a forecast product against the truth and the baselines",
                       description="Score a forecast product (zarr from `forecast predict`, deterministic or "
                                   "ensemble) against a truth store on valid time (initial time + lead time) with "
                                   "WeatherBench2's definitions: area-weighted RMSE, bias, MAE, uncentred ACC; for "
                                   "ensembles fair CRPS, spread, spread/skill and rank histograms; zonal energy "
                                   "spectra. Persistence and climatology are scored on exactly the same cases. "
                                   "Regions: global, tropics, extra-tropics, land, sea and boxes from the config. "
                                   "Reads the product lazily in chunks (dask), so products larger than memory are "
                                   "scored. Writes scores.nc (dims metric, region, variable, lead_time) and "
                                   "scores.csv.")
    p.add_argument("product", help="forecast product (zarr, path or URL), e.g. runs/sfno_synth/forecasts/ensemble.zarr")
    p.add_argument("--truth", help="store holding the truth at the valid times (default: `truth` of the config)")
    p.add_argument("--climatology", help="climatology zarr from `forecast climatology` (default: climatology.path "
                                         "of the config; without one it is built from the truth store)")
    p.add_argument("--config", type=Path, help="evaluation config (YAML), e.g. configs/evaluate/synthetic.yaml")
    p.add_argument("--out", help="folder (or URL) for scores.nc and scores.csv (default: output_dir of the config)")
    p.add_argument("--label", help="name of the forecast in the scores (default: the product's name)")
    add_scheduler(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overrides(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("render", help="maps, score plots, scorecards and a rollout GIF of an evaluation",
                       description="Draw the figures of an evaluation folder (holding scores.nc) into its figures/ "
                                   "folder: RMSE / ACC / CRPS against lead time with the baselines, scorecards of "
                                   "relative skill per region, spread/skill and rank histograms of ensembles, zonal "
                                   "energy spectra, cartopy maps of forecast | truth | error (ensembles: mean, "
                                   "spread) in the config's views with fixed per-variable colours, and a GIF of the "
                                   "rollout. Coastlines come from Natural Earth files shipped in the package.")
    p.add_argument("run_dir", type=Path, help="evaluation folder written by `forecast evaluate`")
    p.add_argument("--config", type=Path, help="evaluation config (its `render` section: leads, views, ranges)")
    p.add_argument("--product", help="forecast product (default: the one recorded in scores.nc)")
    p.add_argument("--truth", help="truth store (default: the one recorded in scores.nc)")
    p.add_argument("--no-maps", action="store_true", help="only the score plots (no product or store needed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overrides(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("compare", help="scorecards of models against a reference model on their common cases",
                       description="Compare the scores of several `forecast evaluate` runs (same truth, overlapping "
                                   "initial times): every score is recomputed from the stored per-initial-time "
                                   "statistics on the cases all share, with block-bootstrap intervals and paired "
                                   "significance of each model minus the reference model. Writes comparison.nc, "
                                   "comparison.csv and figures/ (scorecards per model and region with significance "
                                   "marks, scores against lead time of every model and baseline with error bars).")
    p.add_argument("scores", nargs="+", help="scores.nc files (or evaluation folders) of `forecast evaluate`")
    p.add_argument("--reference", help="name of the reference model (default: the first file's forecast)")
    p.add_argument("--out", type=Path, help="output folder (default: comparison/ beside the first scores)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("ensembles", help="several ensembles on the same cases side by side: CRPS, spread/skill, "
                                         "rank histograms, single-member spectra and member maps",
                       description="Put the evaluations of several ensemble products on the same initial times side "
                                   "by side: fair CRPS and corrected spread/skill against lead time, rank histograms, "
                                   "the power per spherical harmonic degree of single members relative to the "
                                   "truth's, and maps of two members of each. With --generative and --perturbed, "
                                   "checks that each generative ensemble is calibrated (corrected spread/skill "
                                   "0.8-1.2), beats every perturbed ensemble on CRPS and keeps the truth's spectrum "
                                   "within a factor 2, at every lead from 24 h to 120 h. Writes table.csv, "
                                   "figures/, report.md and report.html into --out.")
    p.add_argument("evaluations", nargs="+", help="evaluation folders of `forecast evaluate` (scores.nc)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--truth", help="truth store (default: the one recorded in each scores.nc)")
    p.add_argument("--generative", nargs="*", default=[], help="forecast names of the ensembles to check")
    p.add_argument("--perturbed", nargs="*", default=[], help="forecast names of the ensembles they must beat on CRPS")
    p.add_argument("--map-variable", default="z500", help="variable of the member maps")
    p.set_defaults(func=_cmd_ensembles)

    p = sub.add_parser("report", help="one HTML / Markdown page with an evaluation's tables and figures",
                       description="Write report.html and report.md into an evaluation folder: what was scored, "
                                   "the global scores at a few leads, the relative skill against a baseline, and "
                                   "every figure of `forecast render`.")
    p.add_argument("run_dir", type=Path, help="evaluation folder (scores.nc and figures/)")
    p.add_argument("--baseline", default="persistence", choices=["persistence", "climatology"],
                   help="baseline of the relative-skill table")
    p.set_defaults(func=_cmd_report)
