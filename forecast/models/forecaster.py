"""The one forecaster interface: a network wrapped with normalisation, static inputs and residual stepping.

``Forecaster.forward(state, forcing)`` maps the normalised state at ``t`` (and the forcings at ``t``)
to the normalised state at ``t + dt``. Training unrolls it; rollouts call it in a generator.
Persistence and climatology baselines are networks like any other behind the same wrapper.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["Forecaster"]


class Forecaster(nn.Module):
    """One time step of a normalised state.

    Args:
        network: ``(B, C + S + F, H, W) -> (B, C, H, W)``.
        static: ``(S, H, W)`` static inputs already normalised (land-sea mask, orography,
            position encodings); kept as a buffer so a saved model carries them.
        tendency_scale: ``(C,)`` ratio ``tendency_std / std``. With ``residual`` the network predicts
            the tendency in units of its own standard deviation, which keeps its output O(1) for
            channels whose 6-hour change is a small fraction of their variability.
        residual: predict ``x(t+dt) - x(t)`` instead of ``x(t+dt)``.
        conserve: ``(C,)`` bool, channels whose area-weighted global mean every step keeps exactly.
        area_weights: ``(H,)`` cell areas of the latitudes (any scale), for those global means.
    """

    def __init__(self, network: nn.Module, static: torch.Tensor, tendency_scale: torch.Tensor, residual: bool = True,
                 conserve: torch.Tensor | None = None, area_weights: torch.Tensor | None = None):
        super().__init__()
        self.network = network
        self.residual = residual
        self.register_buffer("static", static.float())
        self.register_buffer("tendency_scale", tendency_scale.float().reshape(1, -1, 1, 1))
        # Channels whose area-weighted global mean a step leaves unchanged (conserved quantities, e.g. the
        # mass of a shallow-water layer): the mean of their increment is removed, in float64 so that
        # ten years of steps do not accumulate float32 rounding of the mean.
        mask = torch.zeros(tendency_scale.numel()) if conserve is None else conserve.reshape(-1)
        self.register_buffer("conserve", mask.double().reshape(1, -1, 1, 1), persistent=False)
        h = static.shape[-2]
        w = torch.ones(h) if area_weights is None else torch.as_tensor(area_weights)
        self.register_buffer("area_weights", (w.double() / w.double().mean()).reshape(1, 1, -1, 1), persistent=False)
        self.conserving = bool(mask.any())

    @property
    def horizon(self) -> int:
        """Model steps one call of the network forecasts (1; ``h`` for a DYffusion network)."""
        return int(getattr(self.network, "horizon", 1))

    def context(self, state: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
        """Static fields and ``forcing`` ``(B, F, H, W)`` for a batch of ``state``: ``(B, S + F, H, W)``."""
        static = self.static.unsqueeze(0).expand(state.shape[0], -1, -1, -1).to(state.dtype)
        return torch.cat([static, forcing.to(state.dtype)], dim=1)

    def forward(self, state: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
        """``state`` ``(B, C, H, W)``, ``forcing`` ``(B, F, H, W)`` -> next state ``(B, C, H, W)``.

        A network forecasting several steps per call gives the first step of a sample here."""
        if self.horizon > 1:
            return self.sample_block(state, forcing)[:, 0]
        x = torch.cat([state, self.context(state, forcing)], dim=1)  # (B, C + S + F, H, W)
        out = self.network(x)
        if not (self.residual or self.conserving):
            return out
        if self.residual:
            increment = out * self.tendency_scale.to(out.dtype)
        else:
            increment = out - state
        return state + self._conserved(increment)

    def _conserved(self, increment: torch.Tensor) -> torch.Tensor:
        """``increment`` ``(B, ..., C, H, W)`` with the global mean of the conserved channels removed."""
        if not self.conserving:
            return increment
        inc = increment.double()
        mean = (inc * self.area_weights).mean(dim=(-2, -1), keepdim=True)  # (B, ..., C, 1, 1) global means
        return (inc - mean * self.conserve).to(increment.dtype)

    def sample_block(self, state: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
        """The next ``horizon`` states ``(B, h, C, H, W)`` from ``state`` ``(B, C, H, W)`` and the forcings at its
        time ``(B, F, H, W)``: one step for one-step networks, one sample of a multi-step network."""
        if self.horizon == 1:
            return self(state, forcing)[:, None]
        scale = self.tendency_scale.to(state.dtype)
        block = self.network.sample(state, self.context(state, forcing), scale)  # (B, h, C, H, W)
        return state[:, None] + self._conserved(block - state[:, None])

    def iterate(self, state: torch.Tensor, forcings: torch.Tensor, n_steps: int) -> Iterator[torch.Tensor]:
        """The states ``(B, C, H, W)`` after each of ``n_steps`` steps; ``forcings`` ``(B, >= n_steps, F, H, W)``
        holds the forcings at the time each step starts from (a multi-step network reads those at the start
        of each of its samples)."""
        k = 0
        while k < n_steps:
            block = self.sample_block(state, forcings[:, k])
            for j in range(min(block.shape[1], n_steps - k)):
                yield block[:, j]
            state, k = block[:, -1], k + block.shape[1]

    def unroll(self, state: torch.Tensor, forcings: torch.Tensor, n_steps: int) -> torch.Tensor:
        """Unroll with gradients: ``forcings`` ``(B, >= n_steps, F, H, W)`` -> states ``(B, n_steps, C, H, W)``."""
        return torch.stack(list(self.iterate(state, forcings, n_steps)), dim=1)
