"""Forecast products: CF-compliant zarr stores written lead by lead, read back, checked, exported.

Only numpy/xarray/zarr here (no torch, no model code): the rollout hands the writer physical fields.
"""

from forecast.products.cf import check_product
from forecast.products.io import STABILITY_GROUP, export_netcdf, open_product, open_stability
from forecast.products.layout import channel_view, dims_for, output_variables
from forecast.products.writer import COMPLETE_MARKER, ProductSpec, ProductWriter, lead_timedeltas

__all__ = [
    "COMPLETE_MARKER",
    "STABILITY_GROUP",
    "ProductSpec",
    "ProductWriter",
    "channel_view",
    "check_product",
    "dims_for",
    "export_netcdf",
    "lead_timedeltas",
    "open_product",
    "open_stability",
    "output_variables",
]
