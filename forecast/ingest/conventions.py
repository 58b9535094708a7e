"""Bring any ERA5-style dataset to one convention (pure functions over xarray, lazy with dask).

After :func:`normalise` a dataset has dimensions ``time``, ``level`` (hPa, when present),
``latitude`` (north to south) and ``longitude`` (ascending in [0, 360)), in that order; variables
carry ERA5 short names, canonical units (see :mod:`forecast.schema`) and dtype float32; the CDS
``expver`` split is merged and ensemble members are reduced to the one asked for.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.schema import (
    LAT,
    LEVEL,
    LON,
    TIME,
    UNIT_CONVERSIONS,
    VARIABLE_ALIASES,
    VARIABLES,
    canonical_units,
)

__all__ = ["convert_units", "normalise"]

_LAT_NAMES = ("latitude", "lat", "nav_lat", "y")
_LON_NAMES = ("longitude", "lon", "nav_lon", "x")
_LEVEL_NAMES = ("pressure_level", "isobaricInhPa", "level", "plev", "lev")
_MEMBER_NAMES = ("number", "member", "realization")


def _first_present(ds: xr.Dataset, names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in ds.dims or name in ds.coords:
            return name
    return None


def _standardise_time(ds: xr.Dataset, where: str) -> xr.Dataset:
    # New CDS netCDF: dim `valid_time`. Old CDS netCDF and WB2 zarr: dim `time`. cfgrib: dim `time`
    # (the reference time) with `step` and a `valid_time` coordinate, which is the time that matters.
    if "valid_time" in ds.dims:
        ds = ds.drop_vars([v for v in ("time", "step") if v in ds.coords and v not in ds.dims])
        return ds.rename({"valid_time": TIME})
    if "step" in ds.dims:
        if ds.sizes["step"] != 1:
            raise InputError(
                f"{where}: holds {ds.sizes['step']} forecast steps; ingestion takes analyses "
                "(one step per valid time)"
            )
        ds = ds.isel(step=0)
    if TIME in ds.dims and "valid_time" in ds.coords:
        return ds.assign_coords({TIME: ds["valid_time"].values}).drop_vars(
            [v for v in ("valid_time", "step") if v in ds.coords]
        )
    if TIME not in ds.dims:
        if "valid_time" in ds.coords:
            ds = ds.drop_vars("time", errors="ignore").rename({"valid_time": TIME})
        if TIME in ds.coords:  # a single time as a scalar coordinate
            return ds.expand_dims(TIME)
        return ds  # no time at all: a static file
    return ds.drop_vars([v for v in ("step",) if v in ds.coords])


def _merge_expver(ds: xr.Dataset) -> xr.Dataset:
    # Old CDS downloads that straddle ERA5T/ERA5 carry an `expver` dimension in which each time is
    # filled in exactly one of the experiments; take the first non-missing value.
    if "expver" in ds.dims:
        merged = ds.isel(expver=0)
        for i in range(1, ds.sizes["expver"]):
            merged = merged.combine_first(ds.isel(expver=i))
        ds = merged
    return ds.drop_vars("expver", errors="ignore")


def _select_member(ds: xr.Dataset, member: int | None, where: str) -> xr.Dataset:
    name = _first_present(ds, _MEMBER_NAMES)
    if name is None:
        return ds
    if name in ds.dims and ds.sizes[name] > 1:
        if member is None:
            raise InputError(
                f"{where}: holds {ds.sizes[name]} ensemble members ({name}="
                f"{list(np.asarray(ds[name].values))}); set `member:` in the source config to pick one"
            )
        if member not in ds[name].values:
            raise InputError(f"{where}: has no ensemble member {member} (found {list(ds[name].values)})")
        ds = ds.sel({name: member})
    elif name in ds.dims:
        ds = ds.isel({name: 0})
    return ds.drop_vars(name, errors="ignore")


def _standardise_space(ds: xr.Dataset, where: str) -> xr.Dataset:
    lat = _first_present(ds, _LAT_NAMES)
    lon = _first_present(ds, _LON_NAMES)
    if lat is None or lon is None:
        raise InputError(f"{where}: no latitude/longitude coordinates (found dims {list(ds.dims)})")
    ds = ds.rename({k: v for k, v in {lat: LAT, lon: LON}.items() if k != v})
    if ds[LAT].ndim != 1 or ds[LON].ndim != 1:
        raise InputError(f"{where}: latitude/longitude must be 1-D (a regular or Gaussian grid)")
    level = _first_present(ds, _LEVEL_NAMES)
    if level is not None and level in ds.dims:
        values = ds[level].values.astype(np.float64)
        if level == "plev" or ds[level].attrs.get("units") == "Pa":
            values = values / 100.0
        ds = ds.rename({level: LEVEL}).assign_coords({LEVEL: values})
        ds[LEVEL].attrs = {"units": "hPa", "long_name": "pressure level", "positive": "down"}
    elif level is not None:
        ds = ds.drop_vars(level)
    # Longitudes in [0, 360), ascending; latitudes north to south, as ERA5 and the model grids are.
    lon_values = np.mod(ds[LON].values.astype(np.float64), 360.0)
    ds = ds.assign_coords({LON: lon_values})
    if not np.all(np.diff(lon_values) > 0):
        ds = ds.sortby(LON)
    if ds.sizes[LAT] > 1 and ds[LAT].values[0] < ds[LAT].values[-1]:
        ds = ds.isel({LAT: slice(None, None, -1)})
    ds[LAT].attrs = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}
    ds[LON].attrs = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"}
    return ds


def convert_units(da: xr.DataArray, target: str, where: str) -> xr.DataArray:
    """Return ``da`` in ``target`` units, converting known linear cases (hPa -> Pa, m -> m**2 s**-2, ...).

    Raises :class:`InputError` naming ``where`` when the units are missing or not convertible.
    """
    target = canonical_units(target)
    found_raw = da.attrs.get("units")
    found = canonical_units(found_raw)
    if found == target:
        out = da
    elif (found, target) in UNIT_CONVERSIONS:
        scale, offset = UNIT_CONVERSIONS[(found, target)]
        out = da * scale + offset
        out.attrs = dict(da.attrs)
    else:
        shown = "no units attribute" if found_raw is None else f"units {found_raw!r}"
        raise InputError(f"{where}: variable {da.name!r} has {shown}; expected {target!r}")
    out.attrs["units"] = target
    return out


def normalise(
    ds: xr.Dataset,
    where: str,
    member: int | None = None,
    rename: dict[str, str] | None = None,
) -> xr.Dataset:
    """Bring ``ds`` to the project convention (see module docstring); ``where`` names it in errors.

    Variables whose ERA5 short name is known get their units checked and converted to the
    canonical ones; unknown variables pass through unchanged.
    """
    ds = _standardise_time(ds, where)
    ds = _merge_expver(ds)
    ds = _select_member(ds, member, where)
    ds = _standardise_space(ds, where)
    names = {**VARIABLE_ALIASES, **(rename or {})}
    renames: dict[str, str] = {}
    for v in ds.data_vars:
        # Two names of one short name (WeatherBench2's `geopotential` and `geopotential_at_surface`, both z):
        # the first takes it, the other keeps its own name (select it by that name).
        if v in names and names[v] not in ds.data_vars and names[v] not in renames.values():
            renames[str(v)] = names[v]
    ds = ds.rename(renames)
    drop = [c for c in ds.coords if c not in (TIME, LEVEL, LAT, LON)]
    ds = ds.drop_vars(drop)
    out = {}
    for name, da in ds.data_vars.items():
        if LAT not in da.dims or LON not in da.dims:
            continue  # bookkeeping variables (time bounds, 2-D coordinate copies) are not fields
        info = VARIABLES.get(str(name))
        # Static fields (mask, orography in metres or as surface geopotential) are converted by the
        # caller to the units its config asks for.
        if info is not None and info.level_type != "invariant":
            da = convert_units(da, info.units, where)
        order = [d for d in (TIME, LEVEL, LAT, LON) if d in da.dims]
        extra = [d for d in da.dims if d not in order]
        if extra:
            raise InputError(f"{where}: variable {name!r} has unexpected dimensions {extra}")
        out[name] = da.transpose(*order).astype(np.float32)
    return xr.Dataset(out, attrs=ds.attrs)
