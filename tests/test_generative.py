"""Generative ensembles (issue 11): the CRPS-trained stochastic SFNO and Spherical DYffusion.

References: the CRPS of a Gaussian in closed form and the evaluation's sorted-member CRPS; DYffusion's cold
sampling on dynamics whose interpolation is known exactly; unit variance and the Matérn spectrum of the noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from forecast.data.store import open_training_store
from forecast.errors import InputError
from forecast.evaluate.ensembles import member_spectra
from forecast.evaluate.metrics import crps_pointwise
from forecast.models import build_model
from forecast.models.config import ModelConfigFile
from forecast.models.dyffusion import cold_sample, dropout_on
from forecast.models.random_fields import SphericalNoise, matern_spectrum
from forecast.products.io import open_product
from forecast.rollout.config import PredictConfig
from forecast.rollout.predict import run_predict
from forecast.rollout.stability import power_spectrum
from forecast.testing import evaluation_store, noisy_product, tiny_store
from forecast.train.config import TrainConfig
from forecast.train.loop import build_forecaster, train
from forecast.train.losses import AreaWeightedCRPS
from forecast.train.objectives import build_objective

SFNO = {"embed_dim": 8, "num_layers": 2, "lmax": 8, "mmax": 8}
STOCHASTIC = {"type": "sfno_stochastic", **SFNO, "noise_channels": 2, "noise_length_scale_km": 2000.0}
DYFFUSION = {"type": "dyffusion", "horizon": 3, "interpolator": {**SFNO, "dropout": 0.2}, "forecaster": SFNO}


def model(tree: dict):
    return ModelConfigFile.model_validate(tree).root


# -- noise and loss ------------------------------------------------------------------------------------


def test_spherical_noise_has_unit_variance_the_matern_spectrum_and_learns_its_amplitude():
    from torch_harmonics import RealSHT

    torch.manual_seed(0)
    noise = SphericalNoise("equiangular", 33, 64, channels=2, lmax=32, length_scale_km=1500, smoothness=1.5)
    with torch.no_grad():
        fields = noise(256).double()  # (256, 2, 33, 64)
    w = torch.from_numpy(np.cos(np.deg2rad(np.linspace(90, -90, 33))))[:, None]
    var = (fields**2 * w).sum((-2, -1)) / (w.sum() * 64)
    assert abs(var.mean().item() - 1.0) < 0.05
    sht = RealSHT(33, 64, lmax=32, mmax=32, grid="equiangular").double()
    p = power_spectrum(fields, sht).mean((0, 1)).numpy()  # (32,) power per degree
    expected = (2 * np.arange(32) + 1) * matern_spectrum(32, 1500, 1.5)
    np.testing.assert_allclose(p[1:20], expected[1:20], rtol=0.15)
    assert p[0] < 1e-9 * p.sum()  # no global mean (float32 rounding only)
    noise(4).pow(2).mean().backward()
    assert noise.log_amplitude.grad is not None and noise.log_amplitude.grad[:, 1:].abs().sum() > 0


def test_fair_crps_equals_the_evaluations_sorted_member_crps_and_the_gaussian_closed_form():
    lat = np.linspace(80, -80, 9)
    torch.manual_seed(1)
    pred, truth = torch.randn(2, 5, 3, 9, 16), torch.randn(2, 3, 9, 16)
    ours = AreaWeightedCRPS(lat, alpha=1.0).pointwise(pred, truth)
    theirs = crps_pointwise(xr.DataArray(pred.numpy(), dims=["b", "member", "c", "y", "x"]),
                            xr.DataArray(truth.numpy(), dims=["b", "c", "y", "x"]))
    np.testing.assert_allclose(ours.numpy(), theirs.values, rtol=1e-5, atol=1e-6)
    # Two members drawn from N(0, 1), truth 0: the fair score is unbiased for CRPS(N(0, 1), 0) = 2 phi(0) - 1/sqrt(pi).
    many = torch.randn(200_000, 2, 1, 1, 1)
    fair = AreaWeightedCRPS(np.zeros(1), alpha=1.0).pointwise(many, torch.zeros(200_000, 1, 1, 1)).mean().item()
    assert abs(fair - (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi))) < 0.005
    # alpha < 1 penalises members that sit together: identical members score worse than under the fair CRPS.
    same = torch.ones(1, 2, 1, 1, 1)
    assert AreaWeightedCRPS(np.zeros(1), alpha=0.5).pointwise(same, torch.zeros(1, 1, 1, 1)).item() == 1.0


def test_spectral_crps_weighs_every_degree_by_its_amplitude_in_the_data():
    from torch_harmonics import InverseRealSHT, RealSHT

    from forecast.models.random_fields import synthesise_grf
    from forecast.train.losses import SpectralCRPS, degree_amplitudes

    torch.manual_seed(2)
    lmax, cl = 16, matern_spectrum(16, 800, 3.5)  # steep: C_14 / C_2 ~ 1e-4, no degree 0
    isht = InverseRealSHT(17, 32, lmax=lmax, mmax=lmax, grid="equiangular").double()
    sht = RealSHT(17, 32, lmax=lmax, mmax=lmax, grid="equiangular").double()
    fields = synthesise_grf(torch.randn(2000, 1, lmax, lmax, 2, dtype=torch.float64),
                            torch.from_numpy(np.sqrt(cl))[:, None], isht)  # (2000, 1, 17, 32)
    amp = degree_amplitudes(fields, sht)[0]
    np.testing.assert_allclose(amp[1:].numpy(), np.sqrt(cl[1:]), rtol=0.1)  # rms coefficient = sqrt(C_l)
    loss = SpectralCRPS(sht.float(), degree_amplitudes(fields, sht), alpha=1.0)
    truth = fields[:4].float()
    assert loss(truth[:, None].expand(4, 2, 1, 17, 32), truth).item() == pytest.approx(0.0, abs=1e-6)

    def off_by(degree: int) -> float:  # members off the truth by the same grid-point RMS at one degree
        z = torch.zeros(4, 2, 1, lmax, lmax, 2, dtype=torch.float64)
        z[..., degree, 0, 0] = torch.randn(4, 2, 1, dtype=torch.float64)
        noise = isht(torch.view_as_complex(z))
        noise = noise / noise.pow(2).mean().sqrt() * 0.01
        return loss((truth[:, None] + noise).float(), truth).item()

    # The same grid-point error costs sqrt(C_2 / C_14) times more at degree 14, where the data hold little power.
    assert off_by(14) / off_by(2) == pytest.approx(np.sqrt(cl[2] / cl[14]), rel=0.3)


# -- DYffusion sampling ----------------------------------------------------------------------------------


def test_cold_sampling_with_exact_networks_recovers_the_dynamics():
    """x(t) = x0 e^{-t} + t^2: with the exact interpolator and forecaster, both schemes return x(1 .. h)."""
    h, x0 = 4, torch.linspace(-1, 1, 6, dtype=torch.float64)

    def truth(t):
        return x0 * math.exp(-t) + t**2

    def interpolate(x_end, i):  # the state at i on the trajectory that ends at x_end (a one-parameter family)
        start = (x_end - h**2) / math.exp(-h)
        return start * math.exp(-i) + i**2

    def forecast(x, s):  # the end of the trajectory through x at s
        return (x - s**2) * math.exp(-(h - s)) + h**2

    for cold in (True, False):
        out = cold_sample(interpolate, forecast, x0, h, cold=cold)
        torch.testing.assert_close(out, torch.stack([truth(t) for t in range(1, h + 1)], dim=1), rtol=1e-6, atol=1e-6)


def test_cold_sampling_damps_a_biased_interpolator_more_than_naive_sampling():
    """Truth x(t) = t. The interpolator is off by c at every step > 0, the forecaster extrapolates the unit
    tendency from wherever it is (x + (h - s)). Naive sampling jumps to the biased interpolation each stage
    and ends at 3 + 5/6; cold sampling moves only by differences of interpolations and ends at 3 + 7/18
    (both by hand, h = 3, c = 1/2)."""
    h, x0, c = 3, torch.zeros(4, dtype=torch.float64), 0.5

    def interpolate(x_end, i):
        return x0 + i / h * (x_end - x0) + c

    def forecast(x, s):
        return x + (h - s)

    cold = cold_sample(interpolate, forecast, x0, h, cold=True)
    naive = cold_sample(interpolate, forecast, x0, h, cold=False)
    torch.testing.assert_close(cold[0], torch.tensor([1.5, 8 / 3, 3 + 7 / 18], dtype=torch.float64))
    torch.testing.assert_close(naive[0], torch.tensor([1.5, 17 / 6, 3 + 5 / 6], dtype=torch.float64))


def test_dropout_drops_the_rate_and_keeps_the_expectation():
    from forecast.models.layers import Dropout

    torch.manual_seed(3)
    drop, x = Dropout(0.3), torch.ones(400_000)
    y = drop.train()(x)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.005 and abs(y.mean().item() - 1.0) < 0.01
    assert torch.equal(drop.eval()(x), x)


def test_dropout_stays_on_only_inside_the_block():
    net = build_model(model(DYFFUSION), "equiangular", 9, 16, 5, 2)
    net.eval()
    x = torch.randn(2, 2 * 2 + 3 + 1, 9, 16)
    with dropout_on(net.interpolator):
        a, b = net.interpolator(x), net.interpolator(x)
    assert not torch.equal(a, b)
    torch.testing.assert_close(net.interpolator(x), net.interpolator(x))


# -- training and predicting end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tiny_store(tmp_path_factory.mktemp("generative"))


def config(store: Path, run_dir: Path, model_tree: dict, **over) -> TrainConfig:
    s = open_training_store(store)
    times = s.times
    tree = {
        "name": "gen", "data": {"store": str(store), "train": {"end": str(times[len(times) * 2 // 3])},
                                "valid": {"start": str(times[len(times) * 2 // 3 + 1])}, "batch_size": 4,
                                "workers": 0},
        "model": model_tree, "optim": {"lr": 3e-3, "warmup_steps": 2},
        "validation": {"lead_steps": [1, 3], "max_cases": 4, "members": 3}, "epochs": 1, "steps_per_epoch": 4,
        "output_dir": str(run_dir), "device": "cpu", **over,
    }
    return TrainConfig.model_validate(tree)


def predict(package: Path, store: Path, out: Path, members: int = 4, **tree) -> xr.Dataset:
    cfg = PredictConfig.model_validate({
        "packages": [str(package)], "store": str(store), "output": {"path": str(out)},
        "init": {"times": [str(open_training_store(store).times[4])]}, "lead": 5,
        "ensemble": {"members": members, "seed": 3}, "stability": {"enabled": False}, **tree})
    run_predict(cfg)
    return open_product(out)


def members_of(ds: xr.Dataset) -> np.ndarray:
    return np.stack([ds[v].values for v in ("z500", "msl")])


def test_crps_training_reports_ensemble_scores_and_members_are_reproducible(store, tmp_path):
    result = train(config(store, tmp_path / "crps", STOCHASTIC, loss={"type": "crps", "ensemble_members": 3}),
                   progress=False)
    val = result.last_validation
    assert val["members"] == 3 and set(val["crps"]) == {"1", "3"}
    assert all(v > 0 for v in val["spread"]["3"].values())
    assert val["score"] == pytest.approx(np.mean([val["crps"][k][c] / s for k in ("1", "3") for c, s in
                                                  zip(open_training_store(store).channels,
                                                      open_training_store(store).std, strict=True)]))
    a = members_of(predict(tmp_path / "crps" / "model.pt", store, tmp_path / "a.zarr"))
    b = members_of(predict(tmp_path / "crps" / "model.pt", store, tmp_path / "b.zarr"))
    np.testing.assert_array_equal(a, b)  # same seed, same members
    assert np.abs(a[:, 0, 1:, 0] - a[:, 0, 1:, 1]).max() > 0  # members differ after the first step


def test_crps_needs_a_stochastic_network(store, tmp_path):
    cfg = config(store, tmp_path, {"type": "sfno", **SFNO}, loss={"type": "crps"})
    s = open_training_store(store)
    with pytest.raises(InputError, match="stochastic"):
        build_objective(cfg.loss, build_forecaster(cfg, s), s, np.ones(len(s.channels)))


def test_dyffusion_two_stages_train_the_right_network_and_predict_an_ensemble(store, tmp_path):
    stage1 = config(store, tmp_path / "interp", DYFFUSION, loss={"type": "dyffusion_interpolator",
                                                                 "rollout_steps": 3})
    train(stage1, progress=False)
    first = torch.load(tmp_path / "interp" / "model.pt", weights_only=True)["state_dict"]
    torch.manual_seed(stage1.seed)  # train() seeds so before building the network
    fresh = build_forecaster(stage1, open_training_store(store)).network.state_dict()
    assert all(torch.equal(first[k], fresh[k]) for k in fresh if k.startswith("forecaster."))  # frozen
    assert not all(torch.equal(first[k], fresh[k]) for k in fresh if k.startswith("interpolator."))
    stage2 = config(store, tmp_path / "fc", DYFFUSION, loss={"type": "dyffusion_forecaster", "rollout_steps": 3},
                    init_from=str(tmp_path / "interp" / "model.pt"))
    train(stage2, progress=False)
    second = torch.load(tmp_path / "fc" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in first if k.startswith("interpolator."))
    assert not all(torch.equal(first[k], second[k]) for k in first if k.startswith("forecaster."))
    ds = predict(tmp_path / "fc" / "model.pt", store, tmp_path / "dyf.zarr")  # 5 steps: two samples of 3
    x = members_of(ds)
    assert np.isfinite(x).all() and x.shape[2] == 6  # the initial state and 5 steps
    assert np.abs(x[:, 0, :, 0] - x[:, 0, :, 1]).max() > 0


def test_dyffusion_stage_needs_windows_of_its_horizon(store, tmp_path):
    cfg = config(store, tmp_path, DYFFUSION, loss={"type": "dyffusion_interpolator", "rollout_steps": 2})
    s = open_training_store(store)
    with pytest.raises(InputError, match="horizon 3"):
        build_objective(cfg.loss, build_forecaster(cfg, s), s, np.ones(len(s.channels)))


# -- ensembles side by side ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> Path:
    return evaluation_store(tmp_path_factory.mktemp("ensembles"), months=1)


INITS = np.array(["2000-01-05T00", "2000-01-09T00", "2000-01-13T00", "2000-01-17T00"], dtype="datetime64[ns]")


def test_member_spectra_of_the_truth_itself_are_the_truths_and_noise_adds_power_at_high_degrees(truth, tmp_path):
    same = member_spectra(noisy_product(truth, tmp_path / "same.zarr", INITS, 4, members=3), truth)
    np.testing.assert_allclose(same["ratio"].values[..., 1:], 1.0, rtol=1e-5)
    noisy = member_spectra(noisy_product(truth, tmp_path / "noisy.zarr", INITS, 4, members=3, noise=0.05), truth)
    ratio = noisy["ratio"].sel(variable="z500").values  # (lead, degree)
    assert (ratio[:, -3:] > 10).all() and np.allclose(ratio[:, 1], 1.0, atol=0.05)  # white noise: the tail
    assert (ratio[-1, -3:] > ratio[0, -3:]).all()  # noise std grows as sqrt(lead)


def test_checks_need_calibration_crps_and_spectra_at_every_lead():
    from forecast.evaluate.ensembles import ensemble_checks

    rows = [("gen", 24, 100.0, 0.9, 0.5, 1.5), ("gen", 120, 300.0, 1.3, 0.6, 1.9),
            ("ic", 24, 120.0, 0.2, 0.5, 1.5), ("ic", 120, 290.0, 0.1, 0.5, 1.5)]
    table = pd.DataFrame([{"ensemble": e, "variable": "z500", "lead_hours": h, "crps": c,
                           "spread_skill_corrected": r, "spectrum_ratio_min": lo, "spectrum_ratio_max": hi}
                          for e, h, c, r, lo, hi in rows])
    check = ensemble_checks(table, ["gen"], ["ic"]).iloc[0]
    # 1.3 at 120 h is outside 0.8-1.2; CRPS 300 loses to 290 at 120 h; spectra within 0.5..2 everywhere.
    assert not check["spread_skill_ok"] and check["spread_skill_range"] == "0.90..1.30"
    assert not check["beats_perturbed_crps"] and check["leads_beaten"] == "1/2"
    assert check["spectrum_ok"] and check["spectrum_ratio_range"] == "0.50..1.90"


@pytest.mark.slow
def test_cli_puts_ensembles_side_by_side_and_checks_the_generative_ones(truth, tmp_path, capsys):
    from forecast.cli import main

    dirs = []
    for name, noise, members in (("wide", 0.05, 4), ("narrow", 0.002, 4)):
        product = noisy_product(truth, tmp_path / f"{name}.zarr", INITS, 8, members=members, noise=noise, name=name)
        out = tmp_path / "ev" / name
        assert main(["evaluate", str(product), "--truth", str(truth), "--out", str(out), "--no-progress", "--set",
                     "metrics=[rmse,crps,spread,spread_skill,spread_skill_corrected,rank_histogram]",
                     "--set", "baselines=[]", "--set", "regions=[global]", "--set", "statistics.n_resamples=100"]) == 0
        dirs.append(str(out))
    assert main(["ensembles", *dirs, "--out", str(tmp_path / "side"), "--generative", "wide",
                 "--perturbed", "narrow"]) == 0
    table = pd.read_csv(tmp_path / "side" / "table.csv")
    assert set(table["ensemble"]) == {"wide", "narrow"} and set(table["lead_hours"]) == {24, 48}
    # Members = truth + independent noise of std s: spread s, error of the mean s / sqrt(M), so the corrected
    # ratio is sqrt((M + 1) / M) sqrt(M) = sqrt(M + 1) (M = 4): over-dispersive, and worse in CRPS than "narrow".
    wide = table[table["ensemble"] == "wide"]
    np.testing.assert_allclose(wide["spread_skill_corrected"], np.sqrt(5.0), rtol=0.08)
    printed = capsys.readouterr().out
    assert "report.html" in printed
    checks = printed[printed.index("spread_skill_ok"):].splitlines()[1:3]
    assert all(line.split()[2:5:2] == ["False", "False"] for line in checks), checks
    page = (tmp_path / "side" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "http" not in page.replace("http-equiv", "")
