"""Forecast networks: pure ``nn.Module``s mapping ``(B, C_in, nlat, nlon)`` to ``(B, C_out, nlat, nlon)``.

``C_in`` is whatever the caller assembles (prognostic channels, static fields, time features);
``C_out`` is the prognostic channels. Normalisation, residual prediction and feature assembly are
wrappers elsewhere. Architectures are chosen by name (``type:`` in the config) through a registry::

    model = build_model(config, "equiangular", 73, 144, in_channels=10, out_channels=6)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from forecast.models.afno import AFNO
from forecast.models.baselines import Climatology, Persistence
from forecast.models.config import (
    AFNOConfig,
    ClimatologyConfig,
    DYffusionConfig,
    ModelConfig,
    ModelConfigFile,
    PersistenceConfig,
    ReferenceSFNOConfig,
    SFNOConfig,
    StochasticSFNOConfig,
    load_model_config,
)
from forecast.models.dyffusion import DYffusion
from forecast.models.reference import build_reference_sfno
from forecast.models.sfno import SFNO
from forecast.models.stochastic import StochasticSFNO

__all__ = [
    "AFNO",
    "SFNO",
    "AFNOConfig",
    "Climatology",
    "ClimatologyConfig",
    "DYffusion",
    "DYffusionConfig",
    "ModelConfig",
    "ModelConfigFile",
    "Persistence",
    "PersistenceConfig",
    "ReferenceSFNOConfig",
    "SFNOConfig",
    "StochasticSFNO",
    "StochasticSFNOConfig",
    "build_model",
    "count_parameters",
    "load_model_config",
    "register_model",
    "registered_models",
]

GRID_TYPES = ("equiangular", "legendre-gauss")

# name (the config's ``type``) -> builder(config, grid_type, nlat, nlon, in_channels, out_channels)
Builder = Callable[[Any, str, int, int, int, int], nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``name``; a config with ``type: name`` then builds it."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorate


def registered_models() -> list[str]:
    """The names ``build_model`` knows."""
    return sorted(_REGISTRY)


def build_model(
    config: ModelConfig, grid_type: str, nlat: int, nlon: int, in_channels: int, out_channels: int
) -> nn.Module:
    """The network ``config`` describes, for a ``grid_type`` grid of ``nlat x nlon`` and the given channels.

    To run trained SFNO weights on another grid, build with the same config and channels for that
    grid and ``load_state_dict`` (or call ``SFNO.for_grid``); AFNO weights fit one grid size only.
    """
    if grid_type not in GRID_TYPES:
        raise ValueError(f"unknown grid type {grid_type!r}; choose from {GRID_TYPES}")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"need at least one input and output channel, got {in_channels} -> {out_channels}")
    try:
        builder = _REGISTRY[config.type]
    except KeyError:
        raise ValueError(f"no model registered as {config.type!r}; known: {registered_models()}") from None
    return builder(config, grid_type, nlat, nlon, in_channels, out_channels)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) scalar parameters; a complex weight stored as a pair counts 2."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@register_model("sfno")
def _build_sfno(config: SFNOConfig, grid_type: str, nlat: int, nlon: int, c_in: int, c_out: int) -> nn.Module:
    return SFNO(config, grid_type, nlat, nlon, c_in, c_out)


@register_model("sfno_stochastic")
def _build_stochastic_sfno(config: StochasticSFNOConfig, grid_type: str, nlat: int, nlon: int, c_in: int,
                           c_out: int) -> nn.Module:
    return StochasticSFNO(config, grid_type, nlat, nlon, c_in, c_out)


@register_model("dyffusion")
def _build_dyffusion(config: DYffusionConfig, grid_type: str, nlat: int, nlon: int, c_in: int, c_out: int) -> nn.Module:
    return DYffusion(config, grid_type, nlat, nlon, c_in, c_out)


@register_model("afno")
def _build_afno(config: AFNOConfig, grid_type: str, nlat: int, nlon: int, c_in: int, c_out: int) -> nn.Module:
    return AFNO(config, grid_type, nlat, nlon, c_in, c_out)


@register_model("persistence")
def _build_persistence(
    config: PersistenceConfig, grid_type: str, nlat: int, nlon: int, c_in: int, c_out: int
) -> nn.Module:
    indices = list(range(c_out)) if config.prognostic_indices is None else config.prognostic_indices
    if len(indices) != c_out or max(indices) >= c_in:
        raise ValueError(f"prognostic_indices {indices} do not give {c_out} channels out of {c_in}")
    return Persistence(indices)


@register_model("climatology")
def _build_climatology(
    config: ClimatologyConfig, grid_type: str, nlat: int, nlon: int, c_in: int, c_out: int
) -> nn.Module:
    return Climatology(c_out)


@register_model("sfno_reference")
def _build_reference_sfno(
    config: ReferenceSFNOConfig, grid_type: str, nlat: int, nlon: int, c_in: int, c_out: int
) -> nn.Module:
    return build_reference_sfno(config, grid_type, nlat, nlon, c_in, c_out)
