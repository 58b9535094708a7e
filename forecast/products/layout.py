"""How a forecast's channels become a product's variables and dimensions, under two namings.

``forecast`` (the project's own, :mod:`forecast.schema`)
    dims ``(init_time, lead_time[, member], latitude, longitude)``; one variable per channel,
    named as the channel (``z500``, ``msl``), with the channel's units, long name and CF standard name.
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

from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LEVEL, LON, MEMBER, VALID_TIME, VARIABLE_ALIASES, VARIABLES

__all__ = ["Naming", "OutputVariable", "ProductDims", "dims_for", "output_variables", "parse_channel"]

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


def output_variables(channels: Sequence[str], channel_attrs: Sequence[dict[str, Any]],
                     naming: Naming) -> tuple[list[OutputVariable], list[float]]:
    """The product variables of ``channels`` and the level coordinate (hPa; empty without levels)."""
    parsed = [parse_channel(c, a) for c, a in zip(channels, channel_attrs, strict=True)]
    if naming == "forecast":
        out = []
        for i, (c, a, (short, level)) in enumerate(zip(channels, channel_attrs, parsed, strict=True)):
            attrs = _cf_attrs(short, a, level)
            if level is not None:
                attrs["level"] = level
            out.append(OutputVariable(c, (i,), False, attrs))
        return out, []
    levels = sorted({lv for _, lv in parsed if lv is not None})  # ascending, as in WB2's ERA5
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
