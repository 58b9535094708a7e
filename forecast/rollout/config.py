"""Typed configuration of one forecast run (``forecast predict <config.yaml | package.pt>``).

A YAML file reads, for example (``configs/predict/ensemble.yaml``)::

    packages: [runs/sfno_synth/best.pt]      # several: a multi-model ensemble, members split among them
    store: data/stores/era5-synth.zarr        # initial conditions (a store ingested with `stats: null` will do)
    init: {start: 2001-01-01T00:00, end: 2001-01-03T00:00, every: 24h}
    lead: 5d                                  # or a number of model steps
    ensemble:
      members: 16
      seed: 2024
      perturbation: {type: spherical_grf, amplitude: 0.05, length_scale_km: 800, smoothness: 1.5}
    output: {path: runs/sfno_synth/forecasts/ensemble.zarr, naming: forecast}

A user's own ERA5 file is first turned into a store on the model grid by the ingestion code: either
``forecast ingest`` with an ingest config whose ``grid`` is the model's and ``stats: null`` (the store
then only holds initial conditions), or ``ingest: that_config.yaml`` here, which runs it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, SerializeAsAny, field_validator, model_validator

from forecast.config import ConfigError, StrictModel, Timestamp, load_config, validate_config
from forecast.rollout.perturbations import PerturbationConfig, perturbation_from_dict
from forecast.schema import parse_duration

__all__ = [
    "EnsembleConfig",
    "GuardConfig",
    "InitConfig",
    "LaggedConfig",
    "PredictConfig",
    "ProductConfig",
    "StabilityConfig",
    "build_predict_config",
]


def _duration(value: str) -> pd.Timedelta:
    try:
        out = pd.Timedelta(parse_duration(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a duration such as '6h' or '5d'") from exc
    if out <= pd.Timedelta(0):
        raise ValueError(f"duration {value!r} must be positive")
    return out


class InitConfig(StrictModel):
    """Initial times: an explicit list, or ``start`` .. ``end`` (inclusive) every ``every``."""

    times: list[Timestamp] = Field(default_factory=list)
    start: Timestamp | None = None
    end: Timestamp | None = None
    every: str = "24h"

    @field_validator("every")
    @classmethod
    def _valid_every(cls, value: str) -> str:
        _duration(value)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> InitConfig:
        if bool(self.times) == (self.start is not None):
            raise ValueError("give initial times either as `times: [...]` or as `start` (with `end`, `every`)")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"init.end {self.end} is before init.start {self.start}")
        return self

    def resolve(self) -> np.ndarray:
        """The initial times, sorted and unique, ``(N,)`` datetime64[ns]."""
        if self.times:
            times = pd.DatetimeIndex(self.times)
        else:
            times = pd.date_range(self.start, self.end or self.start, freq=_duration(self.every))
        return np.unique(times.values.astype("datetime64[ns]"))


class LaggedConfig(StrictModel):
    """Lagged ensemble: members start from the analyses at the init and ``lags - 1`` earlier times
    ``every`` steps apart, and are rolled forward to the common initial time; member ``m`` has lag
    ``(m % lags) * every`` steps."""

    lags: int = Field(2, ge=1)
    every: int = Field(1, ge=1)


class EnsembleConfig(StrictModel):
    """Members run as one batch per model. ``control`` leaves member 0 unperturbed."""

    members: int = Field(ge=1)
    seed: int = 0
    control: bool = False
    perturbation: SerializeAsAny[PerturbationConfig] | None = None
    lagged: LaggedConfig | None = None

    @field_validator("perturbation", mode="before")
    @classmethod
    def _registered(cls, value: Any) -> Any:
        return None if value is None else perturbation_from_dict(value)


class GuardConfig(StrictModel):
    """Stop a rollout whose state is no longer finite or runs away."""

    # |normalised state| above this (in std units) counts as a runaway; None checks only NaN/Inf.
    max_abs_normalised: float | None = Field(50.0, gt=0)


class StabilityConfig(StrictModel):
    """Stability report: global mean/std per channel at every lead, power spectra vs the data's."""

    enabled: bool = True
    # Also record the power spectrum every this many steps (always at the first and the last lead).
    spectrum_every: int | None = Field(None, ge=1)
    # Store times (spread evenly) that give the data's reference mean, std and spectrum.
    data_samples: int = Field(32, ge=1)


class ProductConfig(StrictModel):
    """Where and how the forecast product is written."""

    # null: <folder of the first package>/forecasts/<name>-<first init>-<lead>.zarr
    path: str | None = None
    # "forecast": init_time/lead_time/member and one variable per channel (z500, msl, ...);
    # "weatherbench2": time/prediction_timedelta/number, WB2 variable names with a `level` dimension.
    naming: Literal["forecast", "weatherbench2"] = "forecast"
    netcdf: bool = False  # also export a netCDF copy beside the zarr store (same name, .nc)
    overwrite: bool = False
    include_initial: bool = True  # lead 0 holds the (perturbed) initial state
    # Leads per chunk: null picks about 1 MiB per chunk (one map and one time series both cheap to read);
    # 1 makes one map the cheapest read, larger makes time series cheaper.
    lead_chunk: int | None = Field(None, ge=1)
    # Write every k-th model step only (e.g. 4: daily snapshots of a 6-hourly model, for long climate runs);
    # the rollout still steps every model step. lead_time then holds the written leads (multiples of k steps).
    lead_every: int = Field(1, ge=1)
    zarr_format: Literal[2, 3] = 3

    @property
    def netcdf_path(self) -> Path:
        p = Path(str(self.path))
        return p.with_suffix(".nc") if p.suffix == ".zarr" else p.with_name(p.name + ".nc")


class PredictConfig(StrictModel):
    """One forecast run end to end: packages + initial conditions -> product store."""

    name: str = "forecast"
    packages: list[str] = Field(min_length=1)
    store: str | None = None
    ingest: str | None = None  # an ingest config (YAML) run first; its output is the store
    init: InitConfig
    lead: int | str
    ensemble: EnsembleConfig | None = None
    output: ProductConfig = Field(default_factory=ProductConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    stability: StabilityConfig = Field(default_factory=StabilityConfig)
    device: str = "cpu"  # cpu, cuda, cuda:1, or auto (CUDA when available)
    # Rows (initial times x members) per forward pass; initial times are grouped to fit, members never split.
    max_batch: int = Field(64, ge=1)

    @field_validator("lead")
    @classmethod
    def _valid_lead(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not value.strip().isdigit():
            _duration(value)
        elif int(value) < 1:
            raise ValueError(f"lead {value} must be at least one step")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PredictConfig:
        if (self.store is None) == (self.ingest is None):
            raise ValueError("give exactly one of `store` (an ingested store) or `ingest` (an ingest config to run)")
        if len(self.packages) > 1:
            if self.ensemble is None or self.ensemble.members < len(self.packages):
                raise ValueError(f"{len(self.packages)} packages make a multi-model ensemble: set ensemble.members "
                                 f">= {len(self.packages)}")
        if self.output.path is None:
            first = pd.Timestamp(self.init.resolve()[0])
            self.output.path = str(Path(self.packages[0]).parent / "forecasts"
                                   / f"{self.name}-{first:%Y%m%dT%H%M}-{str(self.lead).strip()}.zarr")
        return self

    def lead_steps(self, time_step: str) -> int:
        """The lead as a number of model steps of ``time_step``."""
        if isinstance(self.lead, int) or str(self.lead).strip().isdigit():
            return int(self.lead)
        lead, step = _duration(str(self.lead)), pd.Timedelta(time_step)
        n = lead / step
        if n != int(n):
            raise ConfigError(f"lead {self.lead} is not a whole number of the model's {time_step} steps")
        return int(n)

    @property
    def members(self) -> int:
        return self.ensemble.members if self.ensemble else 1


def build_predict_config(source: str | Path, overrides: list[str] | None = None) -> PredictConfig:
    """The config of a run from a YAML config or from a model package (``*.pt``) plus ``key=value`` overrides.

    From a package, the tree starts as ``{packages: [source]}`` and the overrides (``store=...``,
    ``init.times=[...]``, ``lead=5d``, ``output.path=...``) supply the rest.
    """
    source = Path(source)
    if source.suffix in (".yaml", ".yml"):
        return load_config(PredictConfig, source, overrides)
    tree = {"name": source.parent.name or "forecast", "packages": [str(source)]}
    return validate_config(PredictConfig, tree, overrides, source=f"predict config from {source}")
