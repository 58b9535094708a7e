"""The rollout generator: one model step per iteration, forcings recomputed at every valid time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forecast.data.features import FORCING_NAMES, forcings
from forecast.models.forecaster import Forecaster

__all__ = ["RolloutStep", "batch_forcings", "rollout"]


@dataclass
class RolloutStep:
    lead: int  # number of model steps taken
    valid_times: np.ndarray  # (B,) datetime64[ns]
    state: torch.Tensor  # (B, C, H, W), normalised


def batch_forcings(times: np.ndarray, latitudes: np.ndarray, longitudes: np.ndarray,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Forcings ``(B, F, H, W)`` at the valid ``times`` ``(B,)`` of a batch.

    Ensemble members share their valid time, so the fields are computed once per distinct time and
    indexed: a 50-member batch costs one solar-geometry evaluation, not fifty.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    unique, inverse = np.unique(times, return_inverse=True)
    f = torch.from_numpy(forcings(unique, latitudes, longitudes)).to(device)  # (T_unique, F, H, W)
    if unique.size == times.size and np.array_equal(unique, times):
        return f
    return f.index_select(0, torch.from_numpy(inverse.reshape(-1)).to(device))


@torch.inference_mode()
def rollout(
    forecaster: Forecaster,
    state: torch.Tensor,
    init_times: np.ndarray,
    n_steps: int,
    time_step: str | pd.Timedelta,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
) -> Iterator[RolloutStep]:
    """Yield the normalised state after each of ``n_steps`` steps from ``state`` ``(B, C, H, W)``.

    ``init_times`` ``(B,)`` are the valid times of ``state``; forcings for each step are computed
    at the time the step starts from, as in training. Only the current state is held, so memory
    does not grow with ``n_steps``; a consumer that keeps every yielded state is what would grow.
    A network forecasting ``h`` steps per call (``forecaster.horizon``) is called every ``h`` steps with
    the forcings at the start of its horizon, and its states are yielded one by one.
    """
    step = np.timedelta64(pd.Timedelta(time_step).value, "ns")
    times = np.asarray(init_times, dtype="datetime64[ns]")
    device = state.device
    if forecaster.horizon > 1:
        yield from _rollout_blocks(forecaster, state, times, n_steps, step, latitudes, longitudes)
        return
    forcing_steps = _forcing_steps(times, step, n_steps, latitudes, longitudes, device)
    for k, f in enumerate(forcing_steps):
        state = forecaster(state, f)
        times = times + step
        yield RolloutStep(k + 1, times, state)


def _forcing_steps(times: np.ndarray, step: np.timedelta64, n_steps: int, latitudes: np.ndarray,
                   longitudes: np.ndarray, device: torch.device,
                   budget_bytes: int = 16 * 2**20) -> Iterator[torch.Tensor]:
    """The forcings ``(B, F, H, W)`` of each of ``n_steps`` steps from ``times`` ``(B,)``.

    The solar geometry of several steps is evaluated in one vectorised call (as many distinct times as
    fit in ``budget_bytes``): called step by step, its numpy work between the network's parallel regions
    cost a single-member rollout about 10 % of a 32 x 64 step (benchmarks/rollout_overhead.py).
    """
    unique, inverse = np.unique(times, return_inverse=True)
    per_time = len(FORCING_NAMES) * latitudes.size * longitudes.size * 4
    chunk = max(1, min(n_steps, budget_bytes // (per_time * unique.size)))
    index = torch.from_numpy(inverse.reshape(-1)).to(device)
    for k0 in range(0, n_steps, chunk):
        k = min(chunk, n_steps - k0)
        t = (unique[None, :] + (k0 + np.arange(k))[:, None] * step).reshape(-1)  # (k * U,) step-major
        f = torch.from_numpy(forcings(t, latitudes, longitudes)).to(device)
        f = f.view(k, unique.size, *f.shape[1:])  # (k, U, F, H, W)
        for j in range(k):
            yield f[j] if unique.size == times.size and np.array_equal(unique, times) else f[j].index_select(0, index)


def _rollout_blocks(forecaster: Forecaster, state: torch.Tensor, times: np.ndarray, n_steps: int,
                    step: np.timedelta64, latitudes: np.ndarray, longitudes: np.ndarray) -> Iterator[RolloutStep]:
    """:func:`rollout` for a network forecasting ``forecaster.horizon`` steps per call."""
    k = 0
    while k < n_steps:
        block = forecaster.sample_block(state, batch_forcings(times, latitudes, longitudes, state.device))
        for j in range(min(block.shape[1], n_steps - k)):
            times = times + step
            yield RolloutStep(k + j + 1, times, block[:, j])
        state, k = block[:, -1], k + block.shape[1]
