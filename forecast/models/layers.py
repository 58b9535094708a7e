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
    "Dropout",
    "PointwiseMLP",
    "SHTPair",
    "activation_layer",
    "max_resolvable_degree",
    "norm_layer",
    "real_dft_matrix",
    "real_idft_matrix",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by config name (``gelu``, ``relu``, ``silu``, ``tanh``)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels at each grid point of a channels-last ``(B, H, W, C)`` tensor.

    Unlike ``nn.LayerNorm((H, W))`` its parameters do not depend on the grid, and being pointwise it
    commutes with any rotation of the sphere. (A wrapper, so that checkpoints keep the key ``norm.weight``.)
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class ChannelsLastInstanceNorm(nn.Module):
    """Each channel normalised over the grid, with an affine map: ``nn.InstanceNorm2d(affine=True)``
    for channels-last ``(B, H, W, C)`` tensors (same parameter names, no running statistics)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        var, mean = torch.var_mean(x, dim=(1, 2), keepdim=True, correction=0)  # (B, 1, 1, C)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``layer_norm`` (channels per point), ``instance_norm`` (each channel over the grid) or ``none``,
    for channels-last ``(B, H, W, C)`` tensors."""
    if kind == "layer_norm":
        return ChannelLayerNorm(channels)
    if kind == "instance_norm":
        # No running statistics: they would be buffers tied to the training data's grid and mix.
        return ChannelsLastInstanceNorm(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class Dropout(nn.Module):
    """``nn.Dropout`` (same scaling, ``rate`` as its ``p``) whose mask is ``rand_like(x) >= rate``.

    torch's CPU Bernoulli sampler, behind ``nn.Dropout``, draws element by element: on 2 cores it was half of
    a DYffusion sample (dropout stays on at inference there); a thresholded uniform draw measured 1.8x faster.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        return x * self.keep_mask(x) / (1.0 - self.rate)

    def keep_mask(self, x: Tensor) -> Tensor:
        """Where ``x`` is kept: independently at every element."""
        return torch.rand_like(x) >= self.rate

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class DropPath(Dropout):
    """Stochastic depth: in training, zero a whole residual branch for a random subset of samples."""

    def keep_mask(self, x: Tensor) -> Tensor:
        # One Bernoulli draw per sample, broadcast over all other dimensions.
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(1.0 - self.rate)


def _squeeze_conv_weights(state_dict: dict, prefix: str, names: tuple[str, ...]) -> None:
    """Accept checkpoints written when the pointwise layers were 1x1 convolutions: ``(O, C, 1, 1)`` -> ``(O, C)``."""
    for name in names:
        key = prefix + name + ".weight"
        w = state_dict.get(key)
        if w is not None and w.ndim == 4 and w.shape[-2:] == (1, 1):
            state_dict[key] = w[..., 0, 0]


class PointwiseMLP(nn.Module):
    """Two linear maps of the channels with an activation between: an MLP applied at every grid point.

    Channels-last: ``(..., C_in) -> (..., C_out)``, e.g. ``(B, H, W, C)``. On ``(B, H, W, C)`` each
    layer is one GEMM of ``B*H*W`` rows, several times faster on a CPU than the same weights as a 1x1
    convolution over ``(B, C, H, W)``, forward and backward.
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, activation: str = "gelu", dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.act = activation_layer(activation)
        self.fc2 = nn.Linear(hidden_channels, out_channels)
        self.drop = Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        _squeeze_conv_weights(state_dict, prefix, ("fc1", "fc2"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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


def real_dft_matrix(nlon: int, mmax: int) -> Tensor:
    """The truncated forward real DFT of ``nlon`` samples as a float64 matrix ``(2 mmax, nlon)``.

    Rows ``0..mmax-1`` give the real parts and rows ``mmax..2 mmax-1`` the imaginary parts of
    ``X_m = (1 / nlon) sum_n x_n exp(-2 pi i m n / nlon)``: ``torch.fft.rfft(x, norm="forward")[:mmax]``.
    """
    m, n = torch.arange(mmax, dtype=torch.float64), torch.arange(nlon, dtype=torch.float64)
    angle = 2.0 * math.pi / nlon * torch.outer(m, n)
    return torch.cat([torch.cos(angle), -torch.sin(angle)]) / nlon


def real_idft_matrix(nlon: int, mmax: int) -> Tensor:
    """The inverse of :func:`real_dft_matrix` for a real signal: a float64 matrix ``(nlon, 2 mmax)``.

    ``x_n = sum_m c_m (Re X_m cos(2 pi m n / nlon) - Im X_m sin(2 pi m n / nlon))`` with ``c_0 = 1``, ``c_m = 2``
    and ``c = 1`` at the Nyquist order: ``torch.fft.irfft(X, n=nlon, norm="forward")`` of the orders
    ``m < mmax``. The imaginary parts of orders 0 and nlon/2 meet sin = 0, so they are ignored as a real
    field's spectrum requires.
    """
    m = torch.arange(mmax, dtype=torch.float64)
    weight = torch.where((m == 0) | (2 * m == nlon), 1.0, 2.0)
    angle = 2.0 * math.pi / nlon * torch.outer(torch.arange(nlon, dtype=torch.float64), m)
    return torch.cat([torch.cos(angle) * weight, -torch.sin(angle) * weight], dim=1)


class SHTPair(nn.Module):
    """Forward SHT on one grid and inverse SHT on another, truncated at degrees ``l < lmax`` and orders
    ``m < mmax``, on channels-last tensors, in the layout the spectral filter contracts:

    ``analysis``: ``(B, nlat_in, nlon_in, C)`` real -> ``(mmax, lmax, B, C)`` complex;
    ``synthesis``: ``(mmax, lmax, B, C)`` complex -> ``(B, nlat_out, nlon_out, C)`` real.

    Both are torch-harmonics' transforms (its Legendre matrices and FFT conventions, orthonormal,
    Condon-Shortley phase), computed differently: the longitude transform is a truncated real DFT done
    as a matrix product (only orders ``m < mmax`` are ever formed, and channels-last data needs no
    transpose), and the Legendre sums of all batch and channel columns, real and imaginary parts
    together, are one batched matrix product per order ``m``. The matrices are non-persistent buffers
    (``state_dict`` does not depend on the grid); they are kept in float64 and cast once when the
    module is cast, so a float32 model does not cast them on every call and a float64 model still
    transforms to float64 accuracy.
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
        # torch-harmonics 0.9 truncates triangularly (both limits min(lmax, mmax)), so the transforms are
        # built with lmax orders and only the first mmax are kept.
        sht = RealSHT(grid_in[1], grid_in[2], lmax=lmax, mmax=lmax, grid=grid_in[0])
        isht = InverseRealSHT(grid_out[1], grid_out[2], lmax=lmax, mmax=lmax, grid=grid_out[0])
        if (sht.lmax, sht.mmax) != (lmax, lmax):  # pragma: no cover - library guard
            raise RuntimeError("torch-harmonics changed the requested truncation; check its truncate_sht")
        # float64 masters (plain attributes, moved but never cast by ``_apply``) and their working copies.
        self._masters = {
            "dft_matrix": real_dft_matrix(grid_in[2], mmax),  # (2 mmax, nlon_in)
            "analysis_matrix": sht.weights[:mmax].double().contiguous(),  # (mmax, lmax, nlat_in): quadrature x P_lm
            "synthesis_matrix": isht.pct[:mmax].double().contiguous(),  # (mmax, nlat_out, lmax): P_lm
            "idft_matrix": real_idft_matrix(grid_out[2], mmax),  # (nlon_out, 2 mmax)
        }
        for name, master in self._masters.items():
            self.register_buffer(name, master.float(), persistent=False)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001
        # Casting (``.float()``, ``.double()``, ``.to(dtype)``) makes each matrix from its float64 master,
        # so a model cast to float64 after building in float32 transforms with float64 matrices.
        out = super()._apply(fn, recurse)
        for name, master in self._masters.items():
            target = getattr(self, name)
            self._masters[name] = master.to(target.device)
            setattr(self, name, self._masters[name].to(target.dtype))
        return out

    @property
    def same_grid(self) -> bool:
        return self.grid_in == self.grid_out

    def analysis(self, x: Tensor) -> Tensor:
        """``(B, nlat_in, nlon_in, C)`` real -> ``(mmax, lmax, B, C)`` complex coefficients."""
        b, k, w, c = x.shape
        m = self.mmax
        # Longitude: the truncated real DFT as one GEMM per latitude row (no transposes of the full field,
        # which an FFT along a channels-last axis needs). (2M, W) @ (B*K, W, C) -> (B*K, 2M, C).
        f = torch.matmul(self.dft_matrix.to(x.dtype), x.reshape(b * k, w, c))
        # Latitude: (M, K, B*C*2) with orders outermost; one copy of the truncated modes only.
        f = f.view(b, k, 2, m, c).permute(3, 1, 0, 4, 2).reshape(m, k, b * c * 2)
        out = torch.bmm(self.analysis_matrix.to(f.dtype), f)  # (M, L, K) @ (M, K, B*C*2) -> (M, L, B*C*2)
        return torch.view_as_complex(out.view(m, self.lmax, b, c, 2))

    def synthesis(self, coeffs: Tensor) -> Tensor:
        """``(mmax, lmax, B, C)`` complex coefficients -> ``(B, nlat_out, nlon_out, C)`` real."""
        m, ell, b, c = coeffs.shape
        y = torch.view_as_real(coeffs).reshape(m, ell, b * c * 2)  # (M, L, B*C*2)
        y = torch.bmm(self.synthesis_matrix.to(y.dtype), y)  # (M, K, L) @ (M, L, B*C*2) -> (M, K, B*C*2)
        k = y.shape[1]
        y = y.view(m, k, b, c, 2).permute(2, 1, 4, 0, 3).reshape(b * k, 2 * m, c)  # (B*K, 2M, C)
        y = torch.matmul(self.idft_matrix.to(y.dtype), y)  # (W, 2M) @ (B*K, 2M, C) -> (B*K, W, C)
        return y.view(b, k, -1, c)

    def extra_repr(self) -> str:
        return f"in={self.grid_in}, out={self.grid_out}, lmax={self.lmax}, mmax={self.mmax}"


class DriscollHealyFilter(nn.Module):
    """Spherical convolution in spectral space: ``y_lm = sum_i w[i, o, l] x_lm`` for every order m.

    ``(mmax, lmax, B, C_in)`` complex -> ``(mmax, lmax, B, C_out)`` complex (the layout of
    :class:`SHTPair`).

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
        m, nl, b, c = coeffs.shape  # (M, L, B, C_in)
        if c != self.in_channels or nl != self.lmax or m != self.mmax:
            raise ValueError(
                f"expected ({self.mmax}, {self.lmax}, B, {self.in_channels}) coefficients, got {tuple(coeffs.shape)}"
            )
        w = self.weight.to(coeffs.real.dtype)  # float32 for half-precision models: no complex bfloat16
        if self.mixing == "diagonal":
            w = torch.view_as_complex(w) if self.complex_weights else w  # (C, L)
            return coeffs * w.transpose(0, 1)[:, None, :]  # (M, L, B, C) * (L, 1, C)
        # One C_in x C_out matrix per degree l for all orders m: a batched product over l.
        x = coeffs.transpose(0, 1).reshape(nl, m * b, c)  # (L, M*B, C_in)
        if self.complex_weights:
            w = torch.view_as_complex(w.permute(2, 0, 1, 3).contiguous())  # (L, C_in, C_out)
            y = torch.bmm(x, w)
        else:
            # Real weights act on the real and imaginary parts alike: one real product of both.
            xr = torch.view_as_real(x).transpose(-1, -2).reshape(nl, m * b * 2, c)  # (L, M*B*2, C_in)
            y = torch.view_as_complex(
                torch.bmm(xr, w.permute(2, 0, 1)).view(nl, m * b, 2, -1).transpose(-1, -2).contiguous()
            )
        return y.view(nl, m, b, self.out_channels).transpose(0, 1)  # (M, L, B, C_out)

    def extra_repr(self) -> str:
        kind = "complex" if self.complex_weights else "real"
        return f"{self.in_channels} -> {self.out_channels}, lmax={self.lmax}, mmax={self.mmax}, {self.mixing}, {kind}"
