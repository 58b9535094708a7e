"""Ensembles as a batch dimension: members of one model run in one forward pass.

A run's members are laid out once (:class:`MemberLayout`): which model package each member uses
(contiguous blocks, so packages split the members evenly), its lag (lagged ensembles) and whether
it is perturbed (``control: true`` keeps member 0 unperturbed). For each block of initial times,
every package builds its rows ``(init, member)`` as one batch ``(N_init * M_p, C, H, W)``: analyses
at each member's start time, plus its perturbation, rolled forward to the common initial time when
lagged (:func:`spin_up`). :func:`ensemble_steps` then zips the packages' rollouts step by step and
yields the whole ensemble in physical units, members in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd
import torch

from forecast.ingest.validate import fmt_time
from forecast.models.forecaster import Forecaster
from forecast.rollout.config import EnsembleConfig
from forecast.rollout.generator import RolloutStep, rollout
from forecast.rollout.guards import check_state, guarded
from forecast.rollout.initial import InitialConditions
from forecast.rollout.perturbations import PerturbationContext, RowRandom, member_seed
from forecast.train.package import ModelPackage

__all__ = ["EnsembleStep", "MemberGroup", "MemberLayout", "ensemble_steps", "group_initial_states", "spin_up"]


@dataclass
class EnsembleStep:
    """The whole ensemble at one lead, in physical units."""

    lead: int  # model steps since the initial time
    valid_times: np.ndarray  # (N_init,) datetime64[ns]
    state: torch.Tensor  # (N_init, M, C, H, W), physical units


@dataclass
class MemberLayout:
    """Per member ``(M,)``: package index, lag in model steps, perturbed or not."""

    package: np.ndarray
    lag_steps: np.ndarray
    perturbed: np.ndarray

    @classmethod
    def build(cls, ensemble: EnsembleConfig | None, n_packages: int) -> MemberLayout:
        if ensemble is None:
            return cls(np.zeros(1, int), np.zeros(1, int), np.zeros(1, bool))
        m = np.arange(ensemble.members)
        package = m * n_packages // ensemble.members  # contiguous, balanced blocks
        lags = (m % ensemble.lagged.lags) * ensemble.lagged.every if ensemble.lagged else np.zeros_like(m)
        perturbed = np.full(m.shape, ensemble.perturbation is not None)
        if ensemble.control:
            perturbed[0] = False
        return cls(package, lags, perturbed)

    @property
    def members(self) -> int:
        return int(self.package.size)

    @property
    def max_lag(self) -> int:
        return int(self.lag_steps.max())


@dataclass
class MemberGroup:
    """The members one model package runs, as one batch."""

    index: int
    package: ModelPackage
    forecaster: Forecaster
    members: np.ndarray  # global member numbers, ascending


@torch.no_grad()
def spin_up(forecaster: Forecaster, state: torch.Tensor, lag_steps: np.ndarray, init_times: np.ndarray,
            time_step: np.timedelta64, latitudes: np.ndarray, longitudes: np.ndarray) -> torch.Tensor:
    """Roll rows ``(B, C, H, W)`` valid at ``init_times - lag_steps * time_step`` forward to ``init_times``.

    Rows join the batch when their start time comes, so the spin-up takes ``max(lag_steps)``
    forward passes whatever the number of lagged members.
    """
    lag_steps = np.asarray(lag_steps)
    for j in range(int(lag_steps.max(initial=0)), 0, -1):  # the step from t0 - j dt to t0 - (j - 1) dt
        active = np.flatnonzero(lag_steps >= j)
        idx = torch.from_numpy(active).to(state.device)
        times = np.asarray(init_times, dtype="datetime64[ns]")[active] - j * time_step
        step = next(rollout(forecaster, state.index_select(0, idx), times, 1, pd.Timedelta(time_step),
                            latitudes, longitudes))
        state = state.index_copy(0, idx, step.state)
    return state


def group_initial_states(group: MemberGroup, ic: InitialConditions, init_times: np.ndarray, layout: MemberLayout,
                         ensemble: EnsembleConfig | None, device: torch.device) -> torch.Tensor:
    """Normalised states ``(N_init * M_g, C, H, W)`` of the group's members at ``init_times`` ``(N_init,)``.

    Rows are init-major: row ``i * M_g + j`` is initial time ``i``, the group's ``j``-th member.
    """
    pkg = group.package
    dt = np.timedelta64(pd.Timedelta(pkg.time_step).value, "ns")
    n_i, members = init_times.size, group.members
    t0 = np.repeat(np.asarray(init_times, dtype="datetime64[ns]"), members.size)  # (B,)
    member_of_row = np.tile(members, n_i)  # (B,)
    lags = layout.lag_steps[member_of_row]
    starts = t0 - lags * dt

    def analysis(rows: np.ndarray, offset: int) -> torch.Tensor:
        raw = torch.from_numpy(ic.read(starts[rows] - offset * dt))
        return pkg.normalise(raw).to(device)

    state = analysis(np.arange(t0.size), 0)
    rows = np.flatnonzero(layout.perturbed[member_of_row])
    if rows.size and ensemble is not None and ensemble.perturbation is not None:
        def step(x: torch.Tensor, times: np.ndarray) -> torch.Tensor:
            return next(rollout(group.forecaster, x, times, 1, pd.Timedelta(dt), pkg.latitudes, pkg.longitudes)).state

        ctx = PerturbationContext(
            channels=list(pkg.channels), latitudes=pkg.latitudes, longitudes=pkg.longitudes,
            grid_type=pkg.grid_type, start_times=starts[rows], time_step=dt, step=step,
            analysis=lambda offset: analysis(rows, offset),
        )
        rng = RowRandom([member_seed(ensemble.seed, t0[r], member_of_row[r]) for r in rows])
        idx = torch.from_numpy(rows).to(device)
        sub = state.index_select(0, idx)
        with torch.no_grad():
            sub = sub + ensemble.perturbation.sample(sub, ctx, rng)
        state = state.index_copy(0, idx, sub)
    if lags.max(initial=0) > 0:
        state = spin_up(group.forecaster, state, lags, t0, dt, pkg.latitudes, pkg.longitudes)
    return state


def row_labels(init_times: np.ndarray, members: np.ndarray, ensemble: bool) -> list[str]:
    """Human names of the rows ``(init, member)`` of a group's batch, for error messages."""
    return [f"init {fmt_time(t)}" + (f", member {m}" if ensemble else "") for t in init_times for m in members]


def ensemble_steps(groups: Sequence[MemberGroup], states: Sequence[torch.Tensor], init_times: np.ndarray,
                   n_steps: int, include_initial: bool, max_abs: float | None,
                   ensemble: bool) -> Iterator[EnsembleStep]:
    """Yield the whole ensemble at each lead: ``state`` ``(N_init, M, C, H, W)`` in *physical* units.

    Each group's rollout is guarded in its own normalisation (packages may differ in statistics)
    before the groups are de-normalised and joined along the member axis.
    """
    streams, labels = [], []
    for g, x0 in zip(groups, states, strict=True):
        pkg = g.package
        t0 = np.repeat(np.asarray(init_times, dtype="datetime64[ns]"), g.members.size)
        first = [RolloutStep(0, t0, x0)] if include_initial else []
        steps = chain(first, rollout(g.forecaster, x0, t0, n_steps, pkg.time_step, pkg.latitudes, pkg.longitudes))
        labels.append(row_labels(init_times, g.members, ensemble))
        streams.append(guarded(steps, pkg.channels, max_abs, labels[-1]))
    n_i = init_times.size
    for per_group in zip(*streams, strict=True):
        parts = []
        for g, s, names in zip(groups, per_group, labels, strict=True):
            physical = g.package.denormalise(s.state)  # (B, C, H, W)
            # A finite normalised state can still overflow float32 in physical units: never write +-Inf.
            check_state(RolloutStep(s.lead, s.valid_times, physical), g.package.channels, None, names)
            parts.append(physical.reshape(n_i, g.members.size, *s.state.shape[1:]))
        # Groups hold contiguous, ascending blocks of members, so joining them keeps member order.
        yield EnsembleStep(per_group[0].lead, per_group[0].valid_times[:: groups[0].members.size],
                          torch.cat(parts, dim=1))
