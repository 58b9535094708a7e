"""A small CF / schema checker for forecast products (the conventions :mod:`forecast.products.writer` follows).

``check_product(ds)`` returns a list of problems (empty: the product passes). It checks what
downstream tools rely on, not all of CF:

* global attributes: ``Conventions`` (CF-1.x), ``title``, ``source``, ``history``, ``complete``;
* coordinates: latitude/longitude units, standard names and axes (latitude north to south,
  longitude in [0, 360)), their cell bounds ``(n, 2)`` where a ``bounds`` attribute names them;
  initial time ``forecast_reference_time``; lead time ``forecast_period`` as timedeltas; ``valid_time``
  (``time``) of dims (init, lead) equal to init + lead; member
  ``realization``; level in hPa as ``air_pressure``, ``positive: down``;
* data variables: float, ``units`` and ``long_name`` present, ``standard_name`` where the ERA5
  catalogue knows one, dims in the order ``(init, lead[, member][, level], latitude, longitude)``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from forecast.products.layout import ProductDims, dims_for
from forecast.schema import LAT, LON, VARIABLES

__all__ = ["check_product"]

_GLOBAL = ("Conventions", "title", "source", "history", "complete")


def _naming(ds: xr.Dataset) -> ProductDims:
    name = ds.attrs.get("naming")
    if name in ("forecast", "weatherbench2"):
        return dims_for(name)
    return dims_for("weatherbench2" if "prediction_timedelta" in ds.dims else "forecast")


def _coord(ds: xr.Dataset, name: str, problems: list[str], **expected: str) -> None:
    if name not in ds.coords:
        problems.append(f"coordinate {name!r} is missing")
        return
    for key, value in expected.items():
        got = ds[name].attrs.get(key)
        if got != value:
            problems.append(f"coordinate {name!r}: {key} is {got!r}, expected {value!r}")


def check_product(ds: xr.Dataset) -> list[str]:
    """Problems of product ``ds`` (opened with xarray, times decoded); ``[]`` when it passes."""
    problems: list[str] = []
    d = _naming(ds)
    for key in _GLOBAL:
        if key not in ds.attrs:
            problems.append(f"global attribute {key!r} is missing")
    if not str(ds.attrs.get("Conventions", "")).startswith("CF-"):
        problems.append(f"Conventions is {ds.attrs.get('Conventions')!r}, expected 'CF-1.x'")

    _coord(ds, LAT, problems, units="degrees_north", standard_name="latitude", axis="Y")
    _coord(ds, LON, problems, units="degrees_east", standard_name="longitude", axis="X")
    if LAT in ds.coords and ds[LAT].size > 1 and not bool((np.diff(ds[LAT].values) < 0).all()):
        problems.append("latitude must run north to south")
    if LON in ds.coords and not bool(((ds[LON] >= 0) & (ds[LON] < 360)).all()):
        problems.append("longitude must lie in [0, 360)")
    for axis in (LAT, LON):
        bounds = ds[axis].attrs.get("bounds") if axis in ds.coords else None
        if bounds and (bounds not in ds.variables or ds[bounds].shape != (ds.sizes[axis], 2)):
            problems.append(f"coordinate {axis!r}: its bounds {bounds!r} are missing or not ({axis}, 2)")
    _coord(ds, d.init, problems, standard_name="forecast_reference_time")
    _coord(ds, d.lead, problems, standard_name="forecast_period")
    _coord(ds, d.valid, problems, standard_name="time")
    if d.init in ds.coords and not np.issubdtype(ds[d.init].dtype, np.datetime64):
        problems.append(f"{d.init} is {ds[d.init].dtype}, expected datetime64")
    if d.lead in ds.coords and not np.issubdtype(ds[d.lead].dtype, np.timedelta64):
        problems.append(f"{d.lead} is {ds[d.lead].dtype}, expected timedelta64")
    if {d.init, d.lead, d.valid} <= set(ds.coords):
        if ds[d.valid].dims != (d.init, d.lead):
            problems.append(f"{d.valid} has dims {ds[d.valid].dims}, expected ({d.init}, {d.lead})")
        elif not np.array_equal(ds[d.valid].values, ds[d.init].values[:, None] + ds[d.lead].values[None, :]):
            problems.append(f"{d.valid} is not {d.init} + {d.lead}")
    if d.member in ds.dims:
        _coord(ds, d.member, problems, standard_name="realization")
    if d.level in ds.dims:
        _coord(ds, d.level, problems, units="hPa", standard_name="air_pressure", positive="down")

    for name, var in ds.data_vars.items():
        for key in ("units", "long_name"):
            if key not in var.attrs:
                problems.append(f"variable {name!r}: attribute {key!r} is missing")
        info = VARIABLES.get(str(var.attrs.get("short_name", "")))
        if info and info.standard_name and var.attrs.get("standard_name") != info.standard_name:
            problems.append(f"variable {name!r}: standard_name is {var.attrs.get('standard_name')!r}, "
                            f"expected {info.standard_name!r}")
        if not np.issubdtype(var.dtype, np.floating):
            problems.append(f"variable {name!r} is {var.dtype}, expected floating point")
        expected = tuple(x for x in (d.init, d.lead, d.member, d.level, LAT, LON)
                         if x in var.dims or x in (d.init, d.lead, LAT, LON))
        if var.dims != expected:
            problems.append(f"variable {name!r} has dims {var.dims}, expected {expected}")
    return problems
