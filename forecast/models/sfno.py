"""Spherical Fourier Neural Operator (Bonev et al. 2023) on torch-harmonics' real SHT.

Diagram (shapes for batch B, embedding D, data grid H x W, internal grid h x w; channels-last inside,
so that every pointwise layer is one GEMM and the norms need no transposes)::

    x (B, C_in, H, W) -> permute                    (B, H, W, C_in)
      -> encoder: pointwise MLP                     (B, H, W, D)
      -> block 0: SHT(H x W) -> filter -> ISHT(h x w)   (B, h, w, D)   + pointwise MLP
      -> blocks 1..N-2 on the internal grid         (B, h, w, D)
      -> block N-1: SHT(h x w) -> filter -> ISHT(H x W) (B, H, W, D)
      -> [concat x if big_skip]                     (B, H, W, D + C_in)
      -> decoder: pointwise MLP, permute            (B, C_out, H, W)

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
from forecast.models.layers import (
    DriscollHealyFilter,
    DropPath,
    PointwiseMLP,
    SHTPair,
    _squeeze_conv_weights,
    norm_layer,
)

__all__ = ["SFNO", "SFNOBlock", "SpectralConvS2", "band_limit", "internal_grid"]

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

    Channels-last: ``(B, nlat_in, nlon_in, C_in) -> (B, nlat_out, nlon_out, C_out)``.
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

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        """The filtered ``x``; with ``skip`` ``(B, nlat_in, nlon_in, C_out)``, plus ``skip`` band-limited to
        the filter's truncation and moved to the output grid, at the cost of one more forward SHT only
        (both terms go through one inverse SHT)."""
        t = self.transforms
        with _full_precision(x) as x32:
            coeffs = self.filter(t.analysis(x32))  # (mmax, lmax, B, C_out) complex
            if skip is not None:
                with _full_precision(skip) as skip32:
                    coeffs = coeffs + t.analysis(skip32)
            y = t.synthesis(coeffs)  # (B, nlat_out, nlon_out, C_out)
        return y.to(x.dtype)

    def resample(self, x: Tensor) -> Tensor:
        """``x`` on the output grid, band-limited like the filter.

        ``(B, nlat_in, nlon_in, C) -> (B, nlat_out, nlon_out, C)``; the identity when the grids are the same.
        """
        return x if self.transforms.same_grid else band_limit(self.transforms, x)


def band_limit(transforms: SHTPair, x: Tensor) -> Tensor:
    """``x`` ``(B, nlat_in, nlon_in, C)`` truncated at the transforms' ``(lmax, mmax)``, on their output grid."""
    with _full_precision(x) as x32:
        y = transforms.synthesis(transforms.analysis(x32))
    return y.to(x.dtype)


class SFNOBlock(nn.Module):
    """One SFNO block, pre-norm residual form, channels-last: ``(B, h_in, w_in, D) -> (B, h_out, w_out, D)``.

    ``x = skip(x) + drop_path(spectral(norm1(x)))``, then ``x = x + drop_path(mlp(norm2(x)))``, where
    ``skip`` is the identity (resampled to the output grid when the grids differ), a linear map
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
            self.skip = nn.Linear(channels, channels)
        self.norm2 = norm_layer(config.norm, channels)
        hidden = max(1, int(round(channels * config.mlp_ratio)))
        self.mlp = PointwiseMLP(channels, hidden, channels, config.activation, config.dropout)
        self.mlp_skip = config.mlp_skip
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self._spectral_with_skip(x)  # (B, nlat_out, nlon_out, D)
        z = self.drop_path(self.mlp(self.norm2(y)))
        return y + z if self.mlp_skip else z

    def _spectral_with_skip(self, x: Tensor) -> Tensor:
        if self.spectral_skip == "none":
            return self.drop_path(self.spectral(self.norm1(x)))
        skip = self.skip(x) if self.spectral_skip == "linear" else x  # the un-normalised input
        if self.spectral.transforms.same_grid:
            return skip + self.drop_path(self.spectral(self.norm1(x)))
        if isinstance(self.drop_path, DropPath) and self.training:
            return self.spectral.resample(skip) + self.drop_path(self.spectral(self.norm1(x)))
        # Grid-changing block: filter and skip share one inverse transform (it is linear).
        return self.spectral(self.norm1(x), skip=skip)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        _squeeze_conv_weights(state_dict, prefix, ("skip",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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
        lmax_out = config.output_lmax
        self.output_filter = SHTPair(self.grid, self.grid, lmax_out, lmax_out) if lmax_out else None
        self._init_decoder()

    def _init_decoder(self) -> None:
        # A small last layer starts the network near a zero output, which suits the residual
        # (tendency) prediction the wrapper does, and keeps early training stable.
        last = self.decoder.fc2
        nn.init.normal_(last.weight, std=0.1 / math.sqrt(last.in_features))
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] != (self.in_channels, self.grid[1], self.grid[2]):
            raise ValueError(
                f"expected input (B, {self.in_channels}, {self.grid[1]}, {self.grid[2]}), got {tuple(x.shape)}"
            )
        xl = x.permute(0, 2, 3, 1)  # (B, nlat, nlon, C_in): channels-last inside the network
        h = self.encoder(xl)  # (B, nlat, nlon, D)
        for block in self.blocks:
            h = block(h)  # (B, internal grid, D) inside, (B, nlat, nlon, D) after the last
        if self.config.big_skip:
            h = torch.cat([h, xl], dim=-1)  # (B, nlat, nlon, D + C_in)
        out = self.decoder(h)  # (B, nlat, nlon, C_out)
        if self.output_filter is not None:
            out = band_limit(self.output_filter, out)
        return out.permute(0, 3, 1, 2).contiguous()  # (B, C_out, nlat, nlon)

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
