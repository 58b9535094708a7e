"""Spherical Fourier Neural Operator (Bonev et al. 2023) on torch-harmonics' real SHT.

Diagram (shapes for batch B, embedding D, data grid H x W, internal grid h x w)::

    x (B, C_in, H, W)
      -> encoder: 1x1 MLP                          (B, D, H, W)
      -> block 0: SHT(H x W) -> filter -> ISHT(h x w)   (B, D, h, w)   + pointwise MLP
      -> blocks 1..N-2 on the internal grid         (B, D, h, w)
      -> block N-1: SHT(h x w) -> filter -> ISHT(H x W) (B, D, H, W)
      -> [concat x if big_skip]                     (B, D + C_in, H, W)
      -> decoder: 1x1 MLP                           (B, C_out, H, W)

With ``scale_factor == 1`` the internal grid is the data grid itself. Learned parameters depend on
``embed_dim``, ``lmax`` and the channel counts only, never on the grid, so the weights of a model
trained on one grid load into the same architecture built for another (:meth:`SFNO.for_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from forecast.models.config import SFNOConfig
from forecast.models.layers import DriscollHealyFilter, DropPath, PointwiseMLP, SHTPair, norm_layer

__all__ = ["SFNO", "SFNOBlock", "SpectralConvS2", "internal_grid"]

GridSpec = tuple[str, int, int]  # (grid type, nlat, nlon)


def internal_grid(grid_type: str, nlat: int, nlon: int, scale_factor: int) -> GridSpec:
    """The grid the inner blocks work on: the data grid, or a Legendre-Gauss grid ``scale_factor`` coarser.

    Gauss-Legendre latitudes give the exact quadrature for the most degrees per row, so a coarse
    internal grid loses as little as a grid of that size can.
    """
    if scale_factor == 1:
        return (grid_type, nlat, nlon)
    # ceil: a 33-row (poles included) grid halves to 17 rows, a 32-row Gaussian grid to 16.
    return ("legendre-gauss", -(-nlat // scale_factor), nlon // scale_factor)


@contextmanager
def _full_precision(x: Tensor) -> Iterator[Tensor]:
    """Autocast off and ``x`` in float32 at least, for the transforms.

    Half-precision FFTs need power-of-two sizes on CUDA, and the Legendre sums lose too many digits
    in float16/bfloat16, so under mixed precision the spectral part runs in float32.
    """
    low = x.dtype in (torch.float16, torch.bfloat16)
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield x.float() if low else x


class SpectralConvS2(nn.Module):
    """Forward SHT -> Driscoll-Healy filter -> inverse SHT, possibly onto another grid.

    ``(B, C_in, nlat_in, nlon_in) -> (B, C_out, nlat_out, nlon_out)``.
    """

    def __init__(
        self,
        grid_in: GridSpec,
        grid_out: GridSpec,
        in_channels: int,
        out_channels: int,
        lmax: int,
        mmax: int,
        mixing: str = "dense",
        weights: str = "complex",
    ) -> None:
        super().__init__()
        self.transforms = SHTPair(grid_in, grid_out, lmax, mmax)
        self.filter = DriscollHealyFilter(in_channels, out_channels, lmax, mmax, mixing=mixing, weights=weights)

    def forward(self, x: Tensor) -> Tensor:
        with _full_precision(x) as x32:
            coeffs = self.transforms.forward_sht(x32)  # (B, C_in, lmax, lmax) complex
            y = self.transforms.inverse_sht(self.filter(coeffs))  # (B, C_out, nlat_out, nlon_out)
        return y.to(x.dtype)

    def resample(self, x: Tensor) -> Tensor:
        """``x`` on the output grid, band-limited like the filter.

        ``(B, C, nlat_in, nlon_in) -> (B, C, nlat_out, nlon_out)``; the identity when the grids are the same.
        """
        t = self.transforms
        if t.same_grid:
            return x
        with _full_precision(x) as x32:
            coeffs = t.forward_sht(x32)  # (B, C, lmax, lmax)
            # Drop orders >= mmax as the filter does, so the skip carries no more than the filtered path.
            coeffs = nn.functional.pad(coeffs[..., : t.mmax], (0, coeffs.shape[-1] - t.mmax))
            y = t.inverse_sht(coeffs)
        return y.to(x.dtype)


class SFNOBlock(nn.Module):
    """One SFNO block, pre-norm residual form: ``(B, D, nlat_in, nlon_in) -> (B, D, nlat_out, nlon_out)``.

    ``x = skip(x) + drop_path(spectral(norm1(x)))``, then ``x = x + drop_path(mlp(norm2(x)))``, where
    ``skip`` is the identity (resampled to the output grid when the grids differ), a 1x1 convolution
    of it, or nothing.
    """

    def __init__(
        self,
        grid_in: GridSpec,
        grid_out: GridSpec,
        channels: int,
        config: SFNOConfig,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(config.norm, channels)
        self.spectral = SpectralConvS2(
            grid_in,
            grid_out,
            channels,
            channels,
            config.lmax,
            config.mmax,
            mixing=config.filter_mixing,
            weights=config.filter_weights,
        )
        self.spectral_skip = config.spectral_skip
        if config.spectral_skip == "linear":
            self.skip = nn.Conv2d(channels, channels, 1)
        self.norm2 = norm_layer(config.norm, channels)
        hidden = max(1, int(round(channels * config.mlp_ratio)))
        self.mlp = PointwiseMLP(channels, hidden, channels, config.activation, config.dropout)
        self.mlp_skip = config.mlp_skip
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.drop_path(self.spectral(self.norm1(x)))  # (B, D, nlat_out, nlon_out)
        if self.spectral_skip != "none":
            skip = self.spectral.resample(x)  # the un-normalised input, on the output grid
            y = y + (self.skip(skip) if self.spectral_skip == "linear" else skip)
        z = self.drop_path(self.mlp(self.norm2(y)))
        return y + z if self.mlp_skip else z


class SFNO(nn.Module):
    """The Spherical Fourier Neural Operator forecaster: ``(B, C_in, nlat, nlon) -> (B, C_out, nlat, nlon)``.

    Args:
        config: architecture (see :class:`~forecast.models.config.SFNOConfig`).
        grid_type: ``"equiangular"`` (poles included) or ``"legendre-gauss"``, north first.
        nlat, nlon: data grid size.
        in_channels: channels of the assembled input (prognostic + static + time features).
        out_channels: channels predicted (the prognostic ones).
    """

    def __init__(
        self, config: SFNOConfig, grid_type: str, nlat: int, nlon: int, in_channels: int, out_channels: int
    ) -> None:
        super().__init__()
        self.config = config
        self.grid: GridSpec = (grid_type, nlat, nlon)
        self.in_channels, self.out_channels = in_channels, out_channels
        d = config.embed_dim
        self.encoder = PointwiseMLP(in_channels, d, d, config.activation)

        inner = internal_grid(grid_type, nlat, nlon, config.scale_factor)
        n = config.num_layers
        rates = [config.drop_path * i / max(n - 1, 1) for i in range(n)]
        self.blocks = nn.ModuleList(
            SFNOBlock(
                self.grid if i == 0 else inner,
                self.grid if i == n - 1 else inner,
                d,
                config,
                drop_path=rates[i],
            )
            for i in range(n)
        )
        self.internal_grid = inner if n > 1 else self.grid
        self.decoder = PointwiseMLP(d + (in_channels if config.big_skip else 0), d, out_channels, config.activation)
        self._init_decoder()

    def _init_decoder(self) -> None:
        # A small last layer starts the network near a zero output, which suits the residual
        # (tendency) prediction the wrapper does, and keeps early training stable.
        last = self.decoder.fc2
        nn.init.normal_(last.weight, std=0.1 / math.sqrt(last.in_channels))
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != (self.in_channels, self.grid[1], self.grid[2]):
            raise ValueError(
                f"expected input (B, {self.in_channels}, {self.grid[1]}, {self.grid[2]}), got {tuple(x.shape)}"
            )
        h = self.encoder(x)  # (B, D, nlat, nlon)
        for block in self.blocks:
            h = block(h)  # (B, D, internal grid) inside, (B, D, nlat, nlon) after the last
        if self.config.big_skip:
            h = torch.cat([h, x], dim=1)  # (B, D + C_in, nlat, nlon)
        return self.decoder(h)  # (B, C_out, nlat, nlon)

    def for_grid(self, grid_type: str, nlat: int, nlon: int) -> SFNO:
        """The same network (same config, channels and weights) built for another grid.

        Weights are shared by copy; the new model is on this model's device and dtype.
        """
        other = SFNO(self.config, grid_type, nlat, nlon, self.in_channels, self.out_channels)
        param = next(self.parameters())
        other.to(device=param.device, dtype=param.dtype)
        other.load_state_dict(self.state_dict())
        return other

    def extra_repr(self) -> str:
        return f"grid={self.grid}, internal_grid={self.internal_grid}, in={self.in_channels}, out={self.out_channels}"
