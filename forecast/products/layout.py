"""How a forecast's channels become a product's variables and dimensions, under two namings.

``forecast`` (the project's own, :mod:`forecast.schema`)
    dims ``(init_time, lead_time[, member][, level], latitude, longitude)``; one variable per channel,
    named as the channel (``z500``, ``msl``), with the channel's units, long name and CF standard name.
    A channel on a pressure level also carries the product's ``level`` axis (a CF coordinate in hPa,
    ``positive: down``), so CF tools find its vertical coordinate and ``ds.sel(level=500)`` works as on a
    WeatherBench2 product; it holds the channel's data at its own level (also in its ``level`` attribute)
    and NaN at the product's other levels, if any. Single-level channels (``msl``) have no level axis.
    :func:`channel_view` turns such a product back into one ``(init_time, lead_time[, member], latitude,
    longitude)`` array per channel, as products without the axis were written.
``weatherbench2``
    dims ``(time, prediction_timedelta[, number][, level], latitude, longitude)`` and WeatherBench2's
    variable names: channels of one pressure-level variable are stacked on a ``level`` dimension
    (``z500``, ``z850`` -> ``geopotential(level=[500, 850])``), single-level ones keep no level
    (``msl`` -> ``mean_sea_level_pressure``). WB2's evaluation then reads the product directly.
    Levels a variable lacks (``u`` at 850 when only ``z`` has it) are NaN.

Only xarray/numpy here: products never import torch or model code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import xarray as xr

from forecast.errors import InputError
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LEVEL, LON, MEMBER, VALID_TIME, VARIABLE_ALIASES, VARIABLES

__all__ = ["Naming", "OutputVariable", "ProductDims", "channel_view", "dims_for", "output_variables",
           "parse_channel"]

Naming = Literal["forecast", "weatherbench2"]


@dataclass(frozen=True)
class ProductDims:
    """Dimension names of one naming convention."""

    init: str
    lead: str
    member: str
    level: str = LEVEL
    valid: str = VALID_TIME
    lat: str = LAT
    lon: str = LON


_DIMS: dict[str, ProductDims] = {
    "forecast": ProductDims(INIT_TIME, LEAD_TIME, MEMBER),
    "weatherbench2": ProductDims("time", "prediction_timedelta", "number"),
}

# ERA5 short name -> WeatherBench2 variable name: the first alias naming it (dict order: the common one).
_WB2_NAMES: dict[str, str] = {}
for _alias, _short in VARIABLE_ALIASES.items():
    _WB2_NAMES.setdefault(_short, _alias)


def dims_for(naming: Naming) -> ProductDims:
    return _DIMS[naming]


@dataclass(frozen=True)
class OutputVariable:
    """A product variable: its name, the channel at each of its levels (-1: missing), its attributes."""

    name: str
    channels: tuple[int, ...]  # one per level (one entry when the variable has no level dimension)
    has_level: bool
    attrs: dict[str, Any]


def parse_channel(name: str, attrs: dict[str, Any]) -> tuple[str, float | None]:
    """``(ERA5 short name, pressure level in hPa or None)`` of a channel, from its attributes or its name."""
    if "short_name" in attrs:
        level = attrs.get("level")
        return str(attrs["short_name"]), None if level is None else float(level)
    if name in VARIABLES:
        return name, None
    m = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", name)
    if m and m.group(1) in VARIABLES and VARIABLES[m.group(1)].level_type == "pressure":
        return m.group(1), float(m.group(2))
    return name, None


def _cf_attrs(short: str, attrs: dict[str, Any], level: float | None) -> dict[str, Any]:
    """Units, long and standard names: the store's where it has them, else the ERA5 catalogue's."""
    info = VARIABLES.get(short)
    out: dict[str, Any] = {"units": attrs.get("units", info.units if info else "1")}
    long_name = attrs.get("long_name") or (info.long_name if info else short)
    out["long_name"] = long_name if level is None or "hPa" in long_name else f"{long_name} at {level:g} hPa"
    standard = attrs.get("standard_name") or (info.standard_name if info else None)
    if standard:
        out["standard_name"] = standard
    out["short_name"] = short
    return out


def _forecast_variables(channels: Sequence[str], channel_attrs: Sequence[dict[str, Any]],
                        parsed: Sequence[tuple[str, float | None]], levels: list[float]) -> list[OutputVariable]:
    """One variable per channel; a pressure-level one on the product's ``levels``, NaN (-1) but at its own."""
    out = []
    for i, (c, a, (short, level)) in enumerate(zip(channels, channel_attrs, parsed, strict=True)):
        attrs = _cf_attrs(short, a, level)
        if level is None:
            out.append(OutputVariable(c, (i,), False, attrs))
            continue
        attrs["level"] = level  # which of the level axis's entries holds the data, without reading it
        out.append(OutputVariable(c, tuple(i if lv == level else -1 for lv in levels), True, attrs))
    return out


def output_variables(channels: Sequence[str], channel_attrs: Sequence[dict[str, Any]],
                     naming: Naming) -> tuple[list[OutputVariable], list[float]]:
    """The product variables of ``channels`` and the level coordinate (hPa; empty without levels)."""
    parsed = [parse_channel(c, a) for c, a in zip(channels, channel_attrs, strict=True)]
    levels = sorted({lv for _, lv in parsed if lv is not None})  # ascending, as in WB2's ERA5
    if naming == "forecast":
        return _forecast_variables(channels, channel_attrs, parsed, levels), levels
    out, seen = [], set()
    for i, (short, level) in enumerate(parsed):
        if level is None:
            out.append(OutputVariable(_WB2_NAMES.get(short, channels[i]), (i,), False,
                                      _cf_attrs(short, channel_attrs[i], None)))
            continue
        if short in seen:
            continue
        seen.add(short)
        index = {lv: j for j, (s, lv) in enumerate(parsed) if s == short and lv is not None}
        attrs = _cf_attrs(short, {k: v for k, v in channel_attrs[i].items() if k != "long_name"}, None)
        out.append(OutputVariable(_WB2_NAMES.get(short, short), tuple(index.get(lv, -1) for lv in levels), True,
                                  attrs))
    names = [v.name for v in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"channels map to the same WeatherBench2 variable(s) {dupes}; use naming: forecast")
    return out, levels


def channel_view(ds: xr.Dataset) -> xr.Dataset:
    """A product in the ``forecast`` naming with one ``(init_time, lead_time[, member], latitude, longitude)``
    array per channel: a variable on the ``level`` axis is taken at its own level (its ``level`` attribute,
    or the axis's only entry) and the axis is dropped. Products written without the axis, and WeatherBench2
    products (their levels are stacked variables, not channels), pass unchanged."""
    if LEVEL not in ds.dims or dims_for("weatherbench2").lead in ds.dims:
        return ds
    squeezed = {}
    for name, var in ds.data_vars.items():
        if LEVEL not in var.dims:
            continue
        level = var.attrs.get("level", var[LEVEL].values[0] if var.sizes[LEVEL] == 1 else None)
        if level is None:
            raise InputError(f"product variable {name!r} has {var.sizes[LEVEL]} levels and no level attribute "
                             "saying which one holds its data")
        one = var.sel({LEVEL: float(level)}, drop=True).assign_attrs(level=float(level))
        one.encoding = _without_axis(var.encoding, var.dims.index(LEVEL))
        squeezed[name] = one
    return ds.assign(squeezed).drop_vars(LEVEL)


def _without_axis(encoding: dict[str, Any], axis: int) -> dict[str, Any]:
    """A variable's zarr encoding (chunks as stored) with one axis taken out, so that it fits the view's dims."""
    out = dict(encoding)
    for key in ("chunks", "shards"):
        if isinstance(out.get(key), tuple):
            out[key] = out[key][:axis] + out[key][axis + 1:]
    if isinstance(out.get("preferred_chunks"), dict):
        out["preferred_chunks"] = {k: v for k, v in out["preferred_chunks"].items() if k != LEVEL}
    return out
