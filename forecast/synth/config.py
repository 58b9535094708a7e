"""Configuration of the synthetic ERA5-like archive (``forecast synth``).

Defaults give a two-year 6-hourly archive on ERA5's 2.5 deg grid from a T31 shallow-water model,
generated in about a minute on two CPU cores. ``configs/synth/default.yaml`` spells them out.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from pydantic import ConfigDict, Field, model_validator

from forecast.config import StrictModel

__all__ = ["ForcingConfig", "ModelConfig", "OutputConfig", "SynthConfig"]

_DOCUMENTED = ConfigDict(**StrictModel.model_config, use_attribute_docstrings=True)


class ModelConfig(StrictModel):
    """Numerics and basic physics of the shallow-water model."""

    model_config = _DOCUMENTED

    truncation: int = Field(31, ge=4)
    """Triangular truncation T: spherical-harmonic degrees 0..T are kept."""
    nlat: int = Field(48, ge=4)
    """Gaussian latitudes of the model grid; >= (3T + 1) / 2 for alias-free quadratic terms."""
    nlon: int = Field(96, ge=8)
    """Longitudes of the model grid; >= 3T + 1 for alias-free quadratic terms."""
    dt_minutes: float = Field(45.0, gt=0)
    """Time step (min); must divide 6 h. Semi-implicit, so limited by advection only."""
    mean_depth: float = Field(3000.0, gt=0)
    """Mean layer depth H (m): gravity-wave speed sqrt(g H) = 171 m/s, Rossby radius ~1700 km at 45 deg."""
    orography_reference_depth: float = Field(10000.0, gt=0)
    """Depth of the real troposphere (m): mountains act in the model with height h_s * H / this,
    so they block the layer by the same fraction as they block the troposphere."""
    hyperdiffusion_hours: float = Field(6.0, gt=0)
    """E-folding time (h) of the del^(2p) hyperdiffusion at the truncation degree."""
    hyperdiffusion_order: int = Field(4, ge=1)
    """p of the del^(2p) hyperdiffusion (4: del^8, scale-selective)."""
    filter_nu: float = Field(0.1, ge=0, lt=1)
    """Strength of the Robert-Asselin-Williams time filter."""
    filter_alpha: float = Field(0.53, gt=0, le=1)
    """Williams' alpha (1: classical Robert-Asselin; 0.53 nearly conserves the physical mode's amplitude)."""

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        steps = 360.0 / self.dt_minutes
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"dt_minutes={self.dt_minutes} does not divide 6 hours")
        if self.truncation + 1 > self.nlon // 2 + 1 or self.truncation + 1 > self.nlat:
            raise ValueError(f"T{self.truncation} does not fit a {self.nlat} x {self.nlon} grid")
        return self


class ForcingConfig(StrictModel):
    """Thermal forcing, friction and stirring; heights in m, times in days, latitudes in degrees."""

    model_config = _DOCUMENTED

    relaxation_days: float = Field(4.0, gt=0)
    """Newtonian relaxation time of the height field towards its radiative equilibrium."""
    drag_ocean_days: float = Field(20.0, gt=0)
    """Rayleigh drag time over sea."""
    drag_land_days: float = Field(6.0, gt=0)
    """Rayleigh drag time over land (rougher surface, mountains)."""
    pole_drop: float = Field(650.0, ge=0)
    """Annual-mean drop of the equilibrium height from the thermal equator to the pole."""
    pole_drop_seasonal: float = Field(250.0, ge=0)
    """Seasonal amplitude of that drop: winter hemisphere pole_drop + this, summer pole_drop - this."""
    south_extra_drop: float = Field(100.0)
    """Extra drop in the Southern Hemisphere (its colder pole and stronger jet)."""
    jet_fraction: float = Field(0.5, ge=0, le=1)
    """Share of the drop concentrated in a mid-latitude front (the rest is spread as sin^2)."""
    jet_latitude: float = Field(38.0, gt=0, lt=90)
    """Annual-mean latitude of that front (the equilibrium jet)."""
    jet_shift: float = Field(8.0, ge=0)
    """Seasonal shift of the front: equatorward in winter, poleward in summer."""
    jet_width: float = Field(8.0, gt=0)
    """Half-width of the front (tanh scale)."""
    thermal_equator_factor: float = Field(0.5, ge=0, le=1)
    """Latitude of the equilibrium height maximum as a fraction of the solar declination."""
    seasonal_lag_days: float = Field(30.0, ge=0)
    """Thermal lag of the seasons behind the sun."""
    land_contrast: float = Field(120.0)
    """Land-sea equilibrium height contrast at 45 deg: land higher (warmer) in summer, lower in winter."""
    stirring_amplitude: float = Field(1.8e-10, ge=0)
    """RMS vorticity tendency (s-2) of the stochastic stirring standing in for baroclinic eddy growth,
    which a one-layer model cannot produce; 0 switches it off (eddies then come from barotropic
    instability and orography only)."""
    stirring_days: float = Field(2.0, gt=0)
    """Decorrelation time of the stirring (red noise)."""
    stirring_degrees: tuple[int, int] = (8, 16)
    """Band of total wavenumbers that are stirred (inclusive)."""
    stirring_speed: float = 10.0
    """Eastward drift of the stirring pattern (m s-1 at stirring_latitude), the steering of
    synoptic eddies by the mid-tropospheric flow."""
    stirring_latitude: float = Field(42.0, gt=0, lt=90)
    """Annual-mean centre of the two stirred storm-track belts; they follow the front by half its shift."""
    stirring_width: float = Field(12.0, gt=0)
    """Gaussian half-width of the belts."""
    stirring_seasonal: float = Field(0.15, ge=0, le=1)
    """Relative seasonal modulation of the stirring (stronger in the winter hemisphere)."""
    stirring_ocean_weight: float = Field(0.5, ge=0, le=1)
    """Storm tracks favour the oceans: along each latitude circle the stirring is in the ratio
    (1 + this) : (1 - this) between sea and land, keeping the circle's mean."""


class OutputConfig(StrictModel):
    """How model fields become ERA5 variables on the output grid."""

    model_config = _DOCUMENTED

    nlat: int = Field(73, ge=3)
    """Latitudes of the equiangular output grid, poles included (73: 2.5 deg like the real files)."""
    nlon: int = Field(144, ge=8)
    """Longitudes of the output grid, from 0 east."""
    pressure_level: float = 500.0
    """Pressure level (hPa) the layer's fields are labelled with."""
    mean_height: float = Field(5650.0, gt=0)
    """Global-mean geopotential height (m) of that level; z = g * mean_height + phi."""
    msl_reference: float = 101325.0
    """Global-mean mean-sea-level pressure (Pa)."""
    msl_eddy_density: float = Field(1.0, gt=0)
    """Pa per m2 s-2 of the zonally varying part of the dynamical height anomaly phi - phi_eq: lows
    where the layer sits below its thermal equilibrium, as a surface density of ~1 kg m-3 would give."""
    msl_zonal_density: float = Field(0.4, ge=0)
    """Same for the zonal-mean part, smaller: the layer's zonal-mean departure from equilibrium is
    mostly thermal (thickness), not surface pressure."""
    packing_bits: int | None = Field(16, ge=8, le=32)
    """Quantise each field and time as GRIB simple packing with this many bits (ERA5 uses 16),
    which also lets zlib compress; None writes full float32."""
    complevel: int = Field(4, ge=0, le=9)
    """zlib level of the netCDF variables (the CDS files use 4, with shuffle)."""


class SynthConfig(StrictModel):
    """The whole synthetic archive: what to simulate, for how long, and what to write."""

    model_config = _DOCUMENTED

    seed: int = 0
    """Seed of the initial perturbation and the stirring: the same seed gives the same archive."""
    start: datetime = datetime(2000, 1, 1, 0)
    """First valid time of the simulation after its spin-up (UTC, on a 6-hourly boundary): the first
    written unless write_start says otherwise."""
    years: int = Field(2, ge=1)
    """Length of the simulation from start, in years (ignored when months is set)."""
    months: int | None = Field(None, ge=1)
    """Length of the simulation from start in calendar months, overriding years (short archives for tests)."""
    write_start: datetime | None = None
    """First valid time written (None: start). The model still runs from start (after its spin-up), so
    the files of a later window continue the trajectory of an archive written from start with the same
    seed and forcing: a continuation run writes only the years after those already written."""
    spin_up_days: float = Field(60.0, ge=0)
    """Simulated before start and not written, so the archive begins in a statistically steady regime."""
    model: ModelConfig = ModelConfig()
    forcing: ForcingConfig = ForcingConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        s = self.start
        if s.minute or s.second or s.microsecond or s.hour % 6 or s.tzinfo is not None:
            raise ValueError(f"start {s} must be a naive UTC time at 00, 06, 12 or 18")
        if self.output.nlon // 2 + 1 < self.model.truncation + 1:
            raise ValueError("the output grid is too coarse for the model truncation")
        w = self.write_start
        if w is not None:
            if w.minute or w.second or w.microsecond or w.hour % 6 or w.tzinfo is not None:
                raise ValueError(f"write_start {w} must be a naive UTC time at 00, 06, 12 or 18")
            end = pd.Timestamp(s) + pd.DateOffset(months=self.n_months)
            if not s <= w < end:
                raise ValueError(f"write_start {w} must lie in the simulated period [{s}, {end})")
        return self

    @property
    def n_months(self) -> int:
        """Calendar months covered, counted from the month of ``start``."""
        return self.months if self.months is not None else 12 * self.years
