"""Names, units and time conventions shared by every stage.

Dimension names follow ERA5 / WeatherBench2 usage: ``time`` (analysis valid time in a training
store), ``init_time``, ``lead_time`` and ``valid_time = init_time + lead_time`` in forecast products,
``member`` for ensembles, ``level`` for pressure levels in hPa, ``latitude`` (degrees north, north
first) and ``longitude`` (degrees east in [0, 360)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

TIME = "time"
INIT_TIME = "init_time"
LEAD_TIME = "lead_time"
VALID_TIME = "valid_time"
MEMBER = "member"
LEVEL = "level"
LAT = "latitude"
LON = "longitude"
CHANNEL = "channel"

GRAVITY = 9.80665  # m s-2, the WMO standard gravity ERA5 uses to convert z <-> height
EARTH_RADIUS = 6_371_000.0  # m


@dataclass(frozen=True)
class VariableInfo:
    """What an ERA5 short name means: CF standard name, long name and canonical units."""

    short_name: str
    long_name: str
    units: str
    standard_name: str | None = None
    level_type: str = "pressure"  # "pressure", "surface" or "invariant"
    # Values outside (low, high), in the canonical units, are not this quantity: a wrong units label (msl in
    # hPa labelled Pa), another variable, a fill value. Generous: every level, season and climate of ERA5.
    valid_range: tuple[float, float] | None = None


# Canonical units are those the Climate Data Store writes into its netCDF files.
VARIABLES: dict[str, VariableInfo] = {
    v.short_name: v
    for v in [
        VariableInfo("z", "Geopotential", "m**2 s**-2", "geopotential", valid_range=(-1e4, 6e5)),
        VariableInfo("t", "Temperature", "K", "air_temperature", valid_range=(150.0, 350.0)),
        VariableInfo("u", "U component of wind", "m s**-1", "eastward_wind", valid_range=(-200.0, 200.0)),
        VariableInfo("v", "V component of wind", "m s**-1", "northward_wind", valid_range=(-200.0, 200.0)),
        VariableInfo("q", "Specific humidity", "kg kg**-1", "specific_humidity", valid_range=(-1e-3, 0.05)),
        VariableInfo("vo", "Vorticity (relative)", "s**-1", "atmosphere_relative_vorticity",
                     valid_range=(-0.05, 0.05)),
        VariableInfo("d", "Divergence", "s**-1", "divergence_of_wind", valid_range=(-0.05, 0.05)),
        VariableInfo("w", "Vertical velocity", "Pa s**-1", "lagrangian_tendency_of_air_pressure",
                     valid_range=(-100.0, 100.0)),
        VariableInfo("r", "Relative humidity", "%", "relative_humidity", valid_range=(-10.0, 200.0)),
        VariableInfo("msl", "Mean sea level pressure", "Pa", "air_pressure_at_mean_sea_level", "surface",
                     (85_000.0, 110_000.0)),
        VariableInfo("sp", "Surface pressure", "Pa", "surface_air_pressure", "surface", (40_000.0, 110_000.0)),
        VariableInfo("t2m", "2 metre temperature", "K", "air_temperature", "surface", (150.0, 350.0)),
        VariableInfo("u10", "10 metre U wind component", "m s**-1", "eastward_wind", "surface", (-100.0, 100.0)),
        VariableInfo("v10", "10 metre V wind component", "m s**-1", "northward_wind", "surface", (-100.0, 100.0)),
        VariableInfo("tcwv", "Total column vertically-integrated water vapour", "kg m**-2",
                     "lwe_thickness_of_atmosphere_mass_content_of_water_vapor", "surface", (-1.0, 150.0)),
        VariableInfo("sst", "Sea surface temperature", "K", "sea_surface_temperature", "surface", (260.0, 320.0)),
        VariableInfo("siconc", "Sea ice area fraction", "1", "sea_ice_area_fraction", "surface", (-0.01, 1.01)),
        VariableInfo("lsm", "Land-sea mask", "1", "land_binary_mask", "invariant", (-0.01, 1.01)),
        VariableInfo("orography", "Height of the surface above sea level", "m", "surface_altitude",
                     "invariant", (-1000.0, 9000.0)),
    ]
}

# Names other conventions use for the same quantity -> ERA5 short name.
VARIABLE_ALIASES: dict[str, str] = {
    "geopotential": "z",
    "temperature": "t",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "specific_humidity": "q",
    "vorticity": "vo",
    "divergence": "d",
    "mean_sea_level_pressure": "msl",
    "surface_pressure": "sp",
    "2m_temperature": "t2m",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "land_sea_mask": "lsm",
    "geopotential_at_surface": "z",
    "sea_surface_temperature": "sst",
    "sea_ice_cover": "siconc",
    "ci": "siconc",
}

# Spellings of the same unit -> the canonical spelling above.
UNIT_ALIASES: dict[str, str] = {
    "m2 s-2": "m**2 s**-2",
    "m^2/s^2": "m**2 s**-2",
    "m**2/s**2": "m**2 s**-2",
    "m^2 s^-2": "m**2 s**-2",
    "m s-1": "m s**-1",
    "m/s": "m s**-1",
    "s-1": "s**-1",
    "1/s": "s**-1",
    "kg kg-1": "kg kg**-1",
    "kg/kg": "kg kg**-1",
    "pa": "Pa",
    "pa s-1": "Pa s**-1",
    "kg m-2": "kg m**-2",
    "(0 - 1)": "1",
    "0-1": "1",
    "fraction": "1",
    "dimensionless": "1",
    "~": "1",
    "": "1",
    "kelvin": "K",
    "metres": "m",
    "meters": "m",
    "percent": "%",
}

# Linear conversions (scale, offset) from a recognised unit to the canonical one: value * scale + offset.
UNIT_CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("hPa", "Pa"): (100.0, 0.0),
    ("degC", "K"): (1.0, 273.15),
    ("m", "m**2 s**-2"): (GRAVITY, 0.0),  # geopotential height -> geopotential
    ("m**2 s**-2", "m"): (1.0 / GRAVITY, 0.0),  # surface geopotential -> orography
    ("g kg**-1", "kg kg**-1"): (1e-3, 0.0),
}


def canonical_units(units: str | None) -> str:
    """Spell ``units`` the way the Climate Data Store does (``m s**-1``, ``m**2 s**-2``, ...)."""
    text = (units or "").strip()
    return UNIT_ALIASES.get(text, UNIT_ALIASES.get(text.lower(), text))


def channel_name(short_name: str, level: float | int | None) -> str:
    """Channel naming used in training stores: ``z500``, ``vo850``, ``msl``."""
    if level is None:
        return short_name
    return f"{short_name}{int(level) if float(level).is_integer() else level}"


SIX_HOURS = np.timedelta64(6, "h")


def parse_duration(text: str) -> np.timedelta64:
    """A duration as people write it (``6h``, ``5d``, ``120h``, ``1 day``) as ``timedelta64[ns]``.

    pandas 3 wants ``D`` for days; a lower-case ``d`` after a number is accepted here.
    """
    return pd.Timedelta(re.sub(r"(?<=\d)d(?![a-z])", "D", str(text).strip())).to_timedelta64().astype("timedelta64[ns]")


def fmt_time(t: np.datetime64 | pd.Timestamp) -> str:
    """A time as messages name it: ``2000-01-31T18:00``."""
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M")


def fmt_step(step: np.timedelta64 | pd.Timedelta) -> str:
    """A duration as people write time steps: ``6h``, ``30min``, ``1d``."""
    td = pd.Timedelta(step)
    for unit, size in (("d", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1)), ("min", pd.Timedelta(minutes=1))):
        if td >= size and td % size == pd.Timedelta(0):
            return f"{td // size}{unit}"
    return f"{td.total_seconds():g}s"
