"""``forecast`` command line: one sub-command per pipeline stage.

Each sub-command loads a YAML config into its typed config class, applies ``--set key=value``
overrides and calls the stage's entry function; heavy imports happen inside the sub-command so
``forecast --help`` stays instant. The sub-commands live by stage in this package's modules, each
with a ``register(sub)`` that adds its parsers.
"""

from __future__ import annotations

import argparse
import logging
import sys

from forecast import __version__
from forecast.cli import climate, data, evaluate, predict, train
from forecast.config import ConfigError
from forecast.errors import InputError
from forecast.storage import DISK_ERRORS

__all__ = ["build_parser", "main"]

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forecast", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"forecast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(dest="command", metavar="<stage>")
    for module in (data, train, predict, evaluate, climate):
        module.register(sub)
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
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        # A full or read-only disk met outside forecast.storage (e.g. a product's chunk write): one line too.
        print(f"forecast {args.command}: error: cannot write {exc.filename or 'the output'}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1

