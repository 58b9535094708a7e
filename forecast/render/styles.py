"""Per-variable colour maps, units and fixed colour ranges, so maps from different runs compare.

Ranges are keyed by channel (``z500``) and fall back to the ERA5 short name (``z``, ``msl``); a
config can override them (``render.ranges`` / ``render.error_ranges``). A variable the table does not
know gets a range from its data (noted in the colour-bar label), which then differs between runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from forecast.products.layout import parse_channel

__all__ = ["Style", "pretty_units", "style_for"]


def pretty_units(units: str) -> str:
    """``m**2 s**-2`` -> ``m$^{2}$ s$^{-2}$`` (matplotlib mathtext), for axis and colour-bar labels."""
    return re.sub(r"\*\*(-?\d+)", r"$^{\1}$", units)


@dataclass(frozen=True)
class Style:
    cmap: str
    vmin: float
    vmax: float
    error: float  # error maps span [-error, error]
    units: str
    label: str
    spread_cmap: str = "magma_r"
    fixed: bool = True  # False: range taken from the data


_DIVERGING = "RdBu_r"
# channel or short name -> (cmap, vmin, vmax, error range, label)
_TABLE: dict[str, tuple[str, float, float, float, str]] = {
    "z500": ("viridis", 47000.0, 59000.0, 1500.0, "geopotential at 500 hPa"),
    "z850": ("viridis", 11000.0, 16000.0, 1000.0, "geopotential at 850 hPa"),
    "z250": ("viridis", 93000.0, 108000.0, 2000.0, "geopotential at 250 hPa"),
    "z1000": ("viridis", -5000.0, 4000.0, 1000.0, "geopotential at 1000 hPa"),
    "t850": ("RdYlBu_r", 240.0, 305.0, 5.0, "temperature at 850 hPa"),
    "t500": ("RdYlBu_r", 225.0, 275.0, 5.0, "temperature at 500 hPa"),
    "msl": ("viridis", 96000.0, 105000.0, 1000.0, "mean sea level pressure"),
    "sp": ("viridis", 50000.0, 105000.0, 1000.0, "surface pressure"),
    "t2m": ("RdYlBu_r", 225.0, 315.0, 5.0, "2 m temperature"),
    "u": (_DIVERGING, -40.0, 40.0, 10.0, "eastward wind"),
    "v": (_DIVERGING, -30.0, 30.0, 10.0, "northward wind"),
    "u10": (_DIVERGING, -20.0, 20.0, 5.0, "10 m eastward wind"),
    "v10": (_DIVERGING, -20.0, 20.0, 5.0, "10 m northward wind"),
    "vo": (_DIVERGING, -2e-4, 2e-4, 1e-4, "relative vorticity"),
    "d": (_DIVERGING, -5e-5, 5e-5, 3e-5, "divergence"),
    "q": ("YlGnBu", 0.0, 0.015, 0.003, "specific humidity"),
    "tcwv": ("YlGnBu", 0.0, 70.0, 10.0, "total column water vapour"),
}


def style_for(variable: str, units: str, data: np.ndarray | None = None,
              ranges: dict[str, tuple[float, float]] | None = None,
              error_ranges: dict[str, float] | None = None) -> Style:
    """The style of ``variable`` (a channel name such as ``z500``), optionally overridden per channel."""
    short, level = parse_channel(variable, {})
    entry = _TABLE.get(variable) or _TABLE.get(short)
    if entry is not None:
        cmap, vmin, vmax, err, label = entry
        if entry is _TABLE.get(short) and level is not None and variable not in _TABLE:
            label = f"{label} at {level:g} hPa"
        style = Style(cmap, vmin, vmax, err, units, label)
    else:
        finite = np.asarray(data, dtype=np.float64)[np.isfinite(data)] if data is not None else np.array([0.0, 1.0])
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        style = Style("viridis", float(lo), float(hi), float(0.25 * (hi - lo)), units,
                      f"{variable} (range from the data)", fixed=False)
    if ranges and variable in ranges:
        style = replace(style, vmin=float(ranges[variable][0]), vmax=float(ranges[variable][1]), fixed=True)
    if error_ranges and variable in error_ranges:
        style = replace(style, error=float(error_ranges[variable]))
    return style
