"""Noise on each training window's initial state (``loss.input_noise``): white or spatially correlated.

A model trained on ``x + noise -> y`` learns to pull off-manifold states back towards the data rather
than amplify the error, which is what keeps long rollouts on the data's attractor. White noise sits
almost entirely at the highest degrees a grid holds; the large-scale departures a free-running model
actually develops (a polar cap that stays warm after its first summer, a jet in the wrong place) are
exercised only by noise with power at low degrees: ``spherical_grf`` draws isotropic Gaussian random
fields with the Matérn-like spectrum of :func:`forecast.rollout.perturbations.matern_spectrum`.

Draws come from torch's global generator, whose state every checkpoint saves, so a resumed run sees
the same noise as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from forecast.config import StrictModel

__all__ = ["InputNoise", "InputNoiseConfig"]


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


class InputNoise:
    """Callable adding the configured noise to states ``(B, C, H, W)`` on a ``grid_type`` grid."""

    def __init__(self, config: InputNoiseConfig, grid_type: str, nlat: int, nlon: int) -> None:
        self.config = config
        self._isht = None
        if config.type == "spherical_grf" and config.amplitude > 0:
            from torch_harmonics import InverseRealSHT

            from forecast.rollout.perturbations import matern_spectrum
            from forecast.rollout.stability import spectral_truncation

            self.lmax = spectral_truncation(nlat, nlon)
            self._isht = InverseRealSHT(nlat, nlon, lmax=self.lmax, mmax=self.lmax, grid=grid_type).double()
            spectrum = matern_spectrum(self.lmax, config.length_scale_km, config.smoothness)
            degree, order = np.arange(self.lmax)[:, None], np.arange(self.lmax)[None, :]
            # sqrt(C_l) on the (l, m) triangle; m = 0 coefficients are real with variance C_l, m > 0
            # complex with E|c|^2 = C_l, so the field's pointwise variance is sum (2l+1) C_l / 4 pi = 1.
            self._scale = torch.from_numpy(np.sqrt(spectrum)[:, None] * (order <= degree))  # (l, m)

    def __bool__(self) -> bool:
        return self.config.amplitude > 0

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        amp = self.config.amplitude
        if amp == 0:
            return state
        if self._isht is None:
            return state + amp * torch.randn_like(state)
        b, c = state.shape[:2]
        z = torch.randn(b, c, self.lmax, self.lmax, 2, dtype=torch.float64)
        coeffs = torch.complex(z[..., 0], z[..., 1]) / math.sqrt(2.0)
        coeffs[..., 0] = z[..., 0, 0].to(coeffs.dtype)
        field = self._isht(coeffs * self._scale)  # (B, C, H, W), unit pointwise variance
        return state + (amp * field).to(device=state.device, dtype=state.dtype)
