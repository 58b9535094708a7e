"""Per-variable colour maps, display units, contour intervals and colour ranges.

Fields are drawn in the units forecasters read (:data:`DISPLAY`): geopotential in decametres (``z / g /
10``), pressure in hPa, temperature in degC, each with the contour interval of a synoptic chart (z500
every 8 dam, isobars every 4 hPa). Ranges stay in the data's units inside a :class:`Style` and are
converted when drawn. The table's ranges are fixed per variable, for panels that must compare across
runs or frames (the rollout animation); forecast maps take their range from the fields at each lead
(:func:`lead_style`), shared by the panels of one figure, unless the config fixes it (``render.ranges``
/ ``render.error_ranges``). Ranges are keyed by channel (``z500``) and fall back to the ERA5 short name
(``z``, ``msl``). A variable the table does not know gets a range from its data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from forecast.products.layout import parse_channel
from forecast.schema import GRAVITY, canonical_units

__all__ = ["DISPLAY", "Display", "Style", "lead_style", "pretty_units", "style_for", "text_units"]


def pretty_units(units: str) -> str:
    """``m**2 s**-2`` -> ``m$^{2}$ s$^{-2}$`` (matplotlib mathtext), for axis and colour-bar labels."""
    return re.sub(r"\*\*(-?\d+)", r"$^{\1}$", units)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def text_units(units: str) -> str:
    """``m**2 s**-2`` -> ``m² s⁻²`` (Unicode superscripts), for tables and web pages."""
    return re.sub(r"\*\*(-?\d+)", lambda m: m.group(1).translate(_SUPERSCRIPT), units)


@dataclass(frozen=True)
class Display:
    """How a field is shown: ``shown = value * scale + offset`` in ``units``, contours every ``contour``
    (display units; None: no contours). Differences (errors, spreads) are scaled without the offset."""

    units: str
    scale: float = 1.0
    offset: float = 0.0
    contour: float | None = None


# Display conventions per channel or ERA5 short name (the data's canonical units are the CDS ones).
DISPLAY: dict[str, Display] = {
    "z": Display("dam", 1.0 / (GRAVITY * 10.0), 0.0, None),
    "z500": Display("dam", 1.0 / (GRAVITY * 10.0), 0.0, 8.0),
    "z850": Display("dam", 1.0 / (GRAVITY * 10.0), 0.0, 4.0),
    "z250": Display("dam", 1.0 / (GRAVITY * 10.0), 0.0, 12.0),
    "msl": Display("hPa", 0.01, 0.0, 4.0),
    "sp": Display("hPa", 0.01, 0.0, None),
    "t": Display("degC", 1.0, -273.15, 4.0),
    "t2m": Display("degC", 1.0, -273.15, 4.0),
}


@dataclass(frozen=True)
class Style:
    cmap: str
    vmin: float  # colour range in the data's units
    vmax: float
    error: float  # error maps span [-error, error] (data units)
    units: str  # the data's units
    label: str
    spread_cmap: str = "magma_r"
    fixed: bool = True  # False: range taken from the data
    display: Display | None = None  # None: drawn in the data's units

    def shown(self, values: np.ndarray, difference: bool = False) -> np.ndarray:
        """``values`` (data units) in display units; ``difference``: an error or spread (no offset)."""
        d = self.display
        if d is None:
            return values
        return values * d.scale + (0.0 if difference else d.offset)

    @property
    def shown_units(self) -> str:
        return self.display.units if self.display else self.units


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


def _display(variable: str, short: str, units: str) -> Display | None:
    """The display convention of ``variable`` if its data are in the canonical units it assumes."""
    d = DISPLAY.get(variable) or DISPLAY.get(short)
    expected = {"dam": "m**2 s**-2", "hPa": "Pa", "degC": "K"}.get(d.units) if d else None
    return d if d and canonical_units(units) == expected else None


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
    style = replace(style, display=_display(variable, short, units))
    if ranges and variable in ranges:
        style = replace(style, vmin=float(ranges[variable][0]), vmax=float(ranges[variable][1]), fixed=True)
    if error_ranges and variable in error_ranges:
        style = replace(style, error=float(error_ranges[variable]))
    return style


def _nice(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``x`` (> 0)."""
    k = np.floor(np.log10(x))
    return float(min(m * 10**k for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * 10**k >= x * (1 - 1e-12)))


def lead_style(style: Style, fields: list[np.ndarray], errors: list[np.ndarray] | None = None,
               ranges: dict[str, tuple[float, float]] | None = None,
               error_ranges: dict[str, float] | None = None, variable: str = "") -> Style:
    """``style`` with colour ranges from the ``fields`` of one lead (1st-99th percentile of them all, widened to
    whole contour intervals in display units) and an error range from the 99th percentile of ``|errors|``
    (rounded up to a nice number), so that each lead's map shows its signal; all panels of one figure share
    them. Ranges the config fixes for ``variable`` are kept (and the style stays ``fixed``)."""
    values = np.concatenate([np.ravel(f) for f in fields] or [np.array([])]).astype(np.float64)
    values = values[np.isfinite(values)]
    out = style
    if values.size and not (ranges and variable in ranges):
        lo, hi = style.shown(np.percentile(values, [1, 99]))
        step = style.display.contour if style.display and style.display.contour else _nice((hi - lo) / 10 or 1.0)
        lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step
        hi = hi if hi > lo else lo + step
        d = style.display
        back = (lambda v: (v - d.offset) / d.scale) if d else (lambda v: v)
        out = replace(out, vmin=float(back(lo)), vmax=float(back(hi)), fixed=False)
    if errors and not (error_ranges and variable in error_ranges):
        e = np.abs(np.concatenate([np.ravel(x) for x in errors]).astype(np.float64))
        e = e[np.isfinite(e)]
        if e.size and np.percentile(e, 99) > 0:
            scale = style.display.scale if style.display else 1.0
            out = replace(out, error=_nice(float(np.percentile(e, 99)) * scale) / scale)
    return out
