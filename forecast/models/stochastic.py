"""A stochastic SFNO (FourCastNet 3 style): latent noise fields as extra input channels, fresh at every step.

Each call of the network is one draw from its forecast distribution, so an ensemble is simply a batch
of repeated states (``forecast predict`` with ``ensemble: {members: N}``, no perturbation needed), and
training on an ensemble CRPS (``loss.type: crps``) teaches the network how much and which spread to make.
Randomness comes from torch's global generator: ``forecast predict`` seeds it per block of initial times,
training saves it in every checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forecast.models.config import StochasticSFNOConfig
from forecast.models.random_fields import SphericalNoise
from forecast.models.sfno import SFNO

__all__ = ["StochasticSFNO"]


class StochasticSFNO(nn.Module):
    """``(B, C_in, nlat, nlon) -> (B, C_out, nlat, nlon)``, one random member per row and call.

    The SFNO sees ``C_in + noise_channels`` inputs; with ``big_skip`` the noise also reaches its decoder
    directly, so the network can place spread at the finest scales as well as through the spectral blocks.
    """

    stochastic = True  # each call draws a member (forecast.train.objectives checks it for loss.type crps)

    def __init__(self, config: StochasticSFNOConfig, grid_type: str, nlat: int, nlon: int, in_channels: int,
                 out_channels: int) -> None:
        super().__init__()
        self.config = config
        self.noise = SphericalNoise(grid_type, nlat, nlon, config.noise_channels, config.noise_lmax or config.lmax,
                                    config.noise_length_scale_km, config.noise_smoothness,
                                    learned=config.noise_spectrum == "learned")
        self.sfno = SFNO(config, grid_type, nlat, nlon, in_channels + config.noise_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        z = self.noise(x.shape[0], x.dtype, x.device)  # (B, noise_channels, nlat, nlon)
        return self.sfno(torch.cat([x, z], dim=1))
