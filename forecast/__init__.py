"""forecast: ERA5-style ingestion, SFNO/AFNO forecasting, ensembles and evaluation on one machine."""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenMP threads that sleep at barriers instead of spinning. With spinning (libgomp's default), torch's
# two threads on a 2-core machine shared with one other busy process wait for each other at every
# parallel region and training slowed 3-10x; sleeping threads give the fair share (about 2x). It must be
# set before torch (and with it libgomp) is loaded, so it lives here, before any module imports torch;
# a value the user set wins. Measured: benchmarks/contention.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("forecast")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

ERA5_CREDIT = (
    "Contains modified Copernicus Climate Change Service information 2025-2026. Neither the European "
    "Commission nor ECMWF is responsible for any use that may be made of the Copernicus information or "
    "data it contains."
)
