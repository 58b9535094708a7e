"""Typed configuration of one training run (``forecast train <config.yaml>``): data, model, optimiser, loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from forecast.config import StrictModel, Timestamp
from forecast.models.config import ModelConfig

__all__ = ["DataConfig", "InputNoiseConfig", "LossConfig", "OptimConfig", "PeriodConfig", "TrainConfig",
           "ValidationConfig"]


class PeriodConfig(StrictModel):
    """Inclusive time window; ``None`` bounds take the store's first/last time."""

    start: Timestamp | None = None
    end: Timestamp | None = None


class DataConfig(StrictModel):
    store: str
    train: PeriodConfig
    valid: PeriodConfig
    batch_size: int = Field(default=8, ge=1)  # global batch; divided among DDP ranks
    workers: int = Field(default=1, ge=0)  # DataLoader worker processes per rank
    in_memory: bool = True  # read the whole store once (fast for stores that fit in RAM)


class OptimConfig(StrictModel):
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    # "weights": decay only weight matrices and spectral filters, not biases, norms, position embeddings.
    decay: Literal["all", "weights"] = "all"
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(default=50, ge=0)
    min_lr_ratio: float = Field(default=0.02, ge=0, le=1)  # floor of the cosine decay, relative to lr
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    ema_decay: float | None = None  # e.g. 0.999: validate and package an exponential moving average
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA when supported, off on CPU


class InputNoiseConfig(StrictModel):
    """``amplitude``: pointwise std in normalised units (each channel's std). A bare number in YAML is
    white noise of that std (``input_noise: 0.2``)."""

    type: Literal["white", "spherical_grf"] = "white"
    amplitude: float = Field(default=0.0, ge=0)
    length_scale_km: float = Field(default=2000.0, gt=0)  # spherical_grf: correlation length
    smoothness: float = Field(default=1.5, gt=0)  # spherical_grf: Matérn nu (spectrum ~ l**(-2 nu - 2))

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value: object) -> object:
        return {"amplitude": value} if isinstance(value, int | float) else value


class LossConfig(StrictModel):
    # What a step minimises (forecast.train.objectives): "mse" of an unroll; "crps": the almost fair CRPS
    # of `ensemble_members` unrolls of each window by a stochastic network (e.g. model type sfno_stochastic);
    # "dyffusion_interpolator" / "dyffusion_forecaster": the two training stages of a DYffusion model.
    type: Literal["mse", "crps", "dyffusion_interpolator", "dyffusion_forecaster"] = "mse"
    ensemble_members: int = Field(default=2, ge=2)  # crps: members per window
    crps_alpha: float = Field(default=0.95, ge=0, le=1)  # crps: 1 fair, 0 empirical (losses.AreaWeightedCRPS)
    # crps: weight of the CRPS on spherical harmonic coefficients, each degree in units of its amplitude in the
    # data (losses.SpectralCRPS), which keeps members' power right at every scale. 0: grid-point CRPS only.
    spectral_crps: float = Field(default=0.0, ge=0)
    channel_weights: dict[str, float] = Field(default_factory=dict)  # missing channels weigh 1
    # "state": squared errors of states in units of each channel's std (a slow channel, whose 6-hour change
    # is a small fraction of its std, weighs little); "tendency": in units of each channel's 6-hour change
    # (tendency std), so every channel's step is learned alike. Multiplies channel_weights.
    weighting: Literal["state", "tendency"] = "state"
    # "area": squared errors weighted by cell area (the evaluation's weighting); "uniform": every grid row alike.
    latitude_weighting: Literal["area", "uniform"] = "area"
    # mse: the squared error of the zonal means counted 1 + this many times (the m = 0 part of the error).
    zonal_mean_weight: float = Field(default=0.0, ge=0)
    rollout_steps: int = Field(default=1, ge=1)  # >1: loss over k unrolled steps, gradients through them
    # Multi-step curriculum: {epoch: steps} unrolls `steps` steps from that (0-based) epoch on, e.g.
    # {3: 2, 5: 4}; epochs before the first key use rollout_steps. A model that has seen its own
    # errors a few steps deep learns to damp them, which is what keeps long rollouts stable.
    rollout_schedule: dict[int, int] = Field(default_factory=dict)
    # Noise added to each training window's initial state (forecast.train.noise): a number is the std
    # (normalised units) of white noise; {type: spherical_grf, amplitude, length_scale_km} correlated
    # noise with power at the large scales. The model learns to pull off states back towards the data.
    input_noise: InputNoiseConfig = Field(default_factory=InputNoiseConfig)

    @model_validator(mode="after")
    def _positive_schedule(self) -> LossConfig:
        bad = {e: k for e, k in self.rollout_schedule.items() if e < 0 or k < 1}
        if bad:
            raise ValueError(f"rollout_schedule needs epochs >= 0 and steps >= 1, got {bad}")
        return self

    def steps_at(self, epoch: int) -> int:
        """Unrolled steps of the loss in (0-based) ``epoch``."""
        started = [e for e in self.rollout_schedule if e <= epoch]
        return self.rollout_schedule[max(started)] if started else self.rollout_steps

    @property
    def max_steps(self) -> int:
        """The longest unroll of the run: the length of every training window."""
        return max([self.rollout_steps, *self.rollout_schedule.values()])


class ValidationConfig(StrictModel):
    lead_steps: list[int] = Field(default_factory=lambda: [1, 4, 20])  # leads reported (6 h, 1 d, 5 d)
    # > 1: every case is an ensemble of this many unrolls (stochastic networks); the RMSE is the ensemble
    # mean's, the fair CRPS and the spread are reported too, and the CRPS selects the best model.
    members: int = Field(default=1, ge=1)
    max_cases: int = Field(default=32, ge=1)  # initial times spread evenly over the validation period
    batch_size: int = Field(default=8, ge=1)


class TrainConfig(StrictModel):
    """One training run, end to end; saved inside every checkpoint and model package."""

    name: str
    seed: int = 0
    data: DataConfig
    model: ModelConfig
    residual: bool = True
    # Channels whose area-weighted global mean every step keeps exactly (the mean of the predicted increment
    # is removed), e.g. [z500, msl] for the embedded shallow-water data, whose layer mass is conserved:
    # a model that drifts in them by a rounding error a step drifts by much more over ten years.
    conserve_global_mean: list[str] = Field(default_factory=list)
    # Start from the weights of a model package (e.g. multi-step fine-tuning of a 1-step model).
    init_from: str | None = None
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    epochs: int = Field(default=10, ge=1)
    steps_per_epoch: int | None = None  # cap the batches per epoch (None: one pass over the training windows)
    checkpoint_every: int = Field(default=200, ge=1)  # optimiser steps between mid-epoch checkpoints
    output_dir: str = "runs/{name}"
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...

    @property
    def run_dir(self) -> str:
        return self.output_dir.format(name=self.name)
