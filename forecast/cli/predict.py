"""The ``predict`` sub-command: rollouts and ensembles into forecast products."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forecast.cli.common import add_overrides

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
[, member][, level], latitude, longitude) plus valid_time, pressure-level channels on a CF `level` axis in
hPa, or WeatherBench2 names with --naming weatherbench2.
Written atomically; an existing product is only replaced with --overwrite; `COMPLETE` marks a finished
one. A NaN/Inf or runaway state stops the run (exit status 3) naming the step; the leads before it stay
readable in a product flagged complete: false. A stability report (global mean and std by lead, power
spectra vs the data's) is printed and kept in the product's `stability` group.
"""


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
        notes = getattr(exc, "__notes__", [])  # the writer's: a complete product it was to replace is kept
        kept = notes[0] if notes else f"partial product (complete: false) kept at {config.output.path}"
        print(f"forecast predict: {exc}\n{kept}", file=sys.stderr)
        return 3
    print(f"wrote {result.path}: {result.init_times.size} initial time(s) x {result.members} member(s) x "
          f"{result.n_steps} step(s) in {result.seconds:.1f} s ({result.member_steps_per_s:.1f} member-steps/s)"
          + (f"; netCDF copy {result.netcdf}" if result.netcdf else ""))
    if result.stability is not None:
        print(format_stability_report(result.stability))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``forecast`` parser."""
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
    add_overrides(p)
    p.set_defaults(func=_cmd_predict)
