"""``forecast`` command line: one sub-command per pipeline stage.

Each sub-command loads a YAML config into its typed config class, applies ``--set key=value``
overrides and calls the stage's entry function; heavy imports happen inside the sub-command so
``forecast --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from forecast import __version__
from forecast.config import ConfigError
from forecast.errors import InputError

DESCRIPTION = """\
Weather and climate forecasting on one machine, from ERA5-style data to scored forecasts.

stages:
  synth        write the embedded ERA5-style archive (a shallow-water model on the sphere, CDS layout)
  ingest       turn CDS netCDF / GRIB / WeatherBench2 zarr into a training-ready zarr store
  train        train an SFNO or AFNO forecaster on a store (torchrun for several processes)
  skill        score a trained model against persistence and climatology (RMSE, ACC by lead time)
  predict      roll a model (or an ensemble) out into a CF-compliant forecast product
  climatology  build the day-of-year x hour climatology of a store's training period (zarr)
  evaluate     score a forecast product against a truth store and the baselines (WeatherBench2 scores)
  climate      a long rollout's climate vs the truth: bias, seasons, variability, spectra, drift, verdict
  render       draw the maps, score plots, scorecards and rollout GIF of an evaluation
  report       gather an evaluation's tables and figures into one HTML / Markdown page
  info         summarise a store: channels, grid, time span, normalisation statistics

Run `forecast <stage> --help` for the options of a stage.
"""


PREDICT_DESCRIPTION = """\
Roll one or several trained models forward from initial times of an ingested store and stream every
lead time to a forecast product as it is computed (memory does not grow with the lead count).

  forecast predict configs/predict/ensemble.yaml                 # everything from the config
  forecast predict runs/sfno_synth/best.pt --store data/stores/era5-synth.zarr \\
      --init 2001-01-01T00:00 --lead 5d                          # one model, one 5-day forecast
  forecast predict runs/sfno_synth/best.pt --store STORE --init 2001-01-01/2001-01-10/24h --lead 20 \\
      --members 16 --perturbation spherical_grf --set ensemble.perturbation.amplitude=0.05

Initial conditions: a store written by `forecast ingest` on the model's grid. Your own ERA5 files go
through the same ingestion first: `--ingest my_ingest.yaml` (grid = the model's, `stats: null`).
Ensembles run all members of a model as one batch; perturbations: white_noise, spherical_grf
(Matern-like spectrum), bred_vectors; several packages make a multi-model ensemble, `ensemble.lagged`
a lagged one. Seeds and parameters are recorded; a rerun gives identical members.

Product: zarr (optionally also netCDF), CF attributes, physical units, dims (init_time, lead_time
[, member], latitude, longitude) plus valid_time, or WeatherBench2 names with --naming weatherbench2.
Written atomically; an existing product is only replaced with --overwrite; `COMPLETE` marks a finished
one. A NaN/Inf or runaway state stops the run (exit status 3) naming the step; the leads before it stay
readable in a product flagged complete: false. A stability report (global mean and std by lead, power
spectra vs the data's) is printed and kept in the product's `stability` group.
"""


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set grid.nlat=33 --set time.end=2001-12-31 (repeatable)",
    )


def _cmd_synth(args: argparse.Namespace) -> int:
    from forecast.config import load_config
    from forecast.synth.archive import SynthConfig, write_archive

    overrides = list(args.overrides)
    if args.years is not None:
        overrides.append(f"years={args.years}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_config(SynthConfig, args.config, overrides)
    paths = write_archive(config, args.out, progress=not args.no_progress)
    print(f"wrote {len(paths)} files under {args.out}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from forecast.config import load_config
    from forecast.ingest.config import IngestConfig
    from forecast.ingest.pipeline import run_ingest

    overrides = list(args.overrides)
    if args.scheduler:
        overrides.append(f"scheduler={args.scheduler}")
    if args.output:
        overrides.append(f"output.path={args.output}")
    config = load_config(IngestConfig, args.config, overrides)
    result = run_ingest(config, force=args.force, progress=not args.no_progress)
    if result.skipped:
        print(f"{result.path} is up to date (same config and inputs); use --force to rebuild")
    else:
        print(f"wrote {result.path}: {result.n_times} times, read {result.bytes_read / 1e6:.1f} MB "
              f"in {result.seconds:.1f} s ({result.mb_per_s:.1f} MB/s)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from forecast.config import load_config
    from forecast.train.config import TrainConfig
    from forecast.train.loop import train

    config = load_config(TrainConfig, args.config, args.overrides)
    result = train(config, resume=args.resume, device=args.device, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {config.name}: {result.steps} steps, best validation score {result.best_score:.4f} "
              f"(RMSE/std over channels and leads); package {result.run_dir / 'model.pt'}")
    return 0


def _cmd_skill(args: argparse.Namespace) -> int:
    from forecast.data.store import open_training_store
    from forecast.rollout.skill import skill_table
    from forecast.train.package import load_package

    package = load_package(args.package)
    store = open_training_store(args.store)
    table = skill_table(package, store, args.start, args.end, args.leads, max_cases=args.cases,
                        clim_period=(args.clim_start, args.clim_end), device=args.device)
    if args.out:
        table.to_csv(args.out, index=False)
    wide = table.pivot_table(index=["metric", "channel", "model"], columns="lead_hours", values="value")
    print(wide.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _predict_overrides(args: argparse.Namespace) -> list[str]:
    """Command-line options as config overrides (applied before ``--set``, which can refine them)."""
    out = []
    if args.store:
        out.append(f"store={args.store}")
    if args.ingest:
        out += [f"ingest={args.ingest}", "store=null"]
    if args.init:
        if len(args.init) == 1 and "/" in args.init[0]:
            start, end, *every = args.init[0].split("/")
            out.append(f"init={{start: {start}, end: {end or start}, every: {every[0] if every else '24h'}}}")
        else:
            out.append(f"init={{times: [{', '.join(args.init)}]}}")
    if args.lead:
        out.append(f"lead={args.lead}")
    if args.members is not None:
        out.append(f"ensemble.members={args.members}")
    if args.perturbation:
        out.append(f"ensemble.perturbation={{type: {args.perturbation}}}")
    if args.seed is not None:
        out.append(f"ensemble.seed={args.seed}")
    if args.out:
        out.append(f"output.path={args.out}")
    if args.naming:
        out.append(f"output.naming={args.naming}")
    if args.netcdf:
        out.append("output.netcdf=true")
    if args.overwrite:
        out.append("output.overwrite=true")
    if args.device:
        out.append(f"device={args.device}")
    return out + list(args.overrides)


def _cmd_predict(args: argparse.Namespace) -> int:
    from forecast.rollout.config import build_predict_config
    from forecast.rollout.guards import RolloutDiverged
    from forecast.rollout.predict import run_predict
    from forecast.rollout.stability import format_stability_report

    config = build_predict_config(args.source, _predict_overrides(args))
    try:
        result = run_predict(config, progress=not args.no_progress)
    except RolloutDiverged as exc:
        print(f"forecast predict: {exc}\npartial product (complete: false) kept at {config.output.path}",
              file=sys.stderr)
        return 3
    print(f"wrote {result.path}: {result.init_times.size} initial time(s) x {result.members} member(s) x "
          f"{result.n_steps} step(s) in {result.seconds:.1f} s ({result.member_steps_per_s:.1f} member-steps/s)"
          + (f"; netCDF copy {result.netcdf}" if result.netcdf else ""))
    if result.stability is not None:
        print(format_stability_report(result.stability))
    return 0


def _evaluate_config(args: argparse.Namespace, extra: list[str] | None = None):
    """The evaluation config: ``--config`` (or the defaults) with command-line options and ``--set`` applied."""
    from forecast.config import load_config, validate_config
    from forecast.evaluate.config import EvaluateConfig

    overrides = list(extra or []) + list(args.overrides)
    if args.config:
        return load_config(EvaluateConfig, args.config, overrides)
    return validate_config(EvaluateConfig, {}, overrides, source="the evaluation options")


def _cmd_climatology(args: argparse.Namespace) -> int:
    from forecast.evaluate.align import open_truth
    from forecast.evaluate.climatology import build_climatology, write_climatology

    extra = [f"climatology.{k}={v}" for k, v in (("start", args.start), ("end", args.end),
                                                  ("window_days", args.window)) if v is not None]
    config = _evaluate_config(args, extra)
    out = args.out or config.climatology.path
    if out is None:
        raise InputError("where should the climatology go? pass --out PATH (or set climatology.path in the config)")
    c = config.climatology
    clim = build_climatology(open_truth(args.store), config.variables, c.start, c.end, c.window_days,
                             progress=not args.no_progress)
    write_climatology(clim, out)
    print(f"wrote {out}: {len(clim.data_vars)} channel(s) x 366 days x {clim.sizes['hour']} hour(s) from "
          f"{clim.attrs['n_times']} fields over {clim.attrs['period_start']} .. {clim.attrs['period_end']} "
          f"({c.window_days}-day window)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from forecast.evaluate.score import run_evaluate, score_summary

    extra = []
    if args.climatology:
        extra.append(f"climatology.path={args.climatology}")
    if args.scheduler:
        extra.append(f"scheduler={args.scheduler}")
    if args.workers:
        extra.append(f"workers={args.workers}")
    config = _evaluate_config(args, extra)
    result = run_evaluate(config, args.product, args.truth, args.out, args.label, progress=not args.no_progress)
    s = result.scores
    table = score_summary(s).query("metric in ['rmse', 'acc', 'crps']")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"scored {s.attrs['forecast']} ({s.attrs['n_init_times']} initial times x {s.sizes['lead_time']} leads x "
          f"{s.attrs['members']} member(s)) and {s.attrs['baselines'] or 'no baselines'} over "
          f"{s.sizes['region']} region(s) in {result.seconds:.1f} s -> {result.netcdf}, {result.csv}")
    return 0


def _cmd_climate(args: argparse.Namespace) -> int:
    from forecast.evaluate.climate_run import climate_summary, load_climate_config, run_climate
    from forecast.render.climate import render_climate, write_climate_report

    extra = [f"reference={args.reference}"] if args.reference else []
    config = load_climate_config(args.config, extra + list(args.overrides))
    result = run_climate(config, args.product, args.truth, config.reference, args.out, args.label,
                         progress=not args.no_progress)
    print(climate_summary(result.climate))
    print(f"wrote {result.netcdf}, {result.csv} in {result.seconds:.1f} s")
    if not args.no_render:
        index = render_climate(result.netcdf.parent, config)
        md, html = write_climate_report(result.netcdf.parent)
        print(f"drew {len(json.loads(index.read_text())['figures'])} figure(s) in {index.parent}; report {html}, {md}")
    return 0


def _cmd_climate_table(args: argparse.Namespace) -> int:
    from forecast.evaluate.climate_run import compare_climates
    from forecast.storage import atomic_file

    table = compare_climates(args.results)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(args.out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
        print(f"wrote {args.out}")
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


def _cmd_info(args: argparse.Namespace) -> int:
    import xarray as xr

    ds = xr.open_zarr(args.store)
    print(ds)
    if "stats_mean" in ds:
        print("\nnormalisation statistics "
              f"({ds.attrs.get('stats_start')} .. {ds.attrs.get('stats_end')}):")
        for i, ch in enumerate(ds["channel"].values):
            print(f"  {ch:>12s}  mean {float(ds.stats_mean[i]):12.5g}  std {float(ds.stats_std[i]):12.5g}"
                  f"  6h-tendency std {float(ds.stats_tendency_std[i]):12.5g}  [{ds[ch].attrs.get('units')}]")
    if args.json:
        print(json.dumps({k: v for k, v in ds.attrs.items() if k != "ingest_config"}, indent=1, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forecast", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"forecast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(dest="command", metavar="<stage>")

    p = sub.add_parser("synth", help="write the embedded ERA5-style archive (no download needed)",
                       description="Run a forced-dissipative shallow-water model on the sphere and write "
                                   "its output as monthly netCDF files laid out as the Climate Data Store "
                                   "delivers ERA5 (pressure_levels/, single_levels/, invariant/).")
    p.add_argument("--config", default="configs/synth/default.yaml", help="synth config (YAML)")
    p.add_argument("--out", default="data/raw/era5-synth", type=Path, help="archive folder to write")
    p.add_argument("--years", type=int, help="number of years to simulate (overrides the config)")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="build a training-ready zarr store from raw files",
                       description="Open CDS netCDF, GRIB or WeatherBench2/ARCO zarr files lazily, normalise "
                                   "their conventions, select channels, regrid conservatively to the model "
                                   "grid, validate, compute normalisation statistics over the training "
                                   "period and write a consolidated zarr store atomically.")
    p.add_argument("config", type=Path, help="ingest config (YAML), e.g. configs/ingest/synthetic.yaml")
    p.add_argument("--output", help="store path (overrides output.path)")
    p.add_argument("--force", action="store_true", help="rebuild even if the store is up to date")
    p.add_argument("--scheduler", choices=["threads", "synchronous", "distributed"],
                   help="dask scheduler; 'distributed' starts a dask.distributed LocalCluster")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("train", help="train a forecaster (SFNO or AFNO) on a training store",
                       description="Train the model a config describes on an ingested store: area-weighted MSE "
                                   "(optionally over several unrolled steps), AdamW with warm-up and cosine decay, "
                                   "validation RMSE in physical units every epoch, atomic checkpoints. Run under "
                                   "`torchrun --nproc_per_node=N` for DistributedDataParallel.")
    p.add_argument("config", type=Path, help="training config (YAML), e.g. configs/train/sfno_synth.yaml")
    p.add_argument("--resume", action="store_true",
                   help="continue the run from its last checkpoint (starts a new run if there is none)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the config's, 'auto' = CUDA if present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("skill", help="RMSE and ACC of a model vs persistence and climatology",
                       description="Roll a trained model package out from initial times spread over a period "
                                   "of a store and score it, persistence and climatology (day-of-year x hour "
                                   "mean over --clim-start .. --clim-end, 61-day window) on the same cases with "
                                   "WeatherBench2's definitions. For forecast products: `forecast evaluate`.")
    p.add_argument("package", type=Path, help="model package (runs/<name>/model.pt or best.pt)")
    p.add_argument("--store", required=True, type=Path, help="store holding the truth (and initial states)")
    p.add_argument("--start", help="first initial time, e.g. 2026-01-25")
    p.add_argument("--end", help="last valid time scored, e.g. 2026-02-07T18:00")
    p.add_argument("--leads", type=int, nargs="+", default=[1, 4, 8, 12, 20], help="lead times in model steps")
    p.add_argument("--cases", type=int, default=64, help="number of initial times (spread evenly)")
    p.add_argument("--clim-start", help="climatology period start (default: the store's start)")
    p.add_argument("--clim-end", help="climatology period end (use the training period's end)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="write the tidy table as CSV")
    p.set_defaults(func=_cmd_skill)

    p = sub.add_parser("predict", help="roll a model out from initial times into a forecast product (ensembles too)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=PREDICT_DESCRIPTION)
    p.add_argument("source", type=Path, help="predict config (YAML, e.g. configs/predict/ensemble.yaml) or a model "
                                             "package (runs/<name>/best.pt)")
    p.add_argument("--store", help="store holding the initial conditions (overrides `store`)")
    p.add_argument("--ingest", help="ingest config to run first; its output store holds the initial conditions")
    p.add_argument("--init", nargs="+", metavar="TIME",
                   help="initial time(s), e.g. 2001-01-01T00:00 2001-01-02T00:00, or START/END/EVERY "
                        "(e.g. 2001-01-01/2001-01-10/24h)")
    p.add_argument("--lead", help="lead: a duration (5d, 120h) or a number of model steps")
    p.add_argument("--members", type=int, help="ensemble members (one batch per model)")
    p.add_argument("--perturbation", help="perturbation type: white_noise, spherical_grf, bred_vectors "
                                          "(parameters with --set ensemble.perturbation.amplitude=0.05 ...)")
    p.add_argument("--seed", type=int, help="ensemble seed")
    p.add_argument("--out", help="product path (zarr)")
    p.add_argument("--naming", choices=["forecast", "weatherbench2"], help="dimension/variable naming")
    p.add_argument("--netcdf", action="store_true", help="also export a netCDF copy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing product")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("climatology", help="day-of-year x hour climatology of a store (for ACC and the baseline)",
                       description="Average a store's fields by day of year and hour of day over its training "
                                   "period (the store's statistics period unless --start/--end say otherwise), each "
                                   "day over a centred window of days (61 by default, wrapping over the year end), "
                                   "and write the result as its own zarr, read by `forecast evaluate`.")
    p.add_argument("store", type=Path, help="training store (zarr) written by `forecast ingest`")
    p.add_argument("--out", help="climatology zarr to write (default: climatology.path of the config)")
    p.add_argument("--config", type=Path, help="evaluation config (YAML), e.g. configs/evaluate/synthetic.yaml")
    p.add_argument("--start", help="first time averaged, e.g. 2000-01-01 (default: the training period's start)")
    p.add_argument("--end", help="last time averaged, e.g. 2000-12-31T18:00 (default: the training period's end)")
    p.add_argument("--window", type=int, help="smoothing window in days (odd, default 61)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
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
    p.add_argument("product", type=Path, help="forecast product (zarr), e.g. runs/sfno_synth/forecasts/ensemble.zarr")
    p.add_argument("--truth", help="store holding the truth at the valid times (default: `truth` of the config)")
    p.add_argument("--climatology", help="climatology zarr from `forecast climatology` (default: climatology.path "
                                         "of the config; without one it is built from the truth store)")
    p.add_argument("--config", type=Path, help="evaluation config (YAML), e.g. configs/evaluate/synthetic.yaml")
    p.add_argument("--out", type=Path, help="folder for scores.nc and scores.csv (default: output_dir of the config)")
    p.add_argument("--label", help="name of the forecast in the scores (default: the product's name)")
    p.add_argument("--scheduler", choices=["threads", "synchronous", "distributed"],
                   help="dask scheduler; 'distributed' starts a dask.distributed LocalCluster")
    p.add_argument("--workers", type=int, help="threads or cluster workers")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("climate", help="climate of a long rollout vs the truth, with a stability verdict",
                       description="Compare the climate of a long rollout (a product with one initial time; or a "
                                   "training store) with a truth store on their common valid times: time-mean bias, "
                                   "seasonal cycle (annual harmonic), temporal variability, zonal means, "
                                   "spherical-harmonic power spectra, 30-day means of global mean and std with their "
                                   "trends, histograms and percentiles, and the stability verdict per channel. "
                                   "--reference adds a second truth-like run (the noise floor). Streams in blocks "
                                   "of times; writes climate.nc, climate.csv, figures/ and report.html / report.md.")
    p.add_argument("product", type=Path, help="forecast product (zarr, one initial time) or a training store")
    p.add_argument("--truth", help="truth store (default: `truth` of the config)")
    p.add_argument("--reference", help="a second truth-like run (store or product): the noise floor")
    p.add_argument("--config", type=Path, help="climate config (YAML), e.g. configs/evaluate/climate.yaml")
    p.add_argument("--out", type=Path, help="folder for the results (default: output_dir of the config)")
    p.add_argument("--label", help="name of the run in the results (default: the product's name)")
    p.add_argument("--no-render", action="store_true", help="only climate.nc and climate.csv")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=_cmd_climate)

    p = sub.add_parser("climate-table", help="several climate results side by side, with the noise-floor ratio",
                       description="One table of `forecast climate` results (climate.nc or its folder): per run and "
                                   "variable the time-mean bias RMSE and its ratio to the noise floor (the "
                                   "reference run), mean bias, seasonal-cycle RMSE, std ratio, spectral ratio and "
                                   "the stability verdict.")
    p.add_argument("results", nargs="+", type=Path, help="climate.nc files or the folders holding them")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    p.set_defaults(func=_cmd_climate_table)

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
    _add_overrides(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("report", help="one HTML / Markdown page with an evaluation's tables and figures",
                       description="Write report.html and report.md into an evaluation folder: what was scored, "
                                   "the global scores at a few leads, the relative skill against a baseline, and "
                                   "every figure of `forecast render`.")
    p.add_argument("run_dir", type=Path, help="evaluation folder (scores.nc and figures/)")
    p.add_argument("--baseline", default="persistence", choices=["persistence", "climatology"],
                   help="baseline of the relative-skill table")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("info", help="summarise a training store", description="Print a store's contents.")
    p.add_argument("store", type=Path)
    p.add_argument("--json", action="store_true", help="also print the provenance attributes as JSON")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (InputError, ConfigError) as exc:
        print(f"forecast {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
