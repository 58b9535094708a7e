"""Sub-commands of climate mode: ``climate``, ``climate-table``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forecast.cli.common import add_overrides


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``forecast`` parser."""
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
    add_overrides(p)
    p.set_defaults(func=_cmd_climate)

    p = sub.add_parser("climate-table", help="several climate results side by side, with the noise-floor ratio",
                       description="One table of `forecast climate` results (climate.nc or its folder): per run and "
                                   "variable the time-mean bias RMSE and its ratio to the noise floor (the "
                                   "reference run), mean bias, seasonal-cycle RMSE, std ratio, spectral ratio and "
                                   "the stability verdict.")
    p.add_argument("results", nargs="+", type=Path, help="climate.nc files or the folders holding them")
    p.add_argument("--out", type=Path, help="also write the table as CSV here")
    p.set_defaults(func=_cmd_climate_table)
