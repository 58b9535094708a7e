"""Typed configuration of the evaluation stage (``forecast climatology | evaluate | render | report``).

One YAML file (``configs/evaluate/*.yaml``) drives the whole stage: which variables, leads and
regions are scored, how the climatology is built, how the work runs (dask scheduler, chunk size)
and how the figures look.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from forecast.compute import Scheduler
from forecast.config import StrictModel, Timestamp
from forecast.schema import parse_duration

__all__ = [
    "AnimationConfig",
    "BoxRegion",
    "ClimateConfig",
    "ClimateRenderConfig",
    "ClimatologyConfig",
    "EvaluateConfig",
    "InteractiveConfig",
    "METRICS",
    "Metric",
    "RenderConfig",
    "StabilityCriteria",
    "StatisticsConfig",
]

Metric = Literal["rmse", "bias", "mae", "acc", "crps", "spread", "spread_skill", "spread_skill_corrected",
                 "rank_histogram", "spectrum"]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
Baseline = Literal["persistence", "climatology", "persistence_ensemble", "climatology_ensemble"]
# Baselines with members: scored only for ensemble forecasts, whose CRPS they are the references of.
ENSEMBLE_BASELINES: tuple[str, ...] = ("persistence_ensemble", "climatology_ensemble")
Projection = Literal["robinson", "north_polar", "south_polar", "orthographic", "plate_carree"]


def _duration(value: str) -> str:
    try:
        td = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"lead time {value!r} is not a duration such as 6h, 1d, 120h") from exc
    if td < np.timedelta64(0, "ns"):
        raise ValueError(f"lead time {value!r} is negative")
    return value


class BoxRegion(StrictModel):
    """A latitude-longitude box: cell centres with ``south <= lat <= north`` and longitude in ``[west, east]``.

    Longitudes in degrees east in either convention (-180..180 or 0..360); ``west > east`` crosses the
    0/360 meridian (``lon: [-10, 40]`` is Europe, as is ``[350, 40]``).
    """

    name: str
    lat: tuple[float, float]
    lon: tuple[float, float] = (0.0, 360.0)

    @field_validator("lat")
    @classmethod
    def _lat_order(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not -90 <= v[0] <= v[1] <= 90:
            raise ValueError(f"lat {list(v)} must be [south, north] within [-90, 90]")
        return v


class ClimatologyConfig(StrictModel):
    """The day-of-year x hour climatology (ACC anomalies and the climatology baseline).

    ``path``: a zarr written by ``forecast climatology``; ``None`` builds it in memory from the truth
    store each run. ``start``/``end`` default to the store's statistics (training) period. Each
    day-of-year is the mean over the days within ``window_days`` (centred, wrapping over the year end).
    """

    path: str | None = None
    start: Timestamp | None = None
    end: Timestamp | None = None
    window_days: int = Field(default=61, ge=1)

    @field_validator("window_days")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"window_days {v} must be odd (a window centred on the day)")
        return v


class AnimationConfig(StrictModel):
    variable: str | None = None  # None: the first scored variable
    projection: Projection = "robinson"
    fps: float = Field(default=4.0, gt=0)
    max_frames: int = Field(default=40, ge=1)


class InteractiveConfig(StrictModel):
    """Frames of the report's interactive view: one small map per variable, lead (every ``lead_every``) and
    member (the ensemble mean or forecast, the truth, and the first ``members`` members of an ensemble)."""

    enabled: bool = True
    projection: Projection = "plate_carree"  # a third of a Robinson map's drawing time
    lead_every: str = "24h"
    members: int = Field(default=3, ge=0)
    dpi: int = Field(default=80, ge=30)

    @field_validator("lead_every")
    @classmethod
    def _every(cls, v: str) -> str:
        return _duration(v)


class RenderConfig(StrictModel):
    """How ``forecast render`` draws: maps at ``map_leads`` of initial time number ``init_index``."""

    baseline: Baseline = "persistence"  # the scorecard's reference
    variables: list[str] | None = None  # None: every scored variable
    map_leads: list[str] = Field(default_factory=lambda: ["1d", "5d"])
    init_index: int = 0
    projections: list[Projection] = Field(default_factory=lambda: ["robinson", "north_polar"])
    # Fixed colour ranges per variable (channel name, e.g. z500: [47000, 59000]) and error ranges,
    # overriding the built-in ones, so maps of different runs compare.
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    error_ranges: dict[str, float] = Field(default_factory=dict)
    spectrum_leads: list[str] = Field(default_factory=lambda: ["1d", "5d"])
    # Maps of RMSE, bias and CRPS at every grid point over all initial times, at these leads.
    skill_map_leads: list[str] = Field(default_factory=lambda: ["5d"])
    animation: AnimationConfig = Field(default_factory=AnimationConfig)
    interactive: InteractiveConfig = Field(default_factory=InteractiveConfig)
    dpi: int = Field(default=100, ge=30)

    @field_validator("map_leads", "spectrum_leads", "skill_map_leads")
    @classmethod
    def _durations(cls, v: list[str]) -> list[str]:
        return [_duration(x) for x in v]


class StatisticsConfig(StrictModel):
    """Sampling uncertainty of the scores (:mod:`forecast.evaluate.bootstrap`): a circular block bootstrap over
    initial times with Wilks's block length, percentile intervals holding ``confidence`` of ``n_resamples``
    resamples, paired p-values of forecast minus each baseline. Scores resting on fewer than
    ``min_init_times`` initial times are flagged (CLI output, report)."""

    confidence: float = Field(default=0.9, gt=0, lt=1)
    n_resamples: int = Field(default=1000, ge=0)  # 0: no intervals
    seed: int = Field(default=0, ge=0)
    min_init_times: int = Field(default=20, ge=1)


class EvaluateConfig(StrictModel):
    """What ``forecast evaluate`` scores and how (see ``configs/evaluate/synthetic.yaml``)."""

    name: str = "evaluation"
    truth: str | None = None  # the store holding the truth (``--truth`` overrides)
    # Where scores, figures and the report go: {forecast} is the product's name, {name} this config's.
    output_dir: str = "runs/evaluation/{forecast}"
    variables: list[str] | None = None  # None: every variable in both the product and the truth
    lead_times: list[str] | None = None  # durations (6h, 1d); None: every lead after 0
    metrics: list[Metric] = Field(default_factory=lambda: list(METRICS))
    baselines: list[Baseline] = Field(default_factory=lambda: ["persistence", "climatology"])
    # Named regions (global, tropics, nh_extratropics, sh_extratropics, land, sea) and boxes.
    regions: list[str | BoxRegion] = Field(
        default_factory=lambda: ["global", "tropics", "nh_extratropics", "sh_extratropics", "land", "sea"])
    land_threshold: float = Field(default=0.5, gt=0, le=1)  # land: land-sea mask >= this
    climatology: ClimatologyConfig = Field(default_factory=ClimatologyConfig)
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)
    # Members of the persistence and climatology ensembles (None: as many as the forecast has) and the
    # day-of-year window (days, centred) the climatology ensemble's members come from.
    baseline_members: int | None = Field(default=None, ge=2)
    ensemble_window_days: int = Field(default=31, ge=1)
    spectrum_lat_band: tuple[float, float] = (-60.0, 60.0)  # latitudes whose zonal spectra are averaged
    allow_incomplete: bool = False  # score the leads a diverged (complete: false) product did write
    chunk_mb: float = Field(default=64.0, gt=0)  # largest dask chunk of one variable (MB)
    # What one dask worker (a thread, or a cluster's process) may hold while it scores (MB): it sizes the chunks
    # and blocks of initial times. None: on a cluster, what each worker's memory limit leaves; else 128.
    memory_mb: float | None = Field(default=None, gt=0)
    scheduler: Scheduler = "threads"
    workers: int = Field(default=2, ge=1)
    render: RenderConfig = Field(default_factory=RenderConfig)

    @field_validator("lead_times")
    @classmethod
    def _durations(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [_duration(x) for x in v]

    @model_validator(mode="after")
    def _unique_regions(self) -> EvaluateConfig:
        names = [r if isinstance(r, str) else r.name for r in self.regions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region names {dupes} appear more than once")
        if not names:
            raise ValueError("at least one region is needed (e.g. global)")
        from forecast.evaluate.regions import NAMED_REGIONS

        unknown = [r for r in self.regions if isinstance(r, str) and r not in NAMED_REGIONS]
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}: use {list(NAMED_REGIONS)} or a box "
                             "{name: ..., lat: [south, north], lon: [west, east]}")
        return self

    def run_dir(self, forecast: str) -> str:
        return self.output_dir.format(name=self.name, forecast=forecast)


class StabilityCriteria(StrictModel):
    """Issue 9's stability verdict per channel: every ``window_days`` mean of the global mean and of the global
    std stays inside the range the truth's windows span, widened on each side by ``range_margin`` times its
    width, and the time-mean power spectrum is within ``spectrum_factor`` of the truth's at every degree from
    ``spectrum_min_degree`` (degree 0 is the global mean, judged by the first test). The margin is at least
    ``range_floor`` times the truth's mean global std: the global mean of a conserved channel (the embedded
    data's z500 and msl) varies only by float32 rounding, ~1e-7 of its value, and two truth runs differ by
    more than 10% of that width."""

    range_margin: float = Field(default=0.1, ge=0)
    range_floor: float = Field(default=1e-4, ge=0)
    spectrum_factor: float = Field(default=2.0, gt=1)
    spectrum_min_degree: int = Field(default=1, ge=0)


class ClimateRenderConfig(StrictModel):
    """Figures of ``forecast climate``: Robinson maps with the fixed per-variable colours of ``forecast render``."""

    variables: list[str] | None = None  # None: every variable evaluated
    projection: Projection = "robinson"
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)  # time-mean maps, per channel
    bias_ranges: dict[str, float] = Field(default_factory=dict)  # bias maps span [-r, r], per channel
    dpi: int = Field(default=100, ge=30)


class ClimateConfig(StrictModel):
    """What ``forecast climate`` computes and how (see ``configs/evaluate/climate.yaml``)."""

    name: str = "climate"
    truth: str | None = None  # the truth store (``--truth`` overrides)
    reference: str | None = None  # a second truth-like run: its distance to the truth is the noise floor
    output_dir: str = "runs/climate/{forecast}"  # {forecast}: the run's name, {name}: this config's
    variables: list[str] | None = None  # None: every channel in both the run and the truth
    allow_incomplete: bool = False  # use the leads a diverged (complete: false) product did write
    block_steps: int = Field(default=120, ge=1)  # times read and accumulated at once (memory: one block)
    window_days: float = Field(default=30.0, gt=0)  # drift: means over consecutive windows of this length
    spectrum_every: int = Field(default=1, ge=1)  # power spectra of every this many times
    histogram_bins: int = Field(default=400, ge=10)
    histogram_sigmas: float = Field(default=8.0, gt=0)  # bins span the truth's first block's mean +- this x std
    percentiles: tuple[float, float] = (1.0, 99.0)
    trend_alpha: float = Field(default=0.05, gt=0, lt=1)  # significance level of the drift's trend
    stability: StabilityCriteria = Field(default_factory=StabilityCriteria)
    render: ClimateRenderConfig = Field(default_factory=ClimateRenderConfig)

    @field_validator("percentiles")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1] < 100:
            raise ValueError(f"percentiles {list(v)} must be [low, high] within (0, 100)")
        return v

    def run_dir(self, forecast: str) -> str:
        return self.output_dir.format(name=self.name, forecast=forecast)
