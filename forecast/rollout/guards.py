"""Guards: consumers of a rollout that stop it when the state is no longer physical.

``guarded(steps, ...)`` passes each :class:`~forecast.rollout.generator.RolloutStep` through after
checking it, so a writer downstream only ever sees states that passed; the first bad step raises
:class:`RolloutDiverged` naming the step, its valid time, the channel and the batch row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from forecast.ingest.validate import fmt_time
from forecast.rollout.generator import RolloutStep

__all__ = ["RolloutDiverged", "check_state", "guarded"]


class RolloutDiverged(RuntimeError):
    """A rollout produced NaN/Inf or runaway values; ``step`` and ``valid_time`` say where."""

    def __init__(self, message: str, step: int, valid_time: np.datetime64):
        super().__init__(message)
        self.step = step
        self.valid_time = valid_time


def check_state(step: RolloutStep, channels: Sequence[str], max_abs: float | None,
                row_labels: Sequence[str] | None = None) -> None:
    """Raise :class:`RolloutDiverged` if ``step.state`` ``(B, C, H, W)`` (normalised) is non-finite or
    exceeds ``max_abs`` in absolute value anywhere."""
    x = step.state
    finite = bool(torch.isfinite(x).all())
    peak = float(x.abs().amax()) if finite else float("nan")
    if finite and (max_abs is None or peak <= max_abs):
        return
    # The slow path runs once, on failure: find the first offending (row, channel).
    bad = ~torch.isfinite(x) if not finite else x.abs() > max_abs  # (B, C, H, W)
    rows, chans = torch.nonzero(bad.flatten(2).any(-1), as_tuple=True)
    b, c = int(rows[0]), int(chans[0])
    what = (f"non-finite values (NaN/Inf) in {int(bad[b, c].sum())} grid point(s)" if not finite else
            f"|normalised value| {float(x[b, c].abs().amax()):.3g} > {max_abs:g} (a runaway state)")
    where = f" ({row_labels[b]})" if row_labels is not None else ""
    valid = step.valid_times[b]
    raise RolloutDiverged(f"rollout diverged at step {step.lead} (valid time {fmt_time(valid)}){where}: channel "
                          f"{channels[c]} has {what}; leads before step {step.lead} are kept", step.lead, valid)


def guarded(steps: Iterable[RolloutStep], channels: Sequence[str], max_abs: float | None,
            row_labels: Sequence[str] | None = None) -> Iterator[RolloutStep]:
    """Yield ``steps`` unchanged, raising :class:`RolloutDiverged` at the first bad one."""
    for step in steps:
        check_state(step, channels, max_abs, row_labels)
        yield step
