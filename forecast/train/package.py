"""The trained-model package: one versioned, self-describing file that ``predict`` needs and nothing else.

It holds the network weights and its config, the normalisation statistics, channel names and
units, static fields, the grid (type, nlat, nlon, coordinates, spectral truncation) and the time
step, under a format name and version. Broken checkpoints and mismatched statistics are the most
common failure of ML-weather tools; here weights and everything they depend on travel together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter

from forecast import __version__
from forecast.data.features import FORCING_NAMES, POSITION_NAMES, static_inputs
from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.models import build_model
from forecast.models.config import ModelConfig
from forecast.models.forecaster import Forecaster
from forecast.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelPackage", "load_package", "save_package"]

FORMAT = "forecast-model"
FORMAT_VERSION = 1
_MODEL_ADAPTER = TypeAdapter(ModelConfig)


@dataclass
class ModelPackage:
    """A loaded package; :meth:`build_forecaster` turns it back into a ready :class:`Forecaster`."""

    model_config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    residual: bool
    channels: list[str]
    units: list[str]
    mean: np.ndarray
    std: np.ndarray
    tendency_std: np.ndarray
    static_names: list[str]
    static: np.ndarray  # (S, nlat, nlon), physical units
    grid_type: str
    latitudes: np.ndarray
    longitudes: np.ndarray
    time_step: str
    train_config: str  # the run's YAML config
    info: dict[str, Any]
    conserve_global_mean: list[str] = field(default_factory=list)  # channels each step keeps the global mean of

    @property
    def in_channels(self) -> int:
        return len(self.channels) + len(self.static_names) + len(POSITION_NAMES) + len(FORCING_NAMES)

    def build_forecaster(self, device: str | torch.device = "cpu") -> Forecaster:
        forecaster = assemble_forecaster(self.model_config, self, self.residual, self.conserve_global_mean,
                                         source="model package")
        forecaster.network.load_state_dict(self.state_dict)
        return forecaster.to(device).eval()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Physical ``(..., C, H, W)`` -> normalised."""
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        return (x - mean) / std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        return x * std + mean


def assemble_forecaster(model_config: ModelConfig, data: Any, residual: bool, conserve_global_mean: list[str],
                        source: str) -> Forecaster:
    """A freshly initialised :class:`Forecaster` for ``data``: a training store or a :class:`ModelPackage`
    (anything with ``channels, static_names, static, grid_type, latitudes, longitudes, std, tendency_std``).

    Training and packages both build through here, so a trained model and its package assemble alike.
    ``source`` names the config in the error for an unknown ``conserve_global_mean`` channel.
    """
    channels = list(data.channels)
    unknown = sorted(set(conserve_global_mean) - set(channels))
    if unknown:
        raise InputError(f"{source}: conserve_global_mean names {unknown}, not channels of the store {channels}")
    n_in = len(channels) + len(data.static_names) + len(POSITION_NAMES) + len(FORCING_NAMES)
    net = build_model(model_config, data.grid_type, len(data.latitudes), len(data.longitudes), n_in, len(channels))
    return Forecaster(
        net,
        torch.from_numpy(static_inputs(data.static, data.latitudes, data.longitudes)),
        torch.from_numpy(data.tendency_std / data.std),
        residual=residual,
        conserve=torch.tensor([c in conserve_global_mean for c in channels]),
        area_weights=torch.from_numpy(area_weights(data.latitudes)),
    )


def save_package(path: str | Path, network: torch.nn.Module, model_config: ModelConfig, residual: bool,
                 store: Any, train_config_yaml: str, info: dict[str, Any] | None = None,
                 conserve_global_mean: list[str] | None = None) -> Path:
    """Write a package for ``network`` trained on ``store`` (a :class:`~forecast.data.store.TrainingStore`)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "forecast_version": __version__,
        "model_config": json.dumps(_MODEL_ADAPTER.dump_python(model_config, mode="json")),
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "residual": bool(residual),
        "conserve_global_mean": list(conserve_global_mean or []),
        "channels": list(store.channels),
        "units": list(store.units),
        "normalisation": {
            "mean": torch.as_tensor(store.mean, dtype=torch.float64),
            "std": torch.as_tensor(store.std, dtype=torch.float64),
            "tendency_std": torch.as_tensor(store.tendency_std, dtype=torch.float64),
        },
        "static": {"names": list(store.static_names), "values": torch.tensor(np.array(store.static))},
        "grid": {
            "type": store.grid_type,
            "nlat": int(len(store.latitudes)),
            "nlon": int(len(store.longitudes)),
            "latitudes": torch.tensor(np.array(store.latitudes), dtype=torch.float64),
            "longitudes": torch.tensor(np.array(store.longitudes), dtype=torch.float64),
        },
        "time_step": store.time_step,
        "forcings": list(FORCING_NAMES),
        "position_features": list(POSITION_NAMES),
        "train_config": train_config_yaml,
        "info": json.dumps(info or {}, default=str),
    }
    return save_checkpoint(path, payload)


def load_package(path: str | Path) -> ModelPackage:
    """Read and check a package written by :func:`save_package`."""
    raw = load_checkpoint(path)
    if raw.get("format") != FORMAT:
        raise InputError(f"{path} is not a forecast model package (format {raw.get('format')!r}); "
                         "a training checkpoint is turned into one by `forecast train`")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"{path} has package format {raw['format_version']}, newer than this forecast "
                         f"({__version__}) reads ({FORMAT_VERSION}); upgrade forecast")
    grid = raw["grid"]
    norm = raw["normalisation"]
    return ModelPackage(
        model_config=_MODEL_ADAPTER.validate_python(json.loads(raw["model_config"])),
        state_dict=raw["state_dict"],
        residual=bool(raw["residual"]),
        conserve_global_mean=list(raw.get("conserve_global_mean", [])),  # absent in older packages
        channels=list(raw["channels"]),
        units=list(raw["units"]),
        mean=norm["mean"].numpy(),
        std=norm["std"].numpy(),
        tendency_std=norm["tendency_std"].numpy(),
        static_names=list(raw["static"]["names"]),
        static=raw["static"]["values"].numpy(),
        grid_type=grid["type"],
        latitudes=grid["latitudes"].numpy(),
        longitudes=grid["longitudes"].numpy(),
        time_step=raw["time_step"],
        train_config=raw["train_config"],
        info=json.loads(raw["info"]),
    )
