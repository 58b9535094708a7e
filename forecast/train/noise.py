"""Noise on each training window's initial state (``loss.input_noise``): white or spatially correlated.

A model trained on ``x + noise -> y`` learns to pull off-manifold states back towards the data rather
than amplify the error, which is what keeps long rollouts on the data's attractor. White noise sits
almost entirely at the highest degrees a grid holds; the large-scale departures a free-running model
actually develops (a polar cap that stays warm after its first summer, a jet in the wrong place) are
exercised only by noise with power at low degrees: ``spherical_grf`` draws isotropic Gaussian random
fields with the Matérn-like spectrum of :func:`forecast.models.random_fields.matern_spectrum`.

Draws come from torch's global generator, whose state every checkpoint saves, so a resumed run sees
the same noise as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch

from forecast.models.random_fields import matern_spectrum, spectral_truncation, synthesise_grf
from forecast.train.config import InputNoiseConfig

__all__ = ["InputNoise"]


class InputNoise:
    """Callable adding the configured noise to states ``(B, C, H, W)`` on a ``grid_type`` grid."""

    def __init__(self, config: InputNoiseConfig, grid_type: str, nlat: int, nlon: int) -> None:
        self.config = config
        self._isht = None
        if config.type == "spherical_grf" and config.amplitude > 0:
            from torch_harmonics import InverseRealSHT  # pulls in torch's compiler stack: only when used

            self.lmax = spectral_truncation(nlat, nlon)
            self._isht = InverseRealSHT(nlat, nlon, lmax=self.lmax, mmax=self.lmax, grid=grid_type).double()
            spectrum = matern_spectrum(self.lmax, config.length_scale_km, config.smoothness)
            self._sqrt_cl = torch.from_numpy(np.sqrt(spectrum))[:, None]  # (l, 1)

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
        field = synthesise_grf(z, self._sqrt_cl, self._isht)  # (B, C, H, W), unit pointwise variance
        return state + (amp * field).to(device=state.device, dtype=state.dtype)
