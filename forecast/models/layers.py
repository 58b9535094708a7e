"""Building blocks shared by the networks: spherical spectral filter, norms, pointwise MLPs, drop path.

All layers act on ``(batch, channels, nlat, nlon)`` tensors unless stated otherwise, and none of
their learned parameters depends on the grid size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_harmonics import InverseRealSHT, RealSHT

__all__ = [
    "ChannelLayerNorm",
    "DriscollHealyFilter",
    "DropPath",
    "PointwiseMLP",
    "SHTPair",
    "activation_layer",
    "max_resolvable_degree",
    "norm_layer",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by config name (``gelu``, ``relu``, ``silu``, ``tanh``)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels at each grid point of ``(B, C, H, W)``.

    Unlike ``nn.LayerNorm((H, W))`` its parameters do not depend on the grid, and being pointwise it
    commutes with any rotation of the sphere.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, H, W) -> (B, H, W, C) so that LayerNorm normalises the channels, then back.
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``layer_norm`` (channels per point), ``instance_norm`` (each channel over the grid) or ``none``."""
    if kind == "layer_norm":
        return ChannelLayerNorm(channels)
    if kind == "instance_norm":
        # No running statistics: they would be buffers tied to the training data's grid and mix.
        return nn.InstanceNorm2d(channels, eps=1e-6, affine=True, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole residual branch for a random subset of samples."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        # One Bernoulli draw per sample, broadcast over all other dimensions.
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class PointwiseMLP(nn.Module):
    """Two 1x1 convolutions with an activation between: an MLP applied at every grid point.

    ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, activation: str = "gelu", dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_channels, hidden_channels, 1)
        self.act = activation_layer(activation)
        self.fc2 = nn.Conv2d(hidden_channels, out_channels, 1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def max_resolvable_degree(grid_type: str, nlat: int, nlon: int) -> tuple[int, int]:
    """Largest (exclusive) ``(lmax, mmax)`` a grid can carry at all: ``(nlat, nlon // 2 + 1)``.

    Orders are limited by the longitude Nyquist frequency, degrees by the number of latitudes.
    These are hard limits, not accuracy limits: Gauss-Legendre quadrature is exact for all degrees
    below ``nlat``, while an equiangular grid (poles included) transforms exactly only up to about
    ``(nlat + 1) // 2`` (torch-harmonics' default there); beyond, high degrees alias.
    """
    if grid_type not in ("equiangular", "legendre-gauss"):
        raise ValueError(f"unknown grid type {grid_type!r}")
    return nlat, nlon // 2 + 1


class SHTPair(nn.Module):
    """Forward SHT on one grid and inverse SHT on another, both truncated at ``(lmax, mmax)``.

    ``forward_sht``: ``(..., nlat_in, nlon_in)`` real -> ``(..., lmax, lmax)`` complex;
    ``inverse_sht``: ``(..., lmax, lmax)`` complex -> ``(..., nlat_out, nlon_out)`` real.

    torch-harmonics 0.9 truncates triangularly (it sets both limits to ``min(lmax, mmax)``), so the
    transforms are built with ``lmax`` orders and the orders ``m >= mmax`` are dropped by the filter.
    Their matrices are non-persistent buffers: ``state_dict`` does not depend on the grid.
    """

    def __init__(
        self,
        grid_in: tuple[str, int, int],
        grid_out: tuple[str, int, int],
        lmax: int,
        mmax: int,
    ) -> None:
        super().__init__()
        for kind, nlat, nlon in (grid_in, grid_out):
            lmax_grid, mmax_grid = max_resolvable_degree(kind, nlat, nlon)
            if lmax > lmax_grid or mmax > mmax_grid:
                raise ValueError(
                    f"{kind} grid {nlat} x {nlon} cannot carry lmax={lmax}, mmax={mmax} "
                    f"(at most lmax={lmax_grid}, mmax={mmax_grid}); use a finer grid or smaller lmax/mmax"
                )
        self.grid_in, self.grid_out = grid_in, grid_out
        self.lmax, self.mmax = lmax, mmax
        # lmax and mmax are passed explicitly: the library default depends on the grid and version.
        # The matrices stay float64 until the model is cast (the SHT casts them to the input's dtype
        # on the fly), so a float64 model transforms to float64 accuracy.
        self.forward_sht = RealSHT(grid_in[1], grid_in[2], lmax=lmax, mmax=lmax, grid=grid_in[0])
        self.inverse_sht = InverseRealSHT(grid_out[1], grid_out[2], lmax=lmax, mmax=lmax, grid=grid_out[0])
        if (self.forward_sht.lmax, self.forward_sht.mmax) != (lmax, lmax):  # pragma: no cover - library guard
            raise RuntimeError("torch-harmonics changed the requested truncation; check its truncate_sht")

    @property
    def same_grid(self) -> bool:
        return self.grid_in == self.grid_out

    def extra_repr(self) -> str:
        return f"in={self.grid_in}, out={self.grid_out}, lmax={self.lmax}, mmax={self.mmax}"


class DriscollHealyFilter(nn.Module):
    """Spherical convolution in spectral space: ``y_lm = sum_i w[i, o, l] x_lm`` for every order m.

    ``(B, C_in, lmax, lmax)`` complex -> ``(B, C_out, lmax, lmax)`` complex (orders ``m >= mmax`` are 0).

    The weights depend on the degree ``l`` only (the Driscoll-Healy convolution theorem), so the filter
    maps each degree-``l`` subspace into itself. With real weights it is the spectral form of
    convolution with a zonal kernel and commutes with every rotation; complex weights add a per-degree
    longitudinal phase shift (a rotation about the polar axis), which still commutes with longitude
    shifts. ``mixing="diagonal"`` keeps one weight per channel (``C_in == C_out``) instead of a matrix.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lmax: int,
        mmax: int,
        mixing: str = "dense",
        weights: str = "complex",
    ) -> None:
        super().__init__()
        if mixing not in ("dense", "diagonal"):
            raise ValueError(f"unknown filter mixing {mixing!r}")
        if weights not in ("complex", "real"):
            raise ValueError(f"unknown filter weights {weights!r}")
        if mixing == "diagonal" and in_channels != out_channels:
            raise ValueError("a diagonal filter needs as many output as input channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lmax, self.mmax = lmax, mmax
        self.mixing, self.complex_weights = mixing, weights == "complex"
        channel_shape = (in_channels, out_channels) if mixing == "dense" else (in_channels,)
        # Complex weights are stored as a trailing (real, imag) pair: optimisers, DDP and checkpoints
        # then only ever see real tensors.
        shape = channel_shape + (lmax,) + ((2,) if self.complex_weights else ())
        # Variance 1/C_in (dense) or 1 (diagonal) keeps the orthonormal SHT's coefficient variance.
        var = 1.0 / in_channels if mixing == "dense" else 1.0
        if self.complex_weights:
            var /= 2.0
        self.weight = nn.Parameter(torch.randn(shape) * math.sqrt(var))

    def forward(self, coeffs: Tensor) -> Tensor:
        b, c, nl, nm = coeffs.shape  # (B, C_in, lmax, orders)
        if c != self.in_channels or nl != self.lmax:
            raise ValueError(
                f"expected (B, {self.in_channels}, {self.lmax}, m) coefficients, got {tuple(coeffs.shape)}"
            )
        x = coeffs[..., : self.mmax]  # (B, C_in, lmax, mmax)
        w = self.weight.to(x.real.dtype)  # float32 for half-precision models: no complex bfloat16
        w = torch.view_as_complex(w) if self.complex_weights else w
        # One weight for all orders m of a degree l: each degree maps into itself (Driscoll-Healy).
        if self.mixing == "dense":
            equation = "bilm,iol->bolm"
        else:
            equation = "bilm,il->bilm"
        if self.complex_weights:
            y = torch.einsum(equation, x, w)
        else:
            # Real weights act on the real and imaginary parts alike (no complex copy of the weights).
            y = torch.complex(torch.einsum(equation, x.real, w), torch.einsum(equation, x.imag, w))
        # Orders mmax..lmax-1 back as zeros, for the inverse transform's (lmax, lmax) layout.
        return nn.functional.pad(y, (0, nm - self.mmax))  # (B, C_out, lmax, orders)

    def extra_repr(self) -> str:
        kind = "complex" if self.complex_weights else "real"
        return f"{self.in_channels} -> {self.out_channels}, lmax={self.lmax}, mmax={self.mmax}, {self.mixing}, {kind}"
