"""Sub-commands that make and inspect data: ``synth``, ``ingest``, ``info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forecast.cli.common import add_overrides, add_scheduler, scheduler_overrides


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

    overrides = scheduler_overrides(args) + list(args.overrides)
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


def _cmd_info(args: argparse.Namespace) -> int:
    import xarray as xr

    from forecast.errors import InputError

    if not (args.store / "zarr.json").exists() and not (args.store / ".zgroup").exists():
        what = "does not exist" if not args.store.exists() else "is not a zarr store"
        raise InputError(f"{args.store} {what}; `forecast info` reads a store written by `forecast ingest`")
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``forecast`` parser."""
    p = sub.add_parser("synth", help="write the embedded ERA5-style archive (no download needed)",
                       description="Run a forced-dissipative shallow-water model on the sphere and write "
                                   "its output as monthly netCDF files laid out as the Climate Data Store "
                                   "delivers ERA5 (pressure_levels/, single_levels/, invariant/).")
    p.add_argument("--config", default="configs/synth/default.yaml", help="synth config (YAML)")
    p.add_argument("--out", default="data/raw/era5-synth", type=Path, help="archive folder to write")
    p.add_argument("--years", type=int, help="number of years to simulate (overrides the config)")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overrides(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="build a training-ready zarr store from raw files",
                       description="Open CDS netCDF, GRIB or WeatherBench2/ARCO zarr files lazily, normalise "
                                   "their conventions, select channels, regrid conservatively to the model "
                                   "grid, validate, compute normalisation statistics over the training "
                                   "period and write a consolidated zarr store atomically.")
    p.add_argument("config", type=Path, help="ingest config (YAML), e.g. configs/ingest/synthetic.yaml")
    p.add_argument("--output", help="store path (overrides output.path)")
    p.add_argument("--force", action="store_true", help="rebuild even if the store is up to date")
    add_scheduler(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overrides(p)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("info", help="summarise a training store", description="Print a store's contents.")
    p.add_argument("store", type=Path)
    p.add_argument("--json", action="store_true", help="also print the provenance attributes as JSON")
    p.set_defaults(func=_cmd_info)
