"""Pieces every sub-command module of the ``forecast`` command line shares."""

from __future__ import annotations

import argparse


def add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set grid.nlat=33 --set time.end=2001-12-31 (repeatable)",
    )


def _scheduler(value: str) -> str:
    from forecast.compute import check_scheduler

    try:
        return check_scheduler(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_scheduler(p: argparse.ArgumentParser) -> None:
    """``--scheduler`` and ``--workers``: how the stage's dask work runs (see :mod:`forecast.compute`)."""
    p.add_argument("--scheduler", type=_scheduler, metavar="{threads,synchronous,distributed,ADDRESS}",
                   help="dask scheduler: 'distributed' starts a dask.distributed LocalCluster; an address "
                        "(tcp://host:8786) connects to a running cluster, whose workers must see the same paths")
    p.add_argument("--workers", type=int, help="threads or LocalCluster workers")


def scheduler_overrides(args: argparse.Namespace) -> list[str]:
    """``--scheduler`` and ``--workers`` as config overrides."""
    return [f"{k}={v}" for k, v in (("scheduler", args.scheduler), ("workers", args.workers)) if v]
