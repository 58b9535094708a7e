"""Spherical DYffusion (Rühling Cachay et al., NeurIPS 2023 and 2024) on the project's SFNO.

DYffusion replaces the Gaussian noising of a diffusion model by the dynamics themselves: the "diffusion
step" ``s`` of a sample is the time ``t + s dt`` inside a horizon of ``h`` model steps. Two networks:

* the **interpolator** ``I(x_0, x_h, i) -> x_i``, ``0 < i < h``: the state ``i`` steps after ``x_0`` given the
  state ``h`` steps after it; stochastic through dropout that stays on at inference;
* the **forecaster** ``F(x_s, x_0, s) -> x_h``: the state at the end of the horizon from the (interpolated)
  state at step ``s`` and the initial state.

Training (:mod:`forecast.train.objectives`) fits ``I`` on windows of ``h + 1`` analyses, then ``F`` on the
interpolator's samples with ``I`` frozen. Sampling (:func:`cold_sample`) starts from ``x_0`` and alternates
``F`` and ``I`` over ``s = 0 .. h - 1``, each stage's state giving the forecast at ``t + (s + 1) dt``; a
rollout chains samples from the last state of each. Both networks see the static fields and the
forcings at the initial time and the step (``s / h``) as a constant input channel.

The networks predict increments in units of each channel's 6-hour tendency (the ``scale`` the
:class:`~forecast.models.forecaster.Forecaster` passes): ``I`` around the straight line from ``x_0`` to
``x_h``, ``F`` from ``x_s`` scaled by the ``h - s`` steps still to go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from forecast.models.config import DYffusionConfig
from forecast.models.layers import Dropout
from forecast.models.sfno import SFNO

__all__ = ["DYffusion", "cold_sample", "dropout_on"]


@contextmanager
def dropout_on(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Dropout (and drop-path) layers of ``module`` in training mode inside the block, put back after:
    Monte-Carlo dropout at inference. Nothing else changes (the SFNO's norms hold no running statistics)."""
    layers = [m for m in module.modules() if isinstance(m, nn.Dropout | Dropout)]  # DropPath is a Dropout
    before = [m.training for m in layers]
    try:
        for m in layers:
            m.train(enabled or m.training)
        yield
    finally:
        for m, mode in zip(layers, before, strict=True):
            m.train(mode)


def cold_sample(interpolate: Callable[[Tensor, int], Tensor], forecast: Callable[[Tensor, int], Tensor], x0: Tensor,
                horizon: int, cold: bool = True) -> Tensor:
    """The states at steps ``1 .. h`` ``(B, h, C, H, W)`` of one DYffusion sample from ``x0`` ``(B, C, H, W)``.

    ``forecast(x_s, s)`` predicts ``x_h``; ``interpolate(x_h_hat, i)`` the state at step ``i`` (``0 < i < h``)
    between ``x0`` and ``x_h_hat``. Cold sampling (Bansal et al. 2022, as DYffusion) moves the state by the
    difference of two interpolations along the current estimate of ``x_h``, which corrects what the
    previous stage got wrong instead of discarding it::

        x_{s+1} = x_s - I(x_h_hat, s) + I(x_h_hat, s + 1),   I(., 0) = x_s at s = 0,  I(x_h_hat, h) = x_h_hat

    ``cold=False`` is the naive scheme ``x_{s+1} = I(x_h_hat, s + 1)``.
    """
    x, out = x0, []
    for s in range(horizon):
        x_end = forecast(x, s)
        ahead = interpolate(x_end, s + 1) if s + 1 < horizon else x_end
        if cold and s > 0:
            x = x - interpolate(x_end, s) + ahead
        else:  # at s = 0 the interpolation at step 0 is the state itself, so both schemes agree
            x = ahead
        out.append(x)
    return torch.stack(out, dim=1)


class DYffusion(nn.Module):
    """Interpolator and forecaster SFNOs of one DYffusion model (see the module docstring).

    Args:
        config: the two SFNOs, the horizon and the sampling scheme.
        grid_type, nlat, nlon: data grid.
        in_channels: the assembled input of one state (prognostic + static + forcings), as every network here.
        out_channels: prognostic channels ``C`` (the first ``C`` of the assembled input).
    """

    def __init__(self, config: DYffusionConfig, grid_type: str, nlat: int, nlon: int, in_channels: int,
                 out_channels: int) -> None:
        super().__init__()
        self.config = config
        self.horizon = config.horizon
        c, ctx = out_channels, in_channels - out_channels
        # Inputs: two states, the context (static + forcings) and the step as a constant channel.
        self.interpolator = SFNO(config.interpolator, grid_type, nlat, nlon, 2 * c + ctx + 1, c)
        self.forecaster = SFNO(config.forecaster, grid_type, nlat, nlon, 2 * c + ctx + 1, c)

    def _step_channel(self, x: Tensor, step: int | Tensor) -> Tensor:
        """``step / h`` as a constant field ``(B, 1, H, W)``; ``step`` an int or per row ``(B,)``."""
        s = torch.as_tensor(step, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1) / self.horizon
        return s.expand(x.shape[0], 1, *x.shape[-2:])

    def interpolate(self, x0: Tensor, xh: Tensor, context: Tensor, step: int | Tensor, scale: Tensor) -> Tensor:
        """``x_step`` ``(B, C, H, W)`` between ``x0`` and ``xh`` (normalised states), ``0 < step < h``."""
        frac = self._step_channel(x0, step)
        line = x0 + frac * (xh - x0)
        return line + scale * self.interpolator(torch.cat([x0, xh, context, frac], dim=1))

    def predict_last(self, xs: Tensor, x0: Tensor, context: Tensor, step: int | Tensor, scale: Tensor) -> Tensor:
        """``x_h`` ``(B, C, H, W)`` from the state ``xs`` at ``step`` (``0 <= step < h``) and ``x0``."""
        frac = self._step_channel(x0, step)
        to_go = self.horizon * (1.0 - frac)  # steps left to the end of the horizon
        return xs + scale * to_go * self.forecaster(torch.cat([xs, x0, context, frac], dim=1))

    def sample(self, x0: Tensor, context: Tensor, scale: Tensor) -> Tensor:
        """One sample ``(B, h, C, H, W)`` of the states at steps ``1 .. h`` after ``x0``, dropout on."""
        with dropout_on(self.interpolator), dropout_on(self.forecaster, self.config.forecaster_dropout_at_inference):
            return cold_sample(lambda xh, i: self.interpolate(x0, xh, context, i, scale),
                               lambda xs, s: self.predict_last(xs, x0, context, s, scale),
                               x0, self.horizon, cold=self.config.sampling == "cold")

    def forward(self, x: Tensor) -> Tensor:
        raise TypeError("a DYffusion model forecasts a horizon at a time: call it through Forecaster "
                        "(Forecaster.iterate / sample_block), not as a one-step network")
