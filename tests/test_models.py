"""The forecast networks: shapes, parameter counts, symmetries, resolution transfer, trainability, baselines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import torch_harmonics as th
from pydantic import TypeAdapter, ValidationError
from torch import nn

from forecast.config import ConfigError, dump_config, load_config
from forecast.models import (
    AFNO,
    SFNO,
    AFNOConfig,
    Climatology,
    ClimatologyConfig,
    ModelConfig,
    ModelConfigFile,
    Persistence,
    PersistenceConfig,
    SFNOConfig,
    build_model,
    count_parameters,
    load_model_config,
    registered_models,
)
from forecast.models.sfno import SpectralConvS2

MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "models"
GRIDS = [("equiangular", 33, 64), ("legendre-gauss", 32, 64), ("equiangular", 73, 144)]


def tiny_sfno(**kw) -> SFNOConfig:
    return SFNOConfig(**{"embed_dim": 8, "num_layers": 3, "lmax": 12, "mmax": 12, **kw})


def tiny_afno(**kw) -> AFNOConfig:
    return AFNOConfig(**{"embed_dim": 16, "depth": 2, "num_blocks": 4, "patch_size": (4, 4), "mlp_ratio": 2.0, **kw})


def band_limited(grid: str, nlat: int, nlon: int, coeffs: torch.Tensor) -> torch.Tensor:
    """The field with SH coefficients ``coeffs (..., L, L)`` sampled on a grid: ``(..., nlat, nlon)``."""
    lmax = coeffs.shape[-1]
    return th.InverseRealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid).to(coeffs.real.dtype)(coeffs)


def channels_first(conv, x: torch.Tensor) -> torch.Tensor:
    """A channels-last layer applied to ``(B, C, H, W)``."""
    return conv(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def random_coeffs(*lead: int, lmax: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    """Random SH coefficients ``(*lead, lmax, lmax)`` of a real field: zero for m > l, real for m = 0."""
    re = torch.randn(*lead, lmax, lmax, dtype=dtype, generator=generator)
    im = torch.randn(*lead, lmax, lmax, dtype=dtype, generator=generator)
    c = torch.tril(torch.complex(re, im))  # index [l, m]: keep m <= l
    return torch.complex(c.real, c.imag * (torch.arange(lmax) > 0))


# ---------------------------------------------------------------- shapes and parameter counts


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}-{g[1]}x{g[2]}")
@pytest.mark.parametrize(
    "config",
    [tiny_sfno(), tiny_sfno(scale_factor=2, norm="instance_norm"), tiny_afno()],
    ids=["sfno", "sfno-s2", "afno"],
)
def test_output_shape(config, grid):
    model = build_model(config, *grid, in_channels=5, out_channels=3)
    y = model(torch.randn(2, 5, grid[1], grid[2]))
    assert y.shape == (2, 3, grid[1], grid[2])
    assert torch.isfinite(y).all()


def test_sfno_parameter_count_by_hand_and_independent_of_grid():
    c_in, c_out, d, lmax, layers = 5, 3, 8, 12, 3
    cfg = tiny_sfno(embed_dim=d, lmax=lmax, num_layers=layers, mlp_ratio=2.0)
    hidden = 2 * d
    encoder = (c_in * d + d) + (d * d + d)
    block = (
        2 * d  # norm1 (weight, bias)
        + d * d * lmax * 2  # Driscoll-Healy filter: one complex C x C matrix per degree
        + 2 * d  # norm2
        + (d * hidden + hidden)
        + (hidden * d + d)  # pointwise MLP
    )
    decoder = ((d + c_in) * d + d) + (d * c_out + c_out)  # big skip: input concatenated
    expected = encoder + layers * block + decoder
    counts = {count_parameters(build_model(cfg, *g, c_in, c_out)) for g in GRIDS + [("legendre-gauss", 64, 128)]}
    assert counts == {expected}
    filt = build_model(cfg, "legendre-gauss", 32, 64, c_in, c_out).blocks[0].spectral.filter
    assert filt.weight.shape == (d, d, lmax, 2)
    diagonal = build_model(tiny_sfno(filter_mixing="diagonal", filter_weights="real"), "legendre-gauss", 32, 64, 5, 3)
    assert diagonal.blocks[0].spectral.filter.weight.shape == (8, 12)


def test_afno_parameter_count_by_hand():
    c_in, c_out, d, nb, (ph, pw) = 5, 3, 16, 4, (4, 4)
    cfg = tiny_afno(embed_dim=d, num_blocks=nb, patch_size=(ph, pw), depth=2, mlp_ratio=2.0)
    model = build_model(cfg, "equiangular", 73, 144, c_in, c_out)
    h, w = 19, 36  # ceil(73 / 4), 144 / 4
    bs = d // nb
    block = 4 * d + 2 * (2 * nb * bs * bs) + 2 * nb * bs + 2 * nb * bs + (d * 2 * d + 2 * d) + (2 * d * d + d)
    expected = (c_in * ph * pw * d + d) + d * h * w + 2 * block + 2 * d + (d * ph * pw * c_out + ph * pw * c_out)
    assert count_parameters(model) == expected


def test_baselines_have_no_parameters():
    assert count_parameters(build_model(PersistenceConfig(), "equiangular", 33, 64, 5, 3)) == 0
    assert count_parameters(build_model(ClimatologyConfig(), "equiangular", 33, 64, 5, 3)) == 0


# ---------------------------------------------------------------- SFNO symmetries


@pytest.mark.parametrize("grid", GRIDS[:2], ids=lambda g: g[0])
@pytest.mark.parametrize("scale_factor", [1, 2])
def test_sfno_is_equivariant_to_longitude_roll(grid, scale_factor):
    torch.manual_seed(0)
    cfg = tiny_sfno(scale_factor=scale_factor, norm="layer_norm" if scale_factor == 1 else "instance_norm")
    model = build_model(cfg, *grid, 4, 2).double().eval()
    x = torch.randn(2, 4, grid[1], grid[2], dtype=torch.float64)
    k = 6  # a multiple of the coarse grid's spacing (2 points) too
    with torch.no_grad():
        rolled_out = model(x.roll(k, dims=-1))
        out_rolled = model(x).roll(k, dims=-1)
    torch.testing.assert_close(rolled_out, out_rolled, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("grid", GRIDS[:2], ids=lambda g: g[0])
def test_sfno_with_real_filter_commutes_with_a_rotation_off_the_polar_axis(grid):
    """Rotation by 180 deg about the axis through (0N, 0E): latitude -> -latitude, longitude -> -longitude.

    Both grids map onto themselves, so real per-degree filters (a true spherical convolution) make
    the whole network commute with it exactly; this is more than longitude-shift equivariance.
    """
    torch.manual_seed(1)
    model = build_model(tiny_sfno(filter_weights="real", norm="instance_norm"), *grid, 3, 2).double().eval()

    def rotate(f: torch.Tensor) -> torch.Tensor:
        return f.flip(-2).flip(-1).roll(1, dims=-1)  # index j -> -j mod nlon

    x = torch.randn(2, 3, grid[1], grid[2], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(rotate(x)), rotate(model(x)), atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("grid", GRIDS[:2], ids=lambda g: g[0])
@pytest.mark.parametrize("weights", ["complex", "real"])
def test_spectral_filter_keeps_each_degree(grid, weights):
    lmax = 10
    conv = SpectralConvS2(grid, grid, 2, 3, lmax, lmax, weights=weights).double()
    sht = th.RealSHT(grid[1], grid[2], lmax=lmax, mmax=lmax, grid=grid[0]).double()
    for ell, m in [(0, 0), (3, 0), (4, 2), (7, 5), (9, 9)]:
        c = torch.zeros(1, 2, lmax, lmax, dtype=torch.complex128)
        c[:, :, ell, m] = torch.tensor([1.0 + 0.5j, -0.3 + 1.0j]) if m else torch.tensor([1.0, -0.3])
        with torch.no_grad():
            out = sht(channels_first(conv, band_limited(grid[0], grid[1], grid[2], c)))  # (1, 3, lmax, lmax)
        energy = out.abs().square()
        kept = energy[:, :, ell, m].sum()
        energy[:, :, ell, m] = 0
        assert kept > 1e-6 and energy.sum() < 1e-20 * kept, (ell, m, energy.sum())


def test_real_filter_acts_alike_on_every_order_of_a_degree():
    lmax = 8
    grid = ("legendre-gauss", 16, 32)
    conv = SpectralConvS2(grid, grid, 1, 1, lmax, lmax, weights="real").double()
    c = random_coeffs(1, 1, lmax=lmax, generator=torch.Generator().manual_seed(2))
    sht = th.RealSHT(16, 32, lmax=lmax, mmax=lmax, grid=grid[0]).double()
    with torch.no_grad():
        ratio = sht(channels_first(conv, band_limited(*grid, c))) / torch.where(c.abs() > 0, c, 1)
    w = conv.filter.weight[0, 0].double()  # (lmax,) one gain per degree
    for ell in range(lmax):
        torch.testing.assert_close(ratio[0, 0, ell, : ell + 1].real, w[ell].expand(ell + 1), atol=1e-10, rtol=1e-8)


def test_filter_drops_orders_from_mmax():
    grid = ("legendre-gauss", 16, 32)
    conv = SpectralConvS2(grid, grid, 1, 1, 8, 4).double()
    c = random_coeffs(1, 1, lmax=8)
    out = th.RealSHT(16, 32, lmax=8, mmax=8, grid=grid[0]).double()(channels_first(conv, band_limited(*grid, c)))
    assert out[..., 4:].abs().max() < 1e-12
    assert out[..., :4].abs().max() > 1e-3


# ---------------------------------------------------------------- fast path vs torch-harmonics' plain transforms

TRANSFORM_PAIRS = [
    (("equiangular", 73, 144), ("legendre-gauss", 37, 72), 24, 24),
    (("legendre-gauss", 37, 72), ("equiangular", 73, 144), 24, 16),
    (("legendre-gauss", 32, 64), ("legendre-gauss", 32, 64), 32, 32),  # mmax up to the Nyquist order
    (("equiangular", 33, 64), ("equiangular", 33, 64), 12, 12),
]


@pytest.mark.parametrize("grid_in, grid_out, lmax, mmax", TRANSFORM_PAIRS, ids=lambda v: str(v))
def test_transforms_equal_torch_harmonics_sht(grid_in, grid_out, lmax, mmax):
    from forecast.models.layers import SHTPair

    pair = SHTPair(grid_in, grid_out, lmax, mmax).double()
    x = torch.randn(2, 3, grid_in[1], grid_in[2], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sht = th.RealSHT(grid_in[1], grid_in[2], lmax=lmax, mmax=lmax, grid=grid_in[0]).double()
    isht = th.InverseRealSHT(grid_out[1], grid_out[2], lmax=lmax, mmax=lmax, grid=grid_out[0]).double()
    plain = sht(x)[..., :mmax]  # (B, C, L, M)
    fast = pair.analysis(x.permute(0, 2, 3, 1))  # (M, L, B, C)
    torch.testing.assert_close(fast.permute(2, 3, 1, 0), plain, atol=1e-12, rtol=1e-10)
    # A spectrum with imaginary parts a real field cannot have (order 0, Nyquist): both ignore them alike.
    re, im = torch.randn(2, 2, 3, lmax, lmax, dtype=torch.float64)
    c = torch.complex(re, im)
    c[..., mmax:] = 0
    expected = isht(c)  # (B, C, H, W)
    got = pair.synthesis(c[..., :mmax].permute(3, 2, 0, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)


def test_transforms_cast_from_float64_masters():
    from forecast.models.layers import SHTPair

    pair = SHTPair(("equiangular", 73, 144), ("equiangular", 73, 144), 24, 24)
    assert pair.analysis_matrix.dtype == torch.float32  # cast once, not on every call
    pair.double()
    exact = th.RealSHT(73, 144, lmax=24, mmax=24, grid="equiangular").double().weights
    assert pair.analysis_matrix.dtype == torch.float64
    assert torch.equal(pair.analysis_matrix, exact)  # not float32 values widened


@pytest.mark.parametrize("weights", ["complex", "real"])
@pytest.mark.parametrize("mixing", ["dense", "diagonal"])
def test_spectral_conv_equals_plain_sht_einsum_isht(weights, mixing):
    """The fast spectral convolution against its definition written with torch-harmonics' modules."""
    grid_in, grid_out, lmax, mmax = ("equiangular", 73, 144), ("legendre-gauss", 37, 72), 24, 20
    conv = SpectralConvS2(grid_in, grid_out, 4, 4, lmax, mmax, mixing=mixing, weights=weights).double()
    x = torch.randn(2, 4, 73, 144, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = conv.filter.weight.detach()
    w = torch.view_as_complex(w) if weights == "complex" else w.to(torch.complex128)
    coeffs = th.RealSHT(73, 144, lmax=lmax, mmax=lmax, grid=grid_in[0]).double()(x)[..., :mmax]
    if mixing == "dense":
        y = torch.einsum("bilm,iol->bolm", coeffs, w)
    else:
        y = coeffs * w[None, :, :, None]
    y = nn.functional.pad(y, (0, lmax - mmax))
    expected = th.InverseRealSHT(37, 72, lmax=lmax, mmax=lmax, grid=grid_out[0]).double()(y)
    with torch.no_grad():
        torch.testing.assert_close(channels_first(conv, x), expected, atol=1e-12, rtol=1e-10)
        # The grid-changing skip shares the inverse transform: filter(x) + band-limited skip on the new grid.
        both = conv(x.permute(0, 2, 3, 1), skip=x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        torch.testing.assert_close(both, expected + channels_first(conv.resample, x), atol=1e-12, rtol=1e-10)


def test_sfno_loads_weights_saved_when_pointwise_layers_were_convolutions():
    model = build_model(tiny_sfno(spectral_skip="linear"), "legendre-gauss", 32, 64, 3, 2)
    old = {k: (v[..., None, None] if k.endswith(("fc1.weight", "fc2.weight", "skip.weight")) else v)
           for k, v in model.state_dict().items()}
    assert old["encoder.fc1.weight"].ndim == 4 and old["blocks.0.skip.weight"].ndim == 4
    again = build_model(tiny_sfno(spectral_skip="linear"), "legendre-gauss", 32, 64, 3, 2)
    again.load_state_dict(old)
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


# ---------------------------------------------------------------- SFNO across resolutions


def test_sfno_state_dict_holds_no_grid_sized_tensors():
    model = build_model(tiny_sfno(scale_factor=2), "equiangular", 73, 144, 4, 2)
    for name, tensor in model.state_dict().items():
        assert 73 not in tensor.shape and 144 not in tensor.shape and 37 not in tensor.shape, name


@pytest.mark.parametrize("scale_factor", [1, 2])
@pytest.mark.parametrize("target", [("legendre-gauss", 64, 128), ("equiangular", 73, 144)], ids=lambda g: g[0])
def test_sfno_weights_run_at_another_resolution_with_consistent_output(scale_factor, target):
    torch.manual_seed(3)
    coarse = build_model(tiny_sfno(scale_factor=scale_factor), "legendre-gauss", 32, 64, 3, 2).double().eval()
    fine = build_model(tiny_sfno(scale_factor=scale_factor), *target, 3, 2).double()
    fine.load_state_dict(coarse.state_dict())  # strict: same keys and shapes
    fine.eval()
    assert isinstance(coarse, SFNO)
    again = coarse.for_grid(*target)
    # The same smooth field (degrees < 6) sampled on both grids.
    c = random_coeffs(1, 3, lmax=6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y_coarse = coarse(band_limited("legendre-gauss", 32, 64, c))
        y_fine = fine(band_limited(*target, c))
        torch.testing.assert_close(again(band_limited(*target, c)), y_fine)
    # Compare the low degrees of the two outputs; they differ only by how each grid resolves the
    # (small) high-degree part the nonlinearities create.
    lmax = 8
    s_coarse = th.RealSHT(32, 64, lmax=lmax, mmax=lmax, grid="legendre-gauss").double()(y_coarse)
    s_fine = th.RealSHT(target[1], target[2], lmax=lmax, mmax=lmax, grid=target[0]).double()(y_fine)
    rel = (s_coarse - s_fine).abs().norm() / s_fine.abs().norm()
    assert rel < 0.02, rel


def test_sfno_refuses_a_grid_too_coarse_for_its_truncation():
    with pytest.raises(ValueError, match="cannot carry lmax=24"):
        build_model(tiny_sfno(lmax=24, mmax=24), "legendre-gauss", 16, 32, 3, 2)
    with pytest.raises(ValueError, match="cannot carry"):
        build_model(tiny_sfno(lmax=16, mmax=16, scale_factor=2), "legendre-gauss", 24, 48, 3, 2)


# ---------------------------------------------------------------- AFNO


def test_afno_pads_a_grid_that_the_patch_does_not_divide():
    model = build_model(tiny_afno(patch_size=(4, 4)), "equiangular", 73, 144, 3, 2)
    assert isinstance(model, AFNO)
    assert model.patch_grid == (19, 36) and (model.pad_north, model.pad_south, model.pad_east) == (1, 2, 0)
    assert model.pos_embed.shape == (1, 19, 36, 16)
    odd = build_model(tiny_afno(patch_size=(2, 4)), "equiangular", 33, 62, 3, 2)
    assert odd.patch_grid == (17, 16) and (odd.pad_north, odd.pad_south, odd.pad_east) == (0, 1, 2)
    x = torch.randn(1, 3, 33, 62, requires_grad=True)
    odd(x).square().sum().backward()
    assert (x.grad != 0).all()  # every grid point, edges included, reaches the output


def test_afno_hard_thresholding_removes_high_modes():
    from forecast.models.afno import AFNOFilter

    filt = AFNOFilter(8, 2, sparsity_threshold=0.0, hard_thresholding_fraction=0.5).double()
    assert filt.kept_modes(8, 16) == (2, 4)
    y = filt(torch.randn(3, 8, 16, 8, dtype=torch.float64))
    spec = torch.fft.rfft2(y, dim=(1, 2), norm="ortho")  # (3, 8, 9, 8)
    freq = torch.fft.fftfreq(8, d=1 / 8).abs()
    assert spec[:, freq >= 2].abs().max() < 1e-12
    assert spec[:, :, 4:].abs().max() < 1e-12
    assert spec[:, freq < 2, :4].abs().max() > 1e-6


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_afno_filter_equals_the_complex_block_mlp_written_out(fraction):
    """The real interleaved GEMMs equal FourCastNet's mixing in complex arithmetic: per block
    ``softshrink(W2 relu(W1 z + b1) + b2)`` with ReLU and soft-shrinkage on real and imaginary parts,
    on the kept modes of the 2-D real FFT, zero elsewhere."""
    from forecast.models.afno import AFNOFilter

    torch.manual_seed(0)
    filt = AFNOFilter(12, 3, sparsity_threshold=0.01, hard_thresholding_fraction=fraction,
                      hidden_size_factor=2).double()
    for p in filt.parameters():
        p.data.normal_(0.0, 0.5)
    x = torch.randn(2, 6, 10, 12, dtype=torch.float64)
    w1, b1 = torch.complex(filt.w1[0], filt.w1[1]), torch.complex(filt.b1[0], filt.b1[1])
    w2, b2 = torch.complex(filt.w2[0], filt.w2[1]), torch.complex(filt.b2[0], filt.b2[1])

    def cplx(f, z):
        return torch.complex(f(z.real), f(z.imag))

    zf = torch.fft.rfft2(x, dim=(1, 2), norm="ortho").reshape(2, 6, 6, 3, 4)  # (B, h, w//2+1, blocks, bs)
    hid = cplx(torch.relu, torch.einsum("...ki,kio->...ko", zf, w1) + b1)
    out = cplx(lambda t: nn.functional.softshrink(t, 0.01), torch.einsum("...ki,kio->...ko", hid, w2) + b2)
    out = out.reshape(2, 6, 6, 12)
    k_lat, k_lon = filt.kept_modes(6, 10)
    keep = (torch.fft.fftfreq(6, d=1 / 6).abs() < k_lat)[:, None] & (torch.arange(6) < k_lon)[None, :]
    expected = torch.fft.irfft2(out * keep[None, :, :, None], s=(6, 10), dim=(1, 2), norm="ortho")
    torch.testing.assert_close(filt(x), expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- trainability


@pytest.mark.parametrize(
    "config",
    [
        SFNOConfig(embed_dim=16, num_layers=2, lmax=8, mmax=8),
        tiny_afno(embed_dim=32, patch_size=(2, 2), sparsity_threshold=0.0),
    ],
    ids=["sfno", "afno"],
)
def test_tiny_model_overfits_one_batch(config):
    torch.manual_seed(0)
    model = build_model(config, "legendre-gauss", 16, 32, 3, 2)
    x = torch.randn(2, 3, 16, 32)
    y = torch.sin(2 * x[:, :2]) * x[:, 2:3]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = (model(x) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


# ---------------------------------------------------------------- baselines


def test_persistence_returns_the_prognostic_input_channels():
    x = torch.randn(2, 5, 33, 64)
    assert torch.equal(Persistence([3, 0])(x), x[:, [3, 0]])
    default = build_model(PersistenceConfig(), "equiangular", 33, 64, 5, 2)
    assert torch.equal(default(x), x[:, :2])
    picked = build_model(PersistenceConfig(prognostic_indices=[4, 1]), "equiangular", 33, 64, 5, 2)
    assert torch.equal(picked(x), x[:, [4, 1]])
    with pytest.raises(ValueError, match="prognostic_indices"):
        build_model(PersistenceConfig(prognostic_indices=[5]), "equiangular", 33, 64, 5, 1)


def test_climatology_returns_the_climatology():
    x = torch.randn(2, 5, 33, 64)
    per_sample = torch.randn(2, 3, 33, 64)
    model = build_model(ClimatologyConfig(), "equiangular", 33, 64, 5, 3)
    assert getattr(model, "requires_climatology", False)
    assert torch.equal(model(x, climatology=per_sample), per_sample)
    shared = torch.randn(3, 33, 64)
    assert torch.equal(model(x, climatology=shared), shared.expand(2, -1, -1, -1))
    with pytest.raises(ValueError, match="valid-time climatology"):
        model(x)
    with pytest.raises(ValueError, match="does not fit"):
        model(x, climatology=torch.randn(2, 4, 33, 64))
    fixed = Climatology(3, shared)
    assert torch.equal(fixed(x), shared.expand(2, -1, -1, -1))
    assert torch.equal(fixed(x.double()), shared.double().expand(2, -1, -1, -1))
    assert "default" in fixed.state_dict()


# ---------------------------------------------------------------- configs, registry, persistence


@pytest.mark.parametrize("path", sorted(MODEL_CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_config_loads_builds_and_round_trips(path, tmp_path):
    cfg = load_model_config(path)
    wrapped = load_config(ModelConfigFile, path)
    assert wrapped.root == cfg
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(wrapped))
    assert load_model_config(again) == cfg
    model = build_model(cfg, "legendre-gauss", 32, 64, 8, 6).eval()
    x = torch.randn(1, 8, 32, 64)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build_model(cfg, "legendre-gauss", 32, 64, 8, 6).eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_example_configs_exist():
    names = {p.name for p in MODEL_CONFIGS.glob("*.yaml")}
    assert {"sfno_small.yaml", "afno_small.yaml"} <= names


def test_config_union_is_strict_and_discriminated(tmp_path):
    adapter = TypeAdapter(ModelConfig)
    assert isinstance(adapter.validate_python({"type": "sfno", "lmax": 8, "mmax": 8}), SFNOConfig)
    assert isinstance(adapter.validate_python({"type": "afno"}), AFNOConfig)
    with pytest.raises(ValidationError, match="lmax"):
        adapter.validate_python({"type": "sfno"})  # truncation is always explicit
    with pytest.raises(ValidationError, match="mmax"):
        adapter.validate_python({"type": "sfno", "lmax": 8, "mmax": 9})
    with pytest.raises(ValidationError, match="num_blocks"):
        adapter.validate_python({"type": "afno", "embed_dim": 30, "num_blocks": 4})
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "unet"})
    bad = tmp_path / "bad.yaml"
    bad.write_text((MODEL_CONFIGS / "sfno_small.yaml").read_text() + "\nembed_dimm: 3\n")
    with pytest.raises(ConfigError, match="embed_dimm"):
        load_model_config(bad)
    cfg = load_model_config(MODEL_CONFIGS / "sfno_small.yaml", ["scale_factor=2", "lmax=12", "mmax=12"])
    assert (cfg.scale_factor, cfg.lmax) == (2, 12)


def test_registry_knows_every_config_type():
    assert set(registered_models()) == {"sfno", "sfno_stochastic", "dyffusion", "afno", "sfno_reference", "persistence",
                                        "climatology"}
    with pytest.raises(ValueError, match="grid type"):
        build_model(tiny_sfno(), "healpix", 32, 64, 3, 2)


# ---------------------------------------------------------------- devices and dtypes


def test_models_follow_the_input_dtype():
    for cfg in (tiny_sfno(scale_factor=2), tiny_afno()):
        model = build_model(cfg, "equiangular", 33, 64, 3, 2).double()
        assert model(torch.randn(1, 3, 33, 64, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("config", [tiny_sfno(scale_factor=2), tiny_afno()], ids=["sfno", "afno"])
def test_mixed_precision_runs_the_transforms_in_float32(config):
    torch.manual_seed(0)
    model = build_model(config, "equiangular", 73, 144, 3, 2)  # 72 / 36 / 19 points: no power of two
    x = torch.randn(2, 3, 73, 144)
    reference = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
        y.float().square().mean().backward()
    assert (y.float() - reference).norm() < 0.03 * reference.norm()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_models_run_on_cuda():
    x = torch.randn(2, 3, 33, 64, device="cuda")
    for cfg in (tiny_sfno(scale_factor=2), tiny_afno(), PersistenceConfig(), ClimatologyConfig()):
        model = build_model(cfg, "equiangular", 33, 64, 3, 2).cuda()
        kwargs = {"climatology": torch.randn(2, 33, 64, device="cuda")} if cfg.type == "climatology" else {}
        y = model(x, **kwargs)
        assert y.device.type == "cuda" and y.shape == (2, 2, 33, 64)
        if count_parameters(model):
            y.square().mean().backward()
        cpu = build_model(cfg, "equiangular", 33, 64, 3, 2)
        cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
        torch.testing.assert_close(
            cpu(x.cpu(), **{k: v.cpu() for k, v in kwargs.items()}), y.detach().cpu(), atol=1e-4, rtol=1e-4
        )


def test_output_lmax_band_limits_the_sfno_output():
    model = build_model(tiny_sfno(output_lmax=6), "legendre-gauss", 32, 64, 3, 2).double()
    x = torch.randn(2, 3, 32, 64, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
    c = th.RealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss").double()(y)  # (B, C, L, M)
    assert c[..., 6:, :].abs().max() < 1e-10 * c.abs().max() and c[..., 6:].abs().max() < 1e-10 * c.abs().max()
    assert c[..., :6, :6].abs().max() > 1e-3


def test_reference_sfno_is_torch_harmonics_own_with_our_truncation():
    from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

    from forecast.models import ReferenceSFNOConfig

    model = build_model(ReferenceSFNOConfig(embed_dim=8, num_layers=2, lmax=12, scale_factor=2),
                        "equiangular", 73, 144, 3, 2)
    assert isinstance(model, SphericalFourierNeuralOperator)
    assert (model.trans.lmax, model.trans.mmax) == (12, 12) and (model.trans.nlat, model.trans.nlon) == (37, 72)
    assert model(torch.randn(1, 3, 73, 144)).shape == (1, 2, 73, 144)
    with pytest.raises(ValueError, match="exceeds"):
        build_model(ReferenceSFNOConfig(lmax=40, scale_factor=2), "equiangular", 73, 144, 3, 2)
