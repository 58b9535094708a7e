"""`forecast climate`: each climate score on fields with known answers, the stability verdict, and the entry point
end to end on a tiny product and store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import sph_harm_y

from forecast.cli import main
from forecast.evaluate.climate import (
    bias_scores,
    climate_of,
    histogram_percentiles,
    linear_trend,
    seasonal_scores,
    variability_scores,
)
from forecast.evaluate.climate_run import compare, read_climate
from forecast.evaluate.config import ClimateConfig
from forecast.evaluate.spectrum import SphericalSpectrum, clenshaw_curtis_weights, quadrature_weights
from forecast.grids import Grid
from forecast.testing import evaluation_store, noisy_product

GRID = Grid("equiangular", 13, 24)
LAT, LON = GRID.latitudes, GRID.longitudes


def edges(lo: float = -10.0, hi: float = 10.0, channels: int = 1, bins: int = 400) -> np.ndarray:
    return np.repeat(np.linspace(lo, hi, bins + 1)[None], channels, 0)


def climate(x: np.ndarray, times: np.ndarray, e: np.ndarray | None = None, block: int = 50) -> xr.Dataset:
    """The climate of ``x`` ``(T, C, H, W)`` (one member) in blocks of ``block`` times."""
    x = x[:, None]
    return climate_of(x, times, [f"v{c}" for c in range(x.shape[2])], LAT, LON,
                      edges(channels=x.shape[2]) if e is None else e, block=block)


def one(x) -> float:
    """The single value of a one-variable result."""
    return float(np.asarray(x).squeeze())


def daily(years: float, start: str = "2000-01-01") -> np.ndarray:
    return pd.date_range(start, periods=int(years * 365.25), freq="1D").values.astype("datetime64[ns]")


def noise(times: np.ndarray, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((times.size, channels, LAT.size, LON.size))


# -- spectrum -------------------------------------------------------------------------------------

@pytest.mark.parametrize("grid", [Grid("equiangular", 37, 72), Grid("legendre-gauss", 32, 64)], ids=str)
def test_spectrum_of_a_single_spherical_harmonic_and_parseval(grid):
    lat, lon = grid.latitudes, grid.longitudes
    colat, lam = np.deg2rad(90 - lat)[:, None], np.deg2rad(lon)[None, :]
    spec = SphericalSpectrum(lat, lon)
    # Gauss-Legendre is exact; on the equiangular grid the top degrees alias (as in torch-harmonics) by < 1e-5.
    tol = 1e-12 if grid.type == "legendre-gauss" else 1e-5
    for degree, order in [(5, 3), (7, 0), (12, 12)]:
        y = sph_harm_y(degree, order, colat, 0.0).real * np.cos(order * lam)  # (nlat, nlon)
        p = spec(y[None])[0]
        others = np.delete(p, degree)
        assert others[: lat.size - degree - 2].max() < 1e-14 and others.max() < tol * p[degree]
        # Parseval: the power summed over degrees is the integral of f^2 over the unit sphere.
        integral = 2 * np.pi * (quadrature_weights(lat, lon)[:, None] * y**2).mean(1).sum()
        assert p.sum() == pytest.approx(integral, rel=tol)
        assert integral == pytest.approx(1.0 if order == 0 else 0.5, rel=1e-12)  # |Y|^2 and |cos|^2 averages
    assert clenshaw_curtis_weights(37).sum() == pytest.approx(2.0)


# -- the scores on fields with known answers --------------------------------------------------------

def test_constant_bias_gives_a_constant_map_and_its_rmse():
    times = daily(0.3)
    truth = noise(times, 2)
    run = truth + np.array([2.0, -3.0])[None, :, None, None]
    b = bias_scores(climate(run, times), climate(truth, times))
    np.testing.assert_allclose(b["bias"].sel(variable="v0"), 2.0, atol=1e-9)
    np.testing.assert_allclose(b["bias_rmse"], [2.0, 3.0], rtol=1e-9)
    np.testing.assert_allclose(b["mean_bias"], [2.0, -3.0], rtol=1e-9)


def test_seasonal_cycle_shifted_by_one_month():
    times = daily(4)
    years = (times - times[0]) / np.timedelta64(1, "D") / 365.2425
    pattern = 1.0 + 0.5 * np.cos(np.deg2rad(LAT))[:, None] * np.ones(LON.size)  # amplitude varies with latitude

    def cycle(shift_years: float) -> np.ndarray:
        return (3.0 * np.cos(2 * np.pi * (years - 0.1 - shift_years)))[:, None, None, None] * pattern

    truth, run = climate(cycle(0.0), times), climate(cycle(1 / 12), times)
    s = seasonal_scores(run, truth)
    assert one(s["phase_difference"]) == pytest.approx(30.0, abs=1.0)  # one month later: +30 degrees
    assert one(s["amplitude_ratio"]) == pytest.approx(1.0, abs=0.01)
    assert one(s["truth_annual_phase"]) == pytest.approx(36.0, abs=1.5)  # maximum at 0.1 year
    np.testing.assert_allclose(s["annual_amplitude_map"] / s["truth_annual_amplitude_map"], 1.0, atol=0.01)
    assert one(s["truth_annual_amplitude_map"].isel(latitude=0, longitude=0)) == pytest.approx(3.0, rel=0.02)
    assert one(s["seasonal_rmse"]) > 1.0
    assert one(seasonal_scores(truth, truth)["seasonal_rmse"]) == 0.0


def test_scaled_variance_gives_the_scale_as_std_ratio():
    times = daily(0.5)
    truth = 5.0 + noise(times)
    v = variability_scores(climate(1.7 * truth, times, edges(-20, 30)), climate(truth, times, edges(-20, 30)))
    assert one(v["std_ratio"]) == pytest.approx(1.7, rel=1e-9)
    np.testing.assert_allclose(v["std_ratio_map"], 1.7, rtol=1e-9)
    np.testing.assert_allclose(v["zonal_mean"], 1.7 * v["truth_zonal_mean"], rtol=1e-9)


def test_linear_drift_is_significant_and_noise_is_not():
    rng = np.random.default_rng(3)
    years = np.arange(120) / 12.0  # ten years of monthly values
    ar1 = np.zeros(years.size)
    for i in range(1, years.size):
        ar1[i] = 0.5 * ar1[i - 1] + rng.standard_normal()
    slope, p, n_eff = linear_trend(0.2 * years + ar1, years)
    assert slope == pytest.approx(2.0, abs=0.5) and p < 1e-4 and n_eff < 80  # 0.2 per year = 2 per decade
    _, p_noise, _ = linear_trend(ar1, years)
    assert p_noise > 0.05
    # A seasonal cycle alone is not a trend: the annual harmonic is fitted alongside.
    _, p_season, _ = linear_trend(5 * np.cos(2 * np.pi * years) + 0.1 * ar1, years)
    assert p_season > 0.05


def test_percentiles_of_a_normal_distribution():
    times = daily(1.0)
    c = climate(noise(times, seed=4), times)
    lo, hi = histogram_percentiles(c["histogram"].values[0], c["bin_edges"].values[0], [1, 99])
    assert lo == pytest.approx(-2.326, abs=0.03) and hi == pytest.approx(2.326, abs=0.03)
    assert one(c["histogram"].sum()) == pytest.approx(1.0)


# -- the stability verdict ----------------------------------------------------------------------------

def test_stability_verdict_passes_a_second_truth_and_fails_a_drifting_run():
    times = daily(2)
    years = (times - times[0]) / np.timedelta64(1, "D") / 365.2425
    season = (2.0 * np.cos(2 * np.pi * years))[:, None, None, None]
    truth = climate(10.0 + season + noise(times, seed=1), times, edges(-10, 30))
    twin = climate(10.0 + season + noise(times, seed=2), times, edges(-10, 30))
    drift = climate(10.0 + season + 3.0 * years[:, None, None, None] + noise(times, seed=2), times, edges(-10, 30))
    cfg = ClimateConfig()
    ok, bad = compare(twin, truth, cfg), compare(drift, truth, cfg)
    assert bool(ok["stable"]) and bool(ok["stable_spectrum"])
    assert not bool(bad["stable_mean"]) and not bool(bad["stable"]) and bool(bad["stable_std"])
    assert one(bad["trend_global_mean"]) == pytest.approx(30.0, rel=0.05)  # 3 per year
    assert one(bad["trend_global_mean_p"]) < 1e-3 and one(ok["trend_global_mean_p"]) > 0.05
    assert bool(bad["trend_global_mean_significant"]) and not bool(ok["trend_global_mean_significant"])
    blurred = climate(10.0 + season + 0.3 * noise(times, seed=2), times, edges(-10, 30))  # 0.09 x the power
    assert not bool(compare(blurred, truth, cfg)["stable_spectrum"])


def test_stability_margin_has_a_floor_for_a_conserved_global_mean():
    """Two runs of a conserved channel differ in their global mean by rounding only (1e-7 of 1e5 here):
    without the floor a second truth run fails; a real shift of 5% of the spatial std still fails."""
    from forecast.evaluate.climate import stability_verdict
    from forecast.evaluate.config import StabilityCriteria

    rng = np.random.default_rng(0)

    def windows(mean: np.ndarray) -> xr.Dataset:
        return xr.Dataset({"global_mean": (("window", "variable"), mean[:, None]),
                           "global_std": (("window", "variable"), np.full((mean.size, 1), 700.0))})

    truth = windows(101325.0 + 0.01 * rng.uniform(size=120))  # float32 rounding of a 1e5 Pa mean
    twin = windows(101325.0 + 0.01 * rng.uniform(size=120) + 0.003)
    shifted = windows(101325.0 + 35.0 + 0.01 * rng.uniform(size=120))  # 5% of the 700 Pa std
    spectra = xr.Dataset({"spectrum_ratio": (("variable", "degree"), np.ones((1, 4)))})
    strict = StabilityCriteria(range_floor=0.0)
    assert not bool(stability_verdict(twin, truth, spectra, strict)["stable_mean"])
    assert bool(stability_verdict(twin, truth, spectra, StabilityCriteria())["stable_mean"])
    assert not bool(stability_verdict(shifted, truth, spectra, StabilityCriteria())["stable_mean"])


# -- the entry point end to end -------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return evaluation_store(tmp_path_factory.mktemp("climate"), nlat=13, nlon=24)


def test_cli_end_to_end_with_a_reference(store, tmp_path, capsys):
    product = noisy_product(store, tmp_path / "long.zarr", np.array(["2000-01-01T00"], "datetime64[ns]"), 230,
                            noise=0.01, lead_chunk=64, name="long-run")
    out = tmp_path / "climate"
    assert main(["climate", str(product), "--truth", str(store), "--reference", str(store), "--out", str(out),
                 "--no-progress", "--set", "render.variables=[z500]", "--set", "render.dpi=40"]) == 0
    printed = capsys.readouterr().out
    # The truth is a smooth analytic wave with (almost) no power beyond a few degrees: the noise of the run adds
    # orders of magnitude there, so the run fails the spectral test; the truth itself passes everything.
    assert "stability verdict: model fail, reference pass" in printed
    ds = read_climate(out)
    assert not ds["stable_spectrum"].sel(source="model").any() and ds["stable"].sel(source="reference").all()
    assert list(ds["source"].values) == ["model", "reference"] and list(ds["source_name"].values)[0] == "long-run"
    assert int(ds["n_times"].sel(source="model")) == 230  # leads 6 h .. 57.5 d, all in the store
    np.testing.assert_allclose(ds["bias_rmse"].sel(source="reference"), 0.0, atol=1e-6)  # the truth itself
    assert (ds["bias_rmse"].sel(source="model") > 0).all()
    table = pd.read_csv(out / "climate.csv")
    assert set(table["source"]) == {"model", "reference"} and {"bias_rmse", "std_ratio", "stable"} <= set(table.metric)
    figures = json.loads((out / "figures" / "index.json").read_text())["figures"]
    assert {f["kind"] for f in figures} >= {"bias", "variability", "spectra", "verdict", "distribution"}
    assert all((out / "figures" / f["path"]).stat().st_size > 1000 for f in figures)
    assert "Stability verdict" in (out / "report.html").read_text() and (out / "report.md").exists()


def test_cli_errors_are_one_line_naming_the_file(store, tmp_path, capsys):
    missing = tmp_path / "nothing.zarr"
    assert main(["climate", str(missing), "--truth", str(store), "--out", str(tmp_path / "c"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("forecast climate: error:") and str(missing) in err and "\n" not in err
    assert main(["climate", str(store), "--truth", str(store), "--out", str(tmp_path / "c"), "--no-progress",
                 "--set", "variables=[t850]"]) == 1
    err = capsys.readouterr().err.strip()
    assert "t850" in err and str(store) in err and "\n" not in err
    assert main(["climate", str(store), "--truth", str(store), "--set", "block_steps=0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("forecast climate: error:") and "block_steps" in err and "\n" not in err


def test_climate_table_puts_runs_side_by_side_with_the_noise_floor(store, tmp_path, capsys):
    t0 = np.array(["2000-01-01T00"], "datetime64[ns]")
    floor = noisy_product(store, tmp_path / "floor.zarr", t0, 120, noise=0.01, seed=1, lead_chunk=64, name="floor")
    results = []
    for name, level in (("small", 0.01), ("large", 0.04)):
        product = noisy_product(store, tmp_path / f"{name}.zarr", t0, 120, noise=level, seed=2, lead_chunk=64,
                                name=name)
        out = tmp_path / name
        assert main(["climate", str(product), "--truth", str(store), "--reference", str(floor), "--out", str(out),
                     "--no-progress", "--no-render"]) == 0
        results.append(out)
    capsys.readouterr()
    bad = tmp_path / "bad.nc"
    bad.write_text("not netCDF")
    assert main(["climate-table", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("forecast climate-table: error:") and str(bad) in err and "\n" not in err
    results[1] = results[1] / "climate.csv"  # the table stands for its result, as make passes it
    assert main(["climate-table", *map(str, results), "--out", str(tmp_path / "table.csv")]) == 0
    assert "bias_rmse_vs_floor" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "table.csv").set_index(["name", "variable"])
    assert set(table.index.get_level_values("name")) == {"small", "large", "noise floor (floor)"}
    ratio = table["bias_rmse_vs_floor"]
    np.testing.assert_allclose(ratio.loc["noise floor (floor)"], 1.0)
    # The noise of a product grows like its level, so does the RMSE of its time-mean error over the floor's.
    assert (ratio.loc["large"] > 2.5 * ratio.loc["small"]).all()
    np.testing.assert_allclose(ratio.loc["small"] * table["bias_rmse"].loc["noise floor (floor)"],
                               table["bias_rmse"].loc["small"], rtol=1e-4)  # CSV keeps 6 digits
