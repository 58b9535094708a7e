"""Typed configuration of one ingestion run (``forecast ingest <config.yaml>``)."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from forecast.compute import Scheduler
from forecast.config import StrictModel, Timestamp
from forecast.grids import Grid, GridType
from forecast.schema import channel_name

__all__ = [
    "ChannelConfig",
    "GridConfig",
    "IngestConfig",
    "OutputConfig",
    "SourceConfig",
    "StaticConfig",
    "StatsConfig",
    "TimeConfig",
]


class SourceConfig(StrictModel):
    """Where raw fields come from. ``paths`` are glob patterns or URLs of zarr stores (``gs://``, ``s3://``,
    ``https://``, ``memory://``, globbing where the filesystem lists); the format is guessed from the name."""

    paths: list[str] = Field(min_length=1)
    # fsspec options for URLs (e.g. {anon: false, profile: x} for s3); access is anonymous by default.
    storage_options: dict[str, Any] = Field(default_factory=dict)
    format: Literal["auto", "netcdf", "grib", "zarr"] = "auto"
    # Ensemble member (`number`) to take from sources that hold several (ERA5 EDA, GRIB ensembles).
    member: int | None = None
    # Source variable name -> ERA5 short name, for names the built-in aliases do not know.
    rename: dict[str, str] = Field(default_factory=dict)
    # Source dimension (and its coordinate) -> the name ingestion knows, e.g. {time_index: time}.
    rename_dims: dict[str, str] = Field(default_factory=dict)
    # CF units of a time axis stored as plain numbers, e.g. "hours since 1940-01-01" (the file lacks them).
    time_units: str | None = None


class ChannelConfig(StrictModel):
    """One prognostic channel: an ERA5 variable, at a pressure level when it has levels."""

    variable: str
    level: float | None = None
    name: str | None = None
    # Plausible values in the variable's canonical units; None: the variable's own (forecast.schema), "any": no
    # check. The first slab of values outside it is refused (a wrong units label gives a wrong store).
    valid_range: tuple[float, float] | Literal["any"] | None = None

    @property
    def channel(self) -> str:
        return self.name or channel_name(self.variable, self.level)


class StaticConfig(StrictModel):
    """A time-invariant field (land-sea mask, surface geopotential) stored beside the channels."""

    name: str
    variable: str
    source: SourceConfig
    # Convert to these units if they differ from the variable's canonical ones (e.g. orography in m).
    units: str | None = None
    valid_range: tuple[float, float] | Literal["any"] | None = None  # as for a channel


class GridConfig(StrictModel):
    """The model grid fields are regridded to."""

    type: GridType = "equiangular"
    nlat: int = Field(ge=2)
    nlon: int = Field(ge=4)

    def build(self) -> Grid:
        return Grid(self.type, self.nlat, self.nlon)


class TimeConfig(StrictModel):
    """Time window and step of the store; ``None`` bounds take what the sources hold.

    Sources must cover ``start`` .. ``end`` (missing steps at either end are an error like a gap) unless
    ``open_ended``. Sources finer than ``step`` are subsampled at the step's synoptic times (00/06/12/18 UTC
    for 6 h). Irregular sources (e.g. 7-8 h apart) are brought onto the step's grid with ``resample``:
    ``nearest`` (the closest source time) or ``linear`` (in time, between the two around it); source times
    more than ``max_gap`` apart are not bridged.
    """

    start: Timestamp | None = None
    end: Timestamp | None = None
    step: str = "6h"
    open_ended: bool = False
    resample: Literal["none", "nearest", "linear"] = "none"
    max_gap: str = "12h"

    @field_validator("step", "max_gap")
    @classmethod
    def _valid_step(cls, value: str) -> str:
        try:
            step = pd.Timedelta(value)
        except ValueError as exc:
            raise ValueError(f"time step {value!r} is not a duration such as '6h'") from exc
        if step <= pd.Timedelta(0):
            raise ValueError(f"time step {value!r} must be positive")
        return value

    @property
    def timedelta(self) -> pd.Timedelta:
        return pd.Timedelta(self.step)


class StatsConfig(StrictModel):
    """Period over which normalisation statistics are computed (the training period only)."""

    start: Timestamp | None = None
    end: Timestamp | None = None


class OutputConfig(StrictModel):
    path: str
    # Times per zarr chunk; each chunk holds the whole grid, so a training sample is one read per channel.
    time_chunk: int = Field(default=4, ge=1)


class IngestConfig(StrictModel):
    """One ingestion run end to end: sources -> channels on a model grid -> zarr store with statistics."""

    name: str = "store"
    sources: list[SourceConfig] = Field(min_length=1)
    channels: list[ChannelConfig] = Field(min_length=1)
    static: list[StaticConfig] = Field(default_factory=list)
    grid: GridConfig
    regrid: Literal["conservative"] = "conservative"
    time: TimeConfig = Field(default_factory=TimeConfig)
    # None stores no statistics (e.g. a store that only holds initial conditions for a forecast).
    stats: StatsConfig | None = Field(default_factory=StatsConfig)
    output: OutputConfig
    # threads, synchronous, distributed (a LocalCluster) or a running cluster's address (tcp://host:8786).
    scheduler: Scheduler = "threads"
    workers: int = Field(default=2, ge=1)
    # Credit line carried into the store's attributes (e.g. the ERA5 licence text).
    attribution: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> IngestConfig:
        names = [c.channel for c in self.channels] + [s.name for s in self.static]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel names must be unique; repeated: {', '.join(dupes)}")
        return self
