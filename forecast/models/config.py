"""Typed, strict configs of the networks; the ``type`` key picks the architecture from the registry.

A model section of a YAML file reads, for example::

    type: sfno
    embed_dim: 32
    num_layers: 4
    lmax: 16
    mmax: 16

Grid size and channel counts are deliberately *not* part of these configs: they come from the data
(``build_model(config, grid_type, nlat, nlon, in_channels, out_channels)``), so the same config builds
the same architecture on any grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, RootModel, model_validator

from forecast.config import StrictModel, load_config

__all__ = [
    "AFNOConfig",
    "Activation",
    "ClimatologyConfig",
    "DYffusionConfig",
    "ModelConfig",
    "ModelConfigFile",
    "NormType",
    "PersistenceConfig",
    "ReferenceSFNOConfig",
    "SFNOConfig",
    "StochasticSFNOConfig",
    "load_model_config",
]

Activation = Literal["gelu", "relu", "silu", "tanh"]
NormType = Literal["layer_norm", "instance_norm", "none"]


class SFNOConfig(StrictModel):
    """Spherical Fourier Neural Operator (Bonev et al. 2023), built on torch-harmonics' real SHT.

    ``lmax``/``mmax`` are the (exclusive) spectral truncation of every block: degrees ``l < lmax`` and
    orders ``m < mmax``. They are always passed to torch-harmonics explicitly, because its default
    truncation changed in 0.9 and a default would tie the weights to the grid. The learned spectral
    filter has one weight per (channel in, channel out or channel, degree l); nothing learned depends
    on the grid, so trained weights run on any grid fine enough for ``lmax``/``mmax``.
    """

    type: Literal["sfno"] = "sfno"
    embed_dim: int = Field(64, gt=0)
    num_layers: int = Field(4, gt=0)
    lmax: int = Field(gt=0)
    mmax: int = Field(gt=0)
    # The blocks between the first and the last work on a Legendre-Gauss grid this many times
    # coarser than the data grid (1: all blocks on the data grid itself).
    scale_factor: int = Field(1, ge=1)
    mlp_ratio: float = Field(2.0, gt=0)
    # Driscoll-Healy: the filter is a function of the degree l only (a spherical convolution).
    filter: Literal["driscoll-healy"] = "driscoll-healy"
    # "dense": a C x C matrix per degree; "diagonal": one weight per channel and degree (no mixing).
    filter_mixing: Literal["dense", "diagonal"] = "dense"
    # "complex" weights also rotate the longitudinal phase of each degree (the torch-harmonics SFNO
    # convention): equivariant to rotations about the polar axis and degree-preserving. "real"
    # weights make the filter a true spherical convolution, equivariant to all rotations.
    filter_weights: Literal["complex", "real"] = "complex"
    norm: NormType = "layer_norm"
    # Skip connection around the spectral filter of each block (on the block's output grid).
    spectral_skip: Literal["identity", "linear", "none"] = "identity"
    # Skip connection around the pointwise MLP of each block.
    mlp_skip: bool = True
    # Concatenate the network input to the decoder input, so that scales the spectral blocks
    # truncate (degree >= lmax, or everything the coarse grid drops) reach the output.
    big_skip: bool = True
    activation: Activation = "gelu"
    dropout: float = Field(0.0, ge=0, lt=1)
    # Stochastic depth: the drop rate grows linearly from 0 in the first block to this in the last.
    drop_path: float = Field(0.0, ge=0, lt=1)
    # Band-limit the network's output (the tendency, with residual prediction) to degrees and orders
    # below this: the model then cannot put energy at scales the data do not hold (e.g. 32 for data from
    # a T31 model), the grid-scale pile-up that makes long rollouts blow up. null: no limit.
    output_lmax: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _orders_within_degrees(self) -> SFNOConfig:
        if self.mmax > self.lmax:
            raise ValueError(f"mmax={self.mmax} > lmax={self.lmax}: orders m > l do not exist, so mmax <= lmax")
        return self


class StochasticSFNOConfig(SFNOConfig):
    """An SFNO that takes ``noise_channels`` latent noise fields as extra inputs, fresh at every step
    (FourCastNet 3 style), so that each call draws one member of a forecast distribution. Trained with an
    ensemble CRPS (``loss.type: crps``), one model yields calibrated members.

    The fields are isotropic Gaussian random fields (:class:`forecast.models.random_fields.SphericalNoise`)
    whose spectrum starts Matérn (``noise_length_scale_km``, ``noise_smoothness``) and, with
    ``noise_spectrum: learned``, is trained per degree.
    """

    type: Literal["sfno_stochastic"] = "sfno_stochastic"  # type: ignore[assignment]
    noise_channels: int = Field(4, ge=1)
    noise_length_scale_km: float = Field(1000.0, gt=0)
    noise_smoothness: float = Field(1.5, gt=0)
    noise_spectrum: Literal["fixed", "learned"] = "learned"
    # Truncation of the noise fields (degrees and orders below it); None: the filters' lmax.
    noise_lmax: int | None = Field(None, ge=2)


class DYffusionConfig(StrictModel):
    """Spherical DYffusion (Rühling Cachay et al. 2023, 2024): dynamics-informed diffusion with SFNO backbones.

    Two SFNOs on the model grid: a stochastic ``interpolator`` ``I(x_0, x_h, i) -> x_i`` for ``0 < i < h``
    (stochastic through dropout kept on at inference) and a ``forecaster`` ``F(x_i, x_0, i) -> x_h``
    conditioned on the interpolation time; both see the static fields and forcings at the initial time.
    They are trained in two stages (``loss.type: dyffusion_interpolator``, then ``dyffusion_forecaster``
    from the stage-1 package) and sampled over ``horizon`` 6-hour steps with cold sampling
    (:func:`forecast.models.dyffusion.cold_sample`). Every sample is an independent member.
    """

    type: Literal["dyffusion"] = "dyffusion"
    horizon: int = Field(4, ge=2)  # model steps per sample (h); rollouts chain samples
    interpolator: SFNOConfig
    forecaster: SFNOConfig
    # "cold": x_{s+1} = x_s - I(x_0, F, s) + I(x_0, F, s + 1) (the paper's); "naive": x_{s+1} = I(x_0, F, s + 1).
    sampling: Literal["cold", "naive"] = "cold"
    # Keep the forecaster's dropout on at inference too (the interpolator's always is).
    forecaster_dropout_at_inference: bool = False

    @model_validator(mode="after")
    def _stochastic_interpolator(self) -> DYffusionConfig:
        if self.interpolator.dropout == 0 and self.interpolator.drop_path == 0:
            raise ValueError("the DYffusion interpolator needs dropout > 0 (or drop_path > 0): it is the "
                             "source of the members' spread")
        return self


class AFNOConfig(StrictModel):
    """Adaptive Fourier Neural Operator (FourCastNet, Pathak et al. 2022) on a patched lat-lon grid."""

    type: Literal["afno"] = "afno"
    patch_size: tuple[int, int] = (4, 4)  # (latitude, longitude) grid points per patch
    embed_dim: int = Field(128, gt=0)
    depth: int = Field(4, gt=0)
    num_blocks: int = Field(8, gt=0)  # block-diagonal blocks of the spectral channel MLP
    sparsity_threshold: float = Field(0.01, ge=0)  # soft-shrink lambda on the spectral MLP output
    hard_thresholding_fraction: float = Field(1.0, gt=0, le=1)  # fraction of lowest modes kept
    mlp_ratio: float = Field(4.0, gt=0)
    # Hidden width of the spectral MLP is hidden_size_factor * embed_dim / num_blocks per block.
    hidden_size_factor: int = Field(1, gt=0)
    activation: Activation = "gelu"
    dropout: float = Field(0.0, ge=0, lt=1)
    drop_path: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _blocks_divide_channels(self) -> AFNOConfig:
        if self.embed_dim % self.num_blocks:
            raise ValueError(f"num_blocks={self.num_blocks} must divide embed_dim={self.embed_dim}")
        if min(self.patch_size) < 1:
            raise ValueError(f"patch_size {self.patch_size} must be positive")
        return self


class ReferenceSFNOConfig(StrictModel):
    """torch-harmonics' reference ``SphericalFourierNeuralOperator`` (:mod:`forecast.models.reference`):
    its arguments, with the truncation given as ``lmax`` like :class:`SFNOConfig`."""

    type: Literal["sfno_reference"] = "sfno_reference"
    embed_dim: int = Field(32, gt=0)
    num_layers: int = Field(4, gt=0)
    scale_factor: int = Field(1, ge=1)
    # Spectral truncation (degrees and orders below lmax); None: all modes the internal grid carries.
    lmax: int | None = Field(None, gt=0)
    mlp_ratio: float = Field(2.0, gt=0)
    activation: Literal["relu", "gelu"] = "gelu"
    normalization_layer: Literal["none", "instance_norm"] = "none"
    # Adds the input (through a 1x1 projection when the channel counts differ) to the output.
    residual_prediction: bool = False
    pos_embed: Literal["none", "spectral", "learnable lat", "learnable latlon"] = "none"
    bias: bool = False
    drop_rate: float = Field(0.0, ge=0, lt=1)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)


class PersistenceConfig(StrictModel):
    """Baseline: the forecast is the prognostic part of the input, unchanged."""

    type: Literal["persistence"] = "persistence"
    # Input channel of each output channel; None: the first out_channels input channels (the
    # layout in which the prognostic channels come first in the assembled input).
    prognostic_indices: list[int] | None = None


class ClimatologyConfig(StrictModel):
    """Baseline: the forecast is the climatology of the valid time, passed by the caller."""

    type: Literal["climatology"] = "climatology"


ModelConfig = Annotated[
    SFNOConfig
    | StochasticSFNOConfig
    | DYffusionConfig
    | AFNOConfig
    | ReferenceSFNOConfig
    | PersistenceConfig
    | ClimatologyConfig,
    Field(discriminator="type"),
]


class ModelConfigFile(RootModel[ModelConfig]):
    """A YAML file that holds one model config at top level (``configs/models/*.yaml``).

    Loads with :func:`forecast.config.load_config` like any config class; ``.root`` is the model config.
    """


def load_model_config(path: str | Path, overrides: list[str] | None = None) -> ModelConfig:
    """The model config in YAML file ``path`` (``type:`` picks the class), with ``key=value`` overrides."""
    return load_config(ModelConfigFile, path, overrides).root  # type: ignore[type-var]
