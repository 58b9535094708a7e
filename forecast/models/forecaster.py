"""The one forecaster interface: a network wrapped with normalisation, static inputs and residual stepping.

``Forecaster.forward(state, forcing)`` maps the normalised state at ``t`` (and the forcings at ``t``)
to the normalised state at ``t + dt``. Training unrolls it; rollouts call it in a generator.
Persistence and climatology baselines are networks like any other behind the same wrapper.
"""

from __future__ import annotations

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

    def forward(self, state: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
        """``state`` ``(B, C, H, W)``, ``forcing`` ``(B, F, H, W)`` -> next state ``(B, C, H, W)``."""
        b = state.shape[0]
        static = self.static.unsqueeze(0).expand(b, -1, -1, -1).to(state.dtype)
        x = torch.cat([state, static, forcing.to(state.dtype)], dim=1)  # (B, C + S + F, H, W)
        out = self.network(x)
        if not (self.residual or self.conserving):
            return out
        if self.residual:
            increment = out * self.tendency_scale.to(out.dtype)
        else:
            increment = out - state
        if self.conserving:
            inc = increment.double()
            mean = (inc * self.area_weights).mean(dim=(-2, -1), keepdim=True)  # (B, C, 1, 1) global means
            increment = (inc - mean * self.conserve).to(out.dtype)
        return state + increment

    def unroll(self, state: torch.Tensor, forcings: torch.Tensor, n_steps: int) -> torch.Tensor:
        """Unroll with gradients: ``forcings`` ``(B, >= n_steps, F, H, W)`` -> states ``(B, n_steps, C, H, W)``."""
        out = []
        for k in range(n_steps):
            state = self(state, forcings[:, k])
            out.append(state)
        return torch.stack(out, dim=1)
