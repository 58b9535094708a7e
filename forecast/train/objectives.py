"""Training objectives: what one optimiser step minimises, chosen by ``loss.type``.

An objective is an ``nn.Module`` whose forward maps a batch of windows to the scalar loss, so that
DistributedDataParallel wraps the whole computation (one forward per backward):
``forward(state (B, C, H, W), forcings (B, K, F, H, W), targets (B, K, C, H, W)) -> loss``, with states
normalised and ``K`` at least the unrolled steps ``n_steps``.

``mse``
    The forecaster unrolled ``n_steps`` steps, area-weighted MSE against the analyses.
``crps``
    Each window's state repeated ``ensemble_members`` times, every copy unrolled ``n_steps`` steps by a
    stochastic network (each call draws fresh noise), almost fair CRPS of the members against the
    analyses at every step (:class:`forecast.train.losses.AreaWeightedCRPS`), plus ``spectral_crps`` times the
    CRPS of the spherical harmonic coefficients with every degree in units of its amplitude in the data.
``dyffusion_interpolator``
    Stage 1 of a DYffusion model (:mod:`forecast.models.dyffusion`): per window a step ``i`` drawn
    uniformly from ``1 .. h - 1``, MSE of ``I(x_0, x_h, i)`` against the analysis ``x_i``. The forecaster's
    weights are frozen.
``dyffusion_forecaster``
    Stage 2, from the stage-1 package (``init_from``): per window a step ``s`` drawn from ``0 .. h - 1``, the
    frozen interpolator's sample ``x_s = I(x_0, x_h, s)`` (dropout on; ``x_0`` itself at ``s = 0``), MSE of
    ``F(x_s, x_0, s)`` against ``x_h``.

Random draws (steps, dropout, noise) come from torch's global generator, which checkpoints save, so a
resumed run draws what the uninterrupted one did.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from forecast.data.store import TrainingStore
from forecast.errors import InputError
from forecast.models.dyffusion import DYffusion, dropout_on
from forecast.models.forecaster import Forecaster
from forecast.models.random_fields import spectral_truncation
from forecast.train.config import LossConfig
from forecast.train.losses import AreaWeightedCRPS, AreaWeightedMSE, SpectralCRPS, degree_amplitudes

__all__ = ["DYffusionForecasting", "DYffusionInterpolation", "EnsembleCRPS", "Objective", "UnrolledMSE",
           "build_objective"]


class Objective(nn.Module):
    """Base: holds the forecaster (so that DDP sees its parameters) and the unrolled steps."""

    def __init__(self, forecaster: Forecaster, n_steps: int) -> None:
        super().__init__()
        self.forecaster = forecaster
        self.n_steps = n_steps

    def forward(self, state: Tensor, forcings: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError


class UnrolledMSE(Objective):
    """Area-weighted MSE of a ``n_steps`` unroll."""

    def __init__(self, forecaster: Forecaster, n_steps: int, loss: AreaWeightedMSE) -> None:
        super().__init__(forecaster, n_steps)
        self.loss = loss

    def forward(self, state: Tensor, forcings: Tensor, targets: Tensor) -> Tensor:
        k = self.n_steps
        return self.loss(self.forecaster.unroll(state, forcings, k), targets[:, :k])


class EnsembleCRPS(Objective):
    """Ensemble CRPS of ``members`` unrolls of every window (see the module docstring), plus ``spectral_weight``
    times the degree-normalised spectral CRPS (:class:`forecast.train.losses.SpectralCRPS`) when given."""

    def __init__(self, forecaster: Forecaster, n_steps: int, loss: AreaWeightedCRPS, members: int,
                 spectral: SpectralCRPS | None = None, spectral_weight: float = 0.0) -> None:
        super().__init__(forecaster, n_steps)
        self.loss, self.members = loss, members
        self.spectral, self.spectral_weight = spectral, spectral_weight

    def forward(self, state: Tensor, forcings: Tensor, targets: Tensor) -> Tensor:
        k, e = self.n_steps, self.members
        b = state.shape[0]
        # Members of one window are neighbouring rows, so the reshape below groups them.
        pred = self.forecaster.unroll(state.repeat_interleave(e, 0), forcings.repeat_interleave(e, 0), k)
        pred = pred.reshape(b, e, *pred.shape[1:])  # (B, E, k, C, H, W)
        loss = self.loss(pred, targets[:, :k])
        if self.spectral is not None:
            loss = loss + self.spectral_weight * self.spectral(pred, targets[:, :k])
        return loss


class _DYffusionStage(Objective):
    """A DYffusion training stage: MSE of one of its two networks, the other frozen (``frozen``)."""

    frozen = ""

    def __init__(self, forecaster: Forecaster, loss: AreaWeightedMSE) -> None:
        super().__init__(forecaster, forecaster.network.horizon)
        self.loss = loss
        getattr(forecaster.network, self.frozen).requires_grad_(False)


class DYffusionInterpolation(_DYffusionStage):
    """Stage 1 of DYffusion: the interpolator on a random intermediate step of each window."""

    frozen = "forecaster"

    def forward(self, state: Tensor, forcings: Tensor, targets: Tensor) -> Tensor:
        net, h, b = self.forecaster.network, self.n_steps, state.shape[0]
        i = torch.randint(1, h, (b,), device=state.device)  # (B,) steps 1 .. h - 1
        context = self.forecaster.context(state, forcings[:, 0])
        pred = net.interpolate(state, targets[:, h - 1], context, i, self.forecaster.tendency_scale)
        return self.loss(pred, targets[torch.arange(b, device=state.device), i - 1])


class DYffusionForecasting(_DYffusionStage):
    """Stage 2 of DYffusion: the forecaster from the frozen interpolator's samples."""

    frozen = "interpolator"

    def forward(self, state: Tensor, forcings: Tensor, targets: Tensor) -> Tensor:
        net, h, b = self.forecaster.network, self.n_steps, state.shape[0]
        scale = self.forecaster.tendency_scale
        s = torch.randint(0, h, (b,), device=state.device)  # (B,) steps 0 .. h - 1
        context = self.forecaster.context(state, forcings[:, 0])
        x_end = targets[:, h - 1]
        with torch.no_grad(), dropout_on(net.interpolator):
            x_s = net.interpolate(state, x_end, context, s.clamp(min=1), scale)
        x_s = torch.where((s == 0).reshape(-1, 1, 1, 1), state, x_s)
        return self.loss(net.predict_last(x_s, state, context, s, scale), x_end)


def spectral_crps(store: TrainingStore, alpha: float, samples: int = 256) -> SpectralCRPS:
    """:class:`SpectralCRPS` on the store's grid, each degree's amplitude measured on ``samples`` normalised
    states spread over the store (the whole grid's degrees, ``lmax = min(nlat, nlon // 2)``)."""
    from torch_harmonics import RealSHT

    nlat, nlon = store.shape
    lmax = spectral_truncation(nlat, nlon)
    sht = RealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=store.grid_type)
    picks = np.unique(np.linspace(0, len(store.times) - 1, samples).round().astype(int))
    states = (np.asarray(store.state[picks], np.float64) - store.mean[:, None, None]) / store.std[:, None, None]
    return SpectralCRPS(sht.float(), degree_amplitudes(torch.from_numpy(states), sht.double()), alpha)


def build_objective(config: LossConfig, forecaster: Forecaster, store: TrainingStore,
                    channel_weights: np.ndarray) -> Objective:
    """The objective ``config.type`` names, for a forecaster of ``store``'s data with per-channel weights."""
    latitudes = store.latitudes
    n = config.steps_at(0)
    net = forecaster.network
    if config.type.startswith("dyffusion"):
        if not isinstance(net, DYffusion):
            raise InputError(f"loss.type {config.type} trains a DYffusion model, not {type(net).__name__}")
        if config.max_steps != net.horizon or n != net.horizon:
            raise InputError(f"loss.rollout_steps must be the DYffusion horizon {net.horizon} (windows of h + 1 "
                             f"analyses), without rollout_schedule; got {n} .. {config.max_steps}")
        stage = DYffusionInterpolation if config.type == "dyffusion_interpolator" else DYffusionForecasting
        return stage(forecaster, AreaWeightedMSE(latitudes, channel_weights, config.latitude_weighting))
    if isinstance(net, DYffusion):
        raise InputError("a DYffusion model trains with loss.type dyffusion_interpolator, then dyffusion_forecaster")
    if config.type == "crps" and not getattr(net, "stochastic", False):
        raise InputError(f"loss.type crps needs a stochastic network (e.g. model type sfno_stochastic); "
                         f"{type(net).__name__} would give identical members")
    if config.type == "crps":
        spectral = spectral_crps(store, config.crps_alpha) if config.spectral_crps > 0 else None
        crps = AreaWeightedCRPS(latitudes, channel_weights, config.crps_alpha, config.latitude_weighting)
        return EnsembleCRPS(forecaster, n, crps, config.ensemble_members, spectral, config.spectral_crps)
    mse = AreaWeightedMSE(latitudes, channel_weights, config.latitude_weighting, config.zonal_mean_weight)
    return UnrolledMSE(forecaster, n, mse)
