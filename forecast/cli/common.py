"""Pieces every sub-command module of the ``forecast`` command line shares."""

from __future__ import annotations

import argparse


def add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set grid.nlat=33 --set time.end=2001-12-31 (repeatable)",
    )
