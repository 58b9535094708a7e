"""Initial-condition perturbations have the statistics they claim: amplitude, independence, spectrum, breeding.

References are computed here by hand: sample moments with the grid's area weights, the spectrum of the
sampled fields from a forward spherical-harmonic transform, and the closed form of breeding on a linear model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_harmonics import RealSHT

from forecast.grids import Grid, area_weights
from forecast.rollout.config import EnsembleConfig
from forecast.rollout.perturbations import (
    BredVectors,
    PerturbationContext,
    RowRandom,
    SphericalGRF,
    WhiteNoise,
    member_seed,
    perturbation_from_dict,
)
from forecast.schema import EARTH_RADIUS

CHANNELS = ["z500", "msl"]
T0 = np.datetime64("2001-01-01T00", "ns")
DT = np.timedelta64(6, "h")


def context(grid: Grid, rows: int, step=None, analysis=None) -> PerturbationContext:
    return PerturbationContext(channels=CHANNELS, latitudes=grid.latitudes, longitudes=grid.longitudes,
                               grid_type=grid.type, start_times=np.full(rows, T0), time_step=DT, step=step,
                               analysis=analysis)


def seeds(rows: int, seed: int = 0) -> list[int]:
    return [member_seed(seed, T0, m) for m in range(rows)]


def weighted(x: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Area-weighted mean over the last two axes."""
    return (x * area_weights(lat)[:, None]).mean((-2, -1))


def test_white_noise_has_the_amplitude_per_channel_and_independent_members():
    grid = Grid("equiangular", 33, 64)
    p = WhiteNoise(amplitude={"z500": 0.3})
    x = p.sample(torch.zeros(40, 2, 33, 64), context(grid, 40), RowRandom(seeds(40))).numpy()
    assert x[:, 1].std() == 0.0  # a channel the mapping does not list is left alone
    assert x[:, 0].std() == pytest.approx(0.3, rel=0.01) and abs(x[:, 0].mean()) < 0.003
    corr = np.corrcoef(x[:, 0].reshape(40, -1))
    assert np.abs(corr[~np.eye(40, dtype=bool)]).max() < 0.1  # members are independent draws
    again = p.sample(torch.zeros(3, 2, 33, 64), context(grid, 3), RowRandom(seeds(40)[5:8])).numpy()
    np.testing.assert_array_equal(again, x[5:8])  # a member's draw depends on its seed only, not the batch


def test_member_seeds_differ_and_repeat():
    s = {member_seed(s, T0 + k * DT, m) for s in range(3) for k in range(3) for m in range(20)}
    assert len(s) == 180 and member_seed(1, T0, 2) == member_seed(1, T0, 2)


@pytest.mark.parametrize("grid_type", ["legendre-gauss", "equiangular"])
def test_spherical_grf_pointwise_std_is_the_amplitude_and_global_mean_zero(grid_type):
    grid = Grid(grid_type, 32, 64)
    p = SphericalGRF(amplitude=0.2, length_scale_km=1000.0, smoothness=1.5)
    x = p.sample(torch.zeros(64, 2, 32, 64), context(grid, 64), RowRandom(seeds(64))).double().numpy()
    var = weighted(x**2, grid.latitudes).mean(0)  # (C,) over the sphere and the samples
    np.testing.assert_allclose(np.sqrt(var), 0.2, rtol=0.05)
    # Degree 0 is left out: no perturbation moves a channel's global mean (exact with Gaussian quadrature).
    means = np.abs(weighted(x, grid.latitudes)).max()
    assert means < (1e-6 if grid_type == "legendre-gauss" else 0.01 * 0.2)


@pytest.mark.parametrize("smoothness,length_km", [(1.0, 2000.0), (2.5, 1500.0)])
def test_spherical_grf_has_the_matern_spectrum_slope(smoothness, length_km):
    """C_l ~ (kappa^2 + l(l+1))^-(nu+1): the log-log slope of the sampled spectrum against kappa^2 + l(l+1) is
    -(nu + 1), and at high degree C_l falls as l^(-2 nu - 2)."""
    grid = Grid("legendre-gauss", 32, 64)
    p = SphericalGRF(amplitude=1.0, length_scale_km=length_km, smoothness=smoothness)
    x = p.sample(torch.zeros(96, 1, 32, 64), context(grid, 96), RowRandom(seeds(96, seed=5))).double()
    sht = RealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss").double()
    c = sht(x[:, 0])  # (B, l, m)
    power = (c.abs() ** 2 * torch.where(torch.arange(32) > 0, 2.0, 1.0)).sum(-1).mean(0).numpy()  # (l,)
    ell = np.arange(32)
    c_l = power[1:] / (2 * ell[1:] + 1)  # per-coefficient variance, degrees 1..31
    assert power[0] < 1e-12  # no degree-0 power
    kappa = math.sqrt(2 * smoothness) * EARTH_RADIUS / (length_km * 1e3)
    slope = np.polyfit(np.log(kappa**2 + ell[1:] * (ell[1:] + 1)), np.log(c_l), 1)[0]
    assert slope == pytest.approx(-(smoothness + 1), rel=0.05)
    # Total power: the integral of f^2 over the unit sphere is 4 pi amplitude^2.
    assert power.sum() == pytest.approx(4 * math.pi, rel=0.05)
    assert p.describe(32, 64)["lmax"] == 32


def _affine_model(grid: Grid):
    """A linear model with a forcing: x -> g x + b(t), g largest at the equator."""
    g = torch.from_numpy(1.0 + 0.5 * np.cos(np.deg2rad(grid.latitudes))[:, None] ** 2 * np.ones(grid.nlon)).float()

    def step(x, times):
        hours = torch.from_numpy(((times - T0) / np.timedelta64(1, "h")).astype(np.float32))[:, None, None, None]
        return g * x + 0.01 * hours

    return g, step


@pytest.mark.parametrize("on", ["analyses", "initial_state"])
def test_bred_vectors_follow_the_closed_form_of_breeding_on_a_linear_model(on):
    """Each cycle multiplies the perturbation by g^cycle_steps (the forcing cancels in perturbed - control)
    and rescales it, so after K cycles p = a g^(K s) e / rms(g^(K s) e), e the seed noise."""
    grid = Grid("legendre-gauss", 16, 32)
    g, step = _affine_model(grid)
    analyses = {k: torch.randn(4, 2, 16, 32, generator=torch.Generator().manual_seed(k)) for k in range(1, 7)}
    p = BredVectors(amplitude=0.2, cycles=3, cycle_steps=2, on=on)
    state = torch.randn(4, 2, 16, 32)
    out = p.sample(state, context(grid, 4, step, lambda k: analyses[k]), RowRandom(seeds(4))).double().numpy()
    e = RowRandom(seeds(4)).normal(2, 16, 32).double().numpy()
    grown = g.double().numpy() ** 6 * e
    want = 0.2 * grown / np.sqrt(weighted(grown**2, grid.latitudes))[..., None, None]
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(weighted(out**2, grid.latitudes)), 0.2, rtol=1e-5)
    assert p.history_steps() == (6 if on == "analyses" else 0)


def test_registry_builds_configs_by_name_and_refuses_unknown_ones():
    ens = EnsembleConfig.model_validate({"members": 4, "perturbation": {"type": "spherical_grf", "amplitude": 0.1}})
    assert isinstance(ens.perturbation, SphericalGRF) and ens.perturbation.length_scale_km == 1000.0
    assert isinstance(perturbation_from_dict({"type": "bred_vectors"}), BredVectors)
    with pytest.raises(ValueError, match="known: .*white_noise"):
        perturbation_from_dict({"type": "lorenz"})
    with pytest.raises(ValueError, match=r"channels \['t850'\]"):
        WhiteNoise(amplitude={"t850": 0.1}).amplitudes(CHANNELS)
