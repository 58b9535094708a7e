"""Adaptive Fourier Neural Operator (FourCastNet; Guibas et al. 2022, Pathak et al. 2022).

Diagram (batch B, embedding D, data grid H x W, patch p_h x p_w, patch grid h x w)::

    x (B, C_in, H, W)
      -> pad to (h * p_h, w * p_w): latitude replicate, longitude circular
      -> patch embedding: conv, stride = patch       (B, D, h, w)
      -> + learned position embedding, channels last (B, h, w, D)
      -> depth x AFNO block: x + AFNO(norm(x)); x + MLP(norm(x))
      -> norm, per-patch linear head                  (B, h, w, p_h * p_w * C_out)
      -> pixel shuffle, crop the padding              (B, C_out, H, W)

The AFNO mixing is a 2-D real FFT over the patch grid (periodic: natural in longitude, an
approximation in latitude), a block-diagonal complex two-layer MLP on the channels at each
frequency, soft-shrinkage for sparsity, a cut-off keeping the lowest modes, and the inverse FFT.

Unlike the SFNO, the learned position embedding has one vector per patch, so the weights belong to
one grid size (and break the longitude shift equivariance the rest of the network has).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forecast.models.config import AFNOConfig
from forecast.models.layers import DropPath, activation_layer

__all__ = ["AFNO", "AFNOBlock", "AFNOFilter"]


def _complex_as_real_matrix(w: Tensor) -> Tensor:
    """Block-diagonal complex weights ``(2, blocks, in, out)`` (real, imaginary first) as the real matrices
    ``(blocks, 2 * in, 2 * out)`` acting on interleaved ``(re_0, im_0, re_1, im_1, ...)`` vectors.

    ``(a + ib)(c + id) = (ac - bd) + i(ad + bc)``: row pair ``(re_i, im_i)`` maps to column pair
    ``(re_o, im_o)`` through ``[[c, d], [-d, c]]``, so one real GEMM does the four real products.
    """
    re, im = w[0], w[1]  # (blocks, in, out)
    from_re = torch.stack([re, im], dim=-1)  # (blocks, in, out, 2): re_i -> (re_o, im_o)
    from_im = torch.stack([-im, re], dim=-1)  # im_i -> (re_o, im_o)
    k, n_in, n_out = re.shape
    return torch.stack([from_re, from_im], dim=2).reshape(k, 2 * n_in, 2 * n_out)


def _complex_as_real_bias(b: Tensor) -> Tensor:
    """Complex bias ``(2, blocks, out)`` as interleaved real ``(blocks, 1, 2 * out)``."""
    return torch.stack([b[0], b[1]], dim=-1).flatten(-2)[:, None, :]


class AFNOFilter(nn.Module):
    """AFNO token mixing in Fourier space: ``(B, h, w, D) -> (B, h, w, D)``.

    ``D`` splits into ``num_blocks`` blocks; each block has its own complex MLP, shared by all
    frequencies (the "adaptive" weight sharing). Modes beyond ``hard_thresholding_fraction`` of the
    spectrum in each direction are set to zero.
    """

    def __init__(
        self,
        channels: int,
        num_blocks: int,
        sparsity_threshold: float,
        hard_thresholding_fraction: float,
        hidden_size_factor: int = 1,
    ) -> None:
        super().__init__()
        if channels % num_blocks:
            raise ValueError(f"num_blocks={num_blocks} must divide channels={channels}")
        self.channels, self.num_blocks = channels, num_blocks
        self.block_size = channels // num_blocks
        self.sparsity_threshold = sparsity_threshold
        self.hard_thresholding_fraction = hard_thresholding_fraction
        hidden = self.block_size * hidden_size_factor
        scale = 0.02  # FourCastNet's init: starts close to a zero (pure residual) mixing
        # Leading 2: (real, imaginary) parts.
        self.w1 = nn.Parameter(scale * torch.randn(2, num_blocks, self.block_size, hidden))
        self.b1 = nn.Parameter(scale * torch.randn(2, num_blocks, hidden))
        self.w2 = nn.Parameter(scale * torch.randn(2, num_blocks, hidden, self.block_size))
        self.b2 = nn.Parameter(scale * torch.randn(2, num_blocks, self.block_size))

    def kept_modes(self, h: int, w: int) -> tuple[int, int]:
        """Kept ``(|k_lat|, k_lon)`` bounds (exclusive) for an ``h x w`` patch grid."""
        f = self.hard_thresholding_fraction
        return max(1, int(f * (h // 2 + 1))), max(1, int(f * (w // 2 + 1)))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        # Autocast off and float32 at least: half-precision cuFFT needs power-of-two sizes, and the
        # patch grid rarely has them (e.g. 19 x 36).
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self._mix(x.float() if dtype in (torch.float16, torch.bfloat16) else x)
        return y.to(dtype)

    def _mix(self, x: Tensor) -> Tensor:
        b, h, w, d = x.shape  # (B, h, w, D)
        k_lat, k_lon = self.kept_modes(h, w)
        # Longitude first, then latitude on the kept longitude modes only.
        xf = torch.fft.rfft(x, dim=2, norm="ortho")[:, :, :k_lon]  # (B, h, k_lon, D)
        xf = torch.fft.fft(xf, dim=1, norm="ortho")
        # Complex (N, D) as interleaved reals, block-major for one batched GEMM per layer:
        # (B, h, k_lon, D) -> (blocks, N, 2 * block_size), N = B * h * k_lon.
        n = b * h * k_lon
        z = torch.view_as_real(xf).reshape(n, self.num_blocks, 2 * self.block_size).transpose(0, 1)
        real = z.dtype
        z = torch.baddbmm(_complex_as_real_bias(self.b1.to(real)), z, _complex_as_real_matrix(self.w1.to(real)))
        z = torch.baddbmm(_complex_as_real_bias(self.b2.to(real)), torch.relu(z),
                          _complex_as_real_matrix(self.w2.to(real)))
        z = nn.functional.softshrink(z, self.sparsity_threshold)  # (blocks, N, 2 * block_size)
        yf = torch.view_as_complex(z.transpose(0, 1).reshape(b, h, k_lon, d, 2))  # (B, h, k_lon, D)
        if k_lat < h // 2 + 1:
            # Latitude modes |k| >= k_lat are cut; FFT index j holds frequency j or j - h.
            freq = torch.fft.fftfreq(h, d=1.0 / h, device=x.device).abs()
            yf = yf * (freq < k_lat).to(real)[None, :, None, None]
        yf = torch.fft.ifft(yf, dim=1, norm="ortho")
        # irfft zero-fills the longitude modes k_lon .. w // 2 that were cut.
        return torch.fft.irfft(yf, n=w, dim=2, norm="ortho")  # (B, h, w, D)


class AFNOBlock(nn.Module):
    """Pre-norm AFNO block on channels-last tokens: ``(B, h, w, D) -> (B, h, w, D)``."""

    def __init__(self, config: AFNOConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        d = config.embed_dim
        self.norm1 = nn.LayerNorm(d)
        self.filter = AFNOFilter(
            d,
            config.num_blocks,
            config.sparsity_threshold,
            config.hard_thresholding_fraction,
            config.hidden_size_factor,
        )
        self.norm2 = nn.LayerNorm(d)
        hidden = max(1, int(round(d * config.mlp_ratio)))
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden),
            activation_layer(config.activation),
            nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity(),
            nn.Linear(hidden, d),
            nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity(),
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.filter(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AFNO(nn.Module):
    """The AFNO forecaster: ``(B, C_in, nlat, nlon) -> (B, C_out, nlat, nlon)``.

    Grids whose size is not a multiple of the patch are padded (latitude: replicate, split between
    the poles; longitude: circular, to the east) and the output is cropped back.

    Args:
        config: architecture (see :class:`~forecast.models.config.AFNOConfig`).
        grid_type: accepted for the common interface; the AFNO treats every grid as a plain image.
        nlat, nlon: data grid size (fixes the size of the position embedding).
        in_channels, out_channels: assembled input channels and predicted channels.
    """

    def __init__(
        self, config: AFNOConfig, grid_type: str, nlat: int, nlon: int, in_channels: int, out_channels: int
    ) -> None:
        super().__init__()
        self.config = config
        self.grid = (grid_type, nlat, nlon)
        self.in_channels, self.out_channels = in_channels, out_channels
        ph, pw = config.patch_size
        self.patch_grid = (-(-nlat // ph), -(-nlon // pw))  # ceil: the padded grid in patches
        pad_lat = self.patch_grid[0] * ph - nlat
        self.pad_north, self.pad_south = pad_lat // 2, pad_lat - pad_lat // 2
        self.pad_east = self.patch_grid[1] * pw - nlon
        d = config.embed_dim

        self.patch_embed = nn.Conv2d(in_channels, d, kernel_size=(ph, pw), stride=(ph, pw))
        self.pos_embed = nn.Parameter(torch.zeros(1, *self.patch_grid, d))  # (1, h, w, D)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        n = config.depth
        rates = [config.drop_path * i / max(n - 1, 1) for i in range(n)]
        self.blocks = nn.ModuleList(AFNOBlock(config, drop_path=r) for r in rates)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, ph * pw * out_channels)
        self.apply(self._init_linear)
        # A small head starts near a zero output (the wrapper predicts residuals).
        nn.init.normal_(self.head.weight, std=0.1 / d**0.5)

    @staticmethod
    def _init_linear(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        _, nlat, nlon = self.grid
        if x.shape[1:] != (self.in_channels, nlat, nlon):
            raise ValueError(f"expected input (B, {self.in_channels}, {nlat}, {nlon}), got {tuple(x.shape)}")
        ph, pw = self.config.patch_size
        h, w = self.patch_grid
        if self.pad_east:
            x = nn.functional.pad(x, (0, self.pad_east, 0, 0), mode="circular")  # longitude wraps around
        if self.pad_north or self.pad_south:
            x = nn.functional.pad(x, (0, 0, self.pad_north, self.pad_south), mode="replicate")
        # x: (B, C_in, h * ph, w * pw)
        t = self.patch_embed(x).permute(0, 2, 3, 1)  # (B, D, h, w) -> (B, h, w, D)
        t = self.pos_drop(t + self.pos_embed)
        for block in self.blocks:
            t = block(t)  # (B, h, w, D)
        t = self.head(self.norm(t))  # (B, h, w, ph * pw * C_out)
        b = t.shape[0]
        t = t.reshape(b, h, w, ph, pw, self.out_channels)  # (B, h, w, ph, pw, C_out)
        t = t.permute(0, 5, 1, 3, 2, 4)  # (B, C_out, h, ph, w, pw)
        y = t.reshape(b, self.out_channels, h * ph, w * pw)  # (B, C_out, padded nlat, padded nlon)
        return y[:, :, self.pad_north : self.pad_north + nlat, :nlon]  # (B, C_out, nlat, nlon)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, patch_grid={self.patch_grid}, in={self.in_channels}, out={self.out_channels}"
