"""forecast: ERA5-style ingestion, SFNO/AFNO forecasting, ensembles and evaluation on one machine."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("forecast")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

ERA5_CREDIT = (
    "Contains modified Copernicus Climate Change Service information 2025-2026. Neither the European "
    "Commission nor ECMWF is responsible for any use that may be made of the Copernicus information or "
    "data it contains."
)
