"""The evaluation stage: WeatherBench2 scores by hand and against the `scores` package, alignment and its
refusals, the climatology, regions, baselines on the same cases, and the `forecast evaluate` entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from forecast.cli import main
from forecast.errors import InputError
from forecast.evaluate.align import align, open_forecast, open_truth
from forecast.evaluate.baselines import climatology_ensemble_times, persistence_ensemble
from forecast.evaluate.climatology import build_climatology, climatology_at, open_climatology, write_climatology
from forecast.evaluate.compare import compare_scores
from forecast.evaluate.config import EvaluateConfig
from forecast.evaluate.metrics import (
    crps,
    crps_pointwise,
    gridpoint_scores,
    lat_weights,
    rank_histogram,
    rmse,
    spatial_mean,
    spread,
    spread_skill_ratio,
    zonal_energy_spectrum,
)
from forecast.evaluate.regions import box_mask, region_masks
from forecast.evaluate.score import dispersion_verdict, evaluate, read_scores, run_evaluate, scores_table
from forecast.grids import Grid
from forecast.products import open_product
from forecast.testing import evaluation_store, noisy_product

scores_pkg = pytest.importorskip("scores")

INITS = np.array(["2000-02-01T00", "2000-02-02T00", "2000-02-03T12"], dtype="datetime64[ns]")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return evaluation_store(tmp_path_factory.mktemp("evaluate"))


@pytest.fixture(scope="module")
def ensemble(store) -> Path:
    return noisy_product(store, store.parent / "ensemble.zarr", INITS, 8, members=5, noise=0.05, seed=1)


def config(**kw) -> EvaluateConfig:
    return EvaluateConfig.model_validate({"regions": ["global", "tropics", "land", "sea"], **kw})


def grid_field(values, lat, lon, extra: dict | None = None) -> xr.DataArray:
    extra = extra or {}
    dims = [*extra, "latitude", "longitude"]
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=dims,
                        coords={**{k: np.arange(v) for k, v in extra.items()}, "latitude": lat, "longitude": lon})


# -- metrics: hand values and analytic errors ------------------------------------------------------

def test_fair_crps_spread_and_rank_by_hand():
    lat, lon = [45.0, -45.0], [0.0, 180.0]
    members = np.array([1.0, 2.0, 4.0])[:, None, None] * np.ones((3, 2, 2))
    fc = grid_field(members, lat, lon, {"member": 3})
    truth = grid_field(np.full((2, 2), 3.0), lat, lon)
    # mean |x - y| = 4/3; sum_ij |x_i - x_j| = 12, over 2 M (M - 1) = 12 -> fair CRPS = 1/3.
    assert float(crps(fc, truth, time_dim=None)) == pytest.approx(1.0 / 3.0)
    assert float(spread(fc, time_dim=None)) == pytest.approx(np.sqrt(7.0 / 3.0))  # var([1, 2, 4], ddof=1) = 7/3
    # Ensemble mean 7/3 vs truth 3: RMSE 2/3.
    assert float(spread_skill_ratio(fc, truth, time_dim=None)) == pytest.approx(np.sqrt(7.0 / 3.0) / (2.0 / 3.0))
    np.testing.assert_allclose(rank_histogram(fc, truth, time_dim=None).values, [0, 0, 1, 0])
    tied = grid_field(np.array([1.0, 3.0, 3.0])[:, None, None] * np.ones((3, 2, 2)), lat, lon, {"member": 3})
    np.testing.assert_allclose(rank_histogram(tied, truth, time_dim=None).values, [0, 1 / 3, 1 / 3, 1 / 3])
    # A point forecast's CRPS is its absolute error.
    point = grid_field(np.full((2, 2), 1.5), lat, lon)
    assert float(crps(point, truth, time_dim=None)) == pytest.approx(1.5)
    assert float(crps_pointwise(fc.isel(member=[0]), truth).mean()) == pytest.approx(2.0)


def test_rmse_of_analytic_errors_is_exact():
    # Gauss-Legendre quadrature integrates sin^2(lat) exactly: the area mean of (A sin(lat))^2 is A^2 / 3.
    g = Grid("legendre-gauss", 8, 16)
    lat, lon = g.latitudes, g.longitudes
    phi, lam = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    zero = grid_field(np.zeros((8, 16)), lat, lon)
    a = 3.0
    assert float(rmse(grid_field(a * np.sin(phi) * np.ones_like(lam), lat, lon), zero)) == pytest.approx(
        a / np.sqrt(3.0), rel=1e-12)
    # cos(2 lon) averages to 1/2 in square over any uniform longitude circle; a constant adds its square.
    err = a * np.cos(2 * lam) * np.ones_like(phi) + 1.0
    assert float(rmse(grid_field(err, lat, lon), zero)) == pytest.approx(np.sqrt(a**2 / 2 + 1.0), rel=1e-12)
    # On a regular grid whose cell edges fall on +-30 degrees, that band is exactly half the sphere.
    lat10 = np.arange(85.0, -90.0, -10.0)
    band = np.where(np.abs(lat10) < 30, 2.0, 0.0)[:, None] * np.ones((1, 4))
    assert float(rmse(grid_field(band, lat10, [0, 90, 180, 270]), grid_field(np.zeros((18, 4)), lat10,
                                                                                [0, 90, 180, 270]))) == pytest.approx(
        np.sqrt(2.0), rel=1e-12)


def test_zonal_spectrum_obeys_parseval_and_finds_a_wave():
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(80, -80, 9), np.arange(24) * 15.0
    x = grid_field(rng.normal(size=(9, 24)), lat, lon)
    spec = zonal_energy_spectrum(x, (-90, 90), time_dim=None)
    assert float(spec.sum("zonal_wavenumber")) == pytest.approx(float(spatial_mean(x**2)), rel=1e-12)
    wave = grid_field(np.cos(np.deg2rad(3 * lon))[None, :] * np.ones((9, 1)), lat, lon)
    power = zonal_energy_spectrum(wave, (-90, 90), time_dim=None).values
    np.testing.assert_allclose(power, np.eye(13)[3] * 0.5, atol=1e-12)


def test_fair_crps_rmse_and_rank_histogram_equal_the_scores_package():
    rng = np.random.default_rng(3)
    lat, lon = Grid("equiangular", 13, 24).latitudes, Grid("equiangular", 13, 24).longitudes
    truth = grid_field(rng.normal(size=(4, 13, 24)), lat, lon, {"init_time": 4})
    fc = grid_field(rng.normal(size=(4, 7, 13, 24)) * 1.3 + 0.2, lat, lon, {"init_time": 4, "member": 7})
    w = lat_weights(truth.latitude)
    dims = ["init_time", "latitude", "longitude"]
    ref = scores_pkg.probability.crps_for_ensemble(fc, truth, "member", method="fair", reduce_dims=dims, weights=w)
    assert float(crps(fc, truth)) == pytest.approx(float(ref), rel=1e-12)
    mean = fc.mean("member")
    assert float(rmse(mean, truth)) == pytest.approx(
        float(scores_pkg.continuous.rmse(mean, truth, reduce_dims=dims, weights=w)), rel=1e-12)
    ref_rank = scores_pkg.probability.rank_histogram(fc, truth, "member", reduce_dims=dims, weights=w)
    np.testing.assert_allclose(rank_histogram(fc, truth).values, ref_rank.values, rtol=1e-12)


# -- climatology and regions ------------------------------------------------------------------------

def test_climatology_is_the_windowed_day_of_year_hour_mean():
    times = pd.date_range("2001-01-01", "2002-12-31T12", freq="12h")  # two non-leap years, 00 and 12 UTC
    doy, year, hour = times.day_of_year.values, times.year.values, times.hour.values
    values = (doy + 1000 * (year - 2001) + 0.5 * hour).astype(np.float32)[:, None, None] * np.ones((1, 2, 3))
    truth = xr.Dataset({"x": (["time", "latitude", "longitude"], values, {"units": "K"})},
                       coords={"time": times, "latitude": [45.0, -45.0], "longitude": [0.0, 120.0, 240.0]},
                       attrs={"channels": ["x"]})
    one = build_climatology(truth, window_days=1)
    # Day 10 at 12 UTC: mean of 2001 (10 + 6) and 2002 (1010 + 6).
    assert float(one.x.sel(dayofyear=10, hour=12)[0, 0]) == pytest.approx(516.0)
    assert np.isnan(one.x.sel(dayofyear=366)).all()  # no leap day in the period
    three = build_climatology(truth, window_days=3, start=pd.Timestamp("2001-01-01"),
                              end=pd.Timestamp("2001-12-31T12"))
    assert float(three.x.sel(dayofyear=10, hour=0)[0, 0]) == pytest.approx(10.0)  # days 9, 10, 11
    # The window wraps over the year end: day 1 reaches back to day 366, which only leap years have.
    assert float(three.x.sel(dayofyear=1, hour=0)[0, 0]) == pytest.approx((1.0 + 2.0) / 2.0)
    assert float(three.x.sel(dayofyear=366, hour=12)[0, 0]) == pytest.approx((365.0 + 1.0) / 2.0 + 6.0)
    assert three.attrs["period_end"] == "2001-12-31T12:00" and three.attrs["window_days"] == 3
    valid = xr.DataArray(np.array([["2003-01-10T12"]], dtype="datetime64[ns]"), dims=["init_time", "lead_time"],
                         coords={"init_time": [0], "lead_time": [np.timedelta64(6, "h")]})
    assert float(climatology_at(one, valid, ["x"]).x.values[0, 0, 0, 0]) == pytest.approx(516.0)
    with pytest.raises(InputError, match="hours"):
        climatology_at(one, valid + np.timedelta64(6, "h"), ["x"])


def test_regions_boxes_land_and_sea():
    lat, lon = np.array([60.0, 10.0, -10.0, -60.0]), np.array([0.0, 90.0, 180.0, 270.0, 350.0])
    box = box_mask(lat, lon, 0, 70, -20, 10)  # crosses the 0 meridian: 0 and 350 east
    np.testing.assert_array_equal(box[:2], [[1, 0, 0, 0, 1]] * 2)
    assert box[2:].sum() == 0
    lsm = np.zeros((4, 5))
    lsm[0, 1] = 0.7
    masks = region_masks(["global", "tropics", "land", "sea"], lat, lon, lsm)
    assert masks.sel(region="land").sum() == 1 and (masks.sel(region="land") + masks.sel(region="sea") == 1).all()
    np.testing.assert_array_equal(masks.sel(region="tropics").values[:, 0], [0, 1, 1, 0])
    with pytest.raises(InputError, match="no grid cell"):
        region_masks([config(regions=[{"name": "gap", "lat": [20, 30]}]).regions[0]], lat, lon)
    with pytest.raises(InputError, match="land-sea mask"):
        region_masks(["land"], lat, lon, None)
    with pytest.raises(ValueError, match="unknown region"):
        config(regions=["atlantis"])


# -- the stage on a real store and products ---------------------------------------------------------

def test_perfect_forecast_scores_zero_error_and_acc_one(store, tmp_path):
    perfect = noisy_product(store, tmp_path / "perfect.zarr", INITS[:2], 4)
    s = run_evaluate(config(), perfect, store, tmp_path / "out", progress=False).scores
    p = s["noisy-truth"]
    for m in ("rmse", "mae", "bias", "crps"):
        assert np.abs(p.sel(metric=m)).max() < 1e-3 * float(s["persistence"].sel(metric=m).max() + 1)
    np.testing.assert_allclose(p.sel(metric="acc").values, 1.0, atol=1e-6)
    assert np.isnan(s["climatology"].sel(metric="acc")).all()  # no anomaly: undefined, reported as NaN
    assert np.isnan(p.sel(metric="spread")).all()  # deterministic: no ensemble scores
    assert "rank_histogram" not in s


def test_ensemble_scores_baselines_and_tidy_output(store, ensemble, tmp_path):
    clim = write_climatology(build_climatology(open_truth(store)), tmp_path / "clim.zarr")
    res = run_evaluate(config(climatology={"path": str(clim)}), ensemble, store, tmp_path / "out", progress=False)
    s = res.scores
    assert s["noisy-truth"].dims == ("metric", "region", "variable", "lead_time")
    assert list(s.variable.values) == ["z500", "msl"] and list(s.units.values) == ["m**2 s**-2", "Pa"]
    again = read_scores(res.netcdf)
    xr.testing.assert_allclose(again["noisy-truth"], s["noisy-truth"])
    table = pd.read_csv(res.csv)
    assert len(table) == 3 * s.sizes["metric"] * 4 * 2 * 8 and set(table.forecast) == {
        "noisy-truth", "persistence", "climatology"}

    # Independent recomputation on the raw arrays, for msl at lead 24 h over the tropics.
    raw = xr.open_zarr(ensemble)["msl"].sel(lead_time=np.timedelta64(24, "h")).load()  # (init, member, lat, lon)
    tr = open_truth(store)
    valid = INITS + np.timedelta64(24, "h")
    obs = tr["msl"].sel(time=valid).rename(time="init_time").assign_coords(init_time=INITS).load()
    mask = region_masks(["tropics"], tr.latitude.values, tr.longitude.values).isel(region=0)
    w = lat_weights(tr.latitude) * mask
    dims = ["init_time", "latitude", "longitude"]
    got = s["noisy-truth"].sel(region="tropics", variable="msl", lead_time=np.timedelta64(24, "h"))
    ref_crps = scores_pkg.probability.crps_for_ensemble(raw, obs, "member", method="fair", reduce_dims=dims, weights=w)
    assert float(got.sel(metric="crps")) == pytest.approx(float(ref_crps), rel=1e-6)
    ref_rmse = scores_pkg.continuous.rmse(raw.mean("member"), obs, reduce_dims=dims, weights=w)
    assert float(got.sel(metric="rmse")) == pytest.approx(float(ref_rmse), rel=1e-6)
    # Persistence on the same cases: the truth at the initial times.
    init_obs = tr["msl"].sel(time=INITS).rename(time="init_time").assign_coords(init_time=INITS).load()
    pers = s["persistence"].sel(region="tropics", variable="msl", lead_time=np.timedelta64(24, "h"), metric="rmse")
    ref = scores_pkg.continuous.rmse(init_obs, obs, reduce_dims=dims, weights=w)
    assert float(pers) == pytest.approx(float(ref), rel=1e-6)
    # Climatology baseline: the stored climatology at each valid day of year and hour.
    days, hours = pd.DatetimeIndex(valid).day_of_year.values, pd.DatetimeIndex(valid).hour.values
    c = open_climatology(clim)["msl"].sel(dayofyear=xr.DataArray(days, dims="init_time"),
                                          hour=xr.DataArray(hours, dims="init_time"))
    ref = scores_pkg.continuous.rmse(c.assign_coords(init_time=INITS).load(), obs, reduce_dims=dims, weights=w)
    assert float(s["climatology"].sel(region="tropics", variable="msl", lead_time=np.timedelta64(24, "h"),
                                      metric="rmse")) == pytest.approx(float(ref), rel=1e-5)
    # A 5-member rank histogram per region and lead, frequencies summing to one; spectra of forecast and truth.
    assert s["rank_histogram"].sizes["rank"] == 6
    np.testing.assert_allclose(s["rank_histogram"].sum("rank"), 1.0, rtol=1e-9)
    assert {"spectrum_forecast", "spectrum_truth"} <= set(s.data_vars)
    assert (s["noisy-truth"].sel(metric="crps") < s["persistence"].sel(metric="crps")).all()


def test_scores_do_not_depend_on_chunking_naming_or_scheduler(store, ensemble, tmp_path):
    truth = open_truth(store)
    small = open_forecast(ensemble, chunk_mb=0.01)
    assert small.chunks["init_time"] == (1, 1, 1) and hasattr(small["msl"].data, "dask")
    big = open_forecast(ensemble, chunk_mb=64)
    masks = region_masks(["global", "sea"], truth.latitude.values, truth.longitude.values,
                         np.asarray(truth["lsm"].values))
    kw = {"metrics": ["rmse", "crps", "spread"], "baselines": ["persistence"]}
    a = evaluate(align(small, truth), masks, **kw)
    b = evaluate(align(big, truth), masks, **kw)
    xr.testing.assert_allclose(a["forecast"], b["forecast"])
    wb2 = noisy_product(store, tmp_path / "wb2.zarr", INITS, 8, members=5, noise=0.05, seed=1, naming="weatherbench2")
    c = evaluate(align(open_forecast(wb2), truth), masks, **kw)
    xr.testing.assert_allclose(a["forecast"], c["forecast"])
    environ = dict(os.environ)
    d = evaluate(align(small, truth), masks, scheduler="distributed", workers=2, **kw)
    xr.testing.assert_allclose(a["forecast"], d["forecast"])
    assert dict(os.environ) == environ  # the nanny's OMP_NUM_THREADS etc. do not leak into this process


def test_level_axis_of_a_product_leaves_its_scores_unchanged(store, ensemble, tmp_path):
    """The same forecast stored with the CF level axis (z500 on level=[500]) and as products were written
    before it (z500 without one, its level an attribute) scores the same, intervals included."""
    assert xr.open_zarr(ensemble).z500.dims[3] == "level"
    open_product(ensemble).to_zarr(tmp_path / "flat.zarr")  # the view's encoding fits its dims
    assert "level" not in xr.open_zarr(tmp_path / "flat.zarr").dims
    cfg = config(metrics=["rmse", "acc", "crps", "spread"], baselines=["persistence"], statistics={"n_resamples": 50})
    a = run_evaluate(cfg, ensemble, store, tmp_path / "a", progress=False).scores
    b = run_evaluate(cfg, tmp_path / "flat.zarr", store, tmp_path / "b", progress=False).scores
    xr.testing.assert_equal(a, b)
    assert "score_interval" in a


def test_alignment_refuses_other_grids_units_and_missing_times(store, ensemble):
    truth = open_truth(store)
    fc = open_forecast(ensemble)
    with pytest.raises(InputError, match=r"grid.*differs"):
        align(fc.isel(latitude=slice(1, None)), truth)
    with pytest.raises(InputError, match=r"'msl': the forecast is in 'hPa' but the truth in 'Pa'"):
        align(fc.assign(msl=fc.msl.assign_attrs(units="hPa")), truth)
    late = fc.assign_coords(init_time=fc.init_time + np.timedelta64(40, "D"))
    with pytest.raises(InputError, match=r"no data at \d+ valid time\(s\).*2000-03-1"):
        align(late, truth)
    with pytest.raises(InputError, match="'t850' is not in the forecast"):
        align(fc, truth, variables=["t850"])
    with pytest.raises(InputError, match=r"lead time\(s\) \['7h'\]"):
        align(fc, truth, lead_times=["7h"])


def test_cli_evaluate_writes_scores_and_reports_bad_input(store, ensemble, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["evaluate", str(ensemble), "--truth", str(store), "--out", str(out), "--no-progress",
                 "--set", "regions=[global, sea]", "--set", "lead_times=[6h, 2d]"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "noisy-truth" in printed and "persistence" in printed and "scores.nc" in printed
    s = scores_table(read_scores(out))
    assert set(s.lead_time_hours) == {6.0, 48.0} and set(s.region) == {"global", "sea"}
    assert main(["evaluate", str(tmp_path / "missing.zarr"), "--truth", str(store), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "forecast evaluate: error: no forecast product at" in err and "Traceback" not in err
    assert main(["evaluate", str(ensemble), "--truth", str(store), "--set", "regions=[mordor]"]) == 1
    assert "unknown region" in capsys.readouterr().err
    clim = tmp_path / "clim.zarr"
    assert main(["climatology", str(store), "--out", str(clim), "--window", "31", "--no-progress"]) == 0
    assert open_climatology(clim).attrs["window_days"] == 31
    assert main(["climatology", str(store), "--out", str(clim), "--window", "30"]) == 1
    assert "must be odd" in capsys.readouterr().err


def test_evaluation_and_rendering_never_import_model_code():
    import subprocess
    import sys

    code = ("import sys, forecast.evaluate.score, forecast.render.run, forecast.render.report, "
            "forecast.evaluate.climate_run, forecast.render.climate; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(('forecast.models', "
            "'forecast.train', 'forecast.rollout'))); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- uncertainty and probabilistic baselines -------------------------------------------------------------

def test_climatological_ensemble_takes_the_valid_hour_within_the_day_of_year_window():
    times = np.arange(np.datetime64("2000-01-01", "ns"), np.datetime64("2001-01-01", "ns"), np.timedelta64(6, "h"))
    valid = np.array([["2001-02-10T06"]], dtype="datetime64[ns]")
    period = (times[0], times[-1])
    pos = climatology_ensemble_times(times, valid, period, members=5, window_days=5)
    days = np.arange(np.datetime64("2000-02-08T06", "ns"), np.datetime64("2000-02-13", "ns"), np.timedelta64(1, "D"))
    np.testing.assert_array_equal(times[pos[0, 0]], days)
    wrapped = climatology_ensemble_times(times, np.array([["2001-01-01T00"]], dtype="datetime64[ns]"), period, 3, 3)
    assert sorted(str(t)[5:10] for t in times[wrapped[0, 0]]) == ["01-01", "01-02", "12-31"]  # over the year end
    with pytest.raises(InputError, match="fewer than its 7 members"):
        climatology_ensemble_times(times, valid, period, members=7, window_days=5)


def test_intervals_significance_and_probabilistic_baselines(store, ensemble, tmp_path):
    names = ["persistence", "climatology", "persistence_ensemble", "climatology_ensemble"]
    cfg = config(baselines=names, ensemble_window_days=31, statistics={"n_resamples": 300})
    res = run_evaluate(cfg, ensemble, store, tmp_path / "out", progress=False)
    s = res.scores
    assert set(names) <= set(s.data_vars) and int(s["persistence_ensemble"].attrs["members"]) == 5
    # Member k of the persistence ensemble is the truth k days before the initial time, at every lead.
    truth = open_truth(store)
    fc = open_forecast(ensemble)
    pe = persistence_ensemble(truth, fc, ["msl"], 3)
    np.testing.assert_array_equal(pe["msl"].isel(init_time=1, lead_time=4, member=2).values,
                                  truth["msl"].sel(time=INITS[1] - np.timedelta64(2, "D")).values)
    # Every score's interval holds its value; the p-values are probabilities.
    for name in ["noisy-truth", *names]:
        value = s[name]
        ci = s["score_interval"].sel(source=name)
        ok = np.isfinite(value)
        tol = 1e-9 * abs(value) + 1e-12
        inside = (ci.sel(bound="lower") <= value + tol) & (value <= ci.sel(bound="upper") + tol)
        assert bool(inside.where(ok, True).all()), name
    assert ((s["p_value"] > 0) & (s["p_value"] <= 1)).sum() > 0.5 * s["p_value"].size
    # 5 % noise beats both ensembles of past truth by far, everywhere and significantly, at the shortest lead.
    crps = s["noisy-truth"].sel(metric="crps")
    for ref in ("persistence_ensemble", "climatology_ensemble"):
        assert (crps < s[ref].sel(metric="crps")).all()
        d = s["difference_interval"].sel(reference=ref, metric="crps", region="global").isel(lead_time=0)
        assert (d.sel(bound="upper") < 0).all()
    assert (s["block_length"] >= 1).all() and (s["block_length"] <= 3).all()
    table = pd.read_csv(res.csv)
    assert {"lower", "upper"} <= set(table.columns)
    ss = s["noisy-truth"].sel(metric=["spread_skill", "spread_skill_corrected"], region="global")
    np.testing.assert_allclose(ss.sel(metric="spread_skill_corrected"), ss.sel(metric="spread_skill") * np.sqrt(6 / 5))


def test_dispersion_verdict_reads_the_corrected_ratio_and_its_interval():
    coords = {"metric": ["rmse", "spread", "spread_skill", "spread_skill_corrected"], "region": ["global"],
              "variable": ["z500", "msl"], "lead_time": np.arange(1, 5) * np.timedelta64(6, "h")}
    ratio = np.array([1.0, 1.0, 1.0, 1.0])  # the corrected ratio, z500 then msl
    s = xr.Dataset({"ens": (list(coords), np.ones((4, 1, 2, 4)))}, coords=coords)
    s["ens"].loc[{"metric": "spread_skill_corrected", "variable": "z500"}] = 0.5 * ratio
    s["ens"].loc[{"metric": "spread_skill_corrected", "variable": "msl"}] = 0.7 * ratio
    s.attrs = {"forecast": "ens", "members": 4}
    verdict = dispersion_verdict(s)
    assert verdict.startswith("under-dispersive") and "z500 0.50 (4/4 leads below" in verdict
    # An interval that holds 1 at every lead: no verdict either way.
    s["score_interval"] = xr.concat([0.5 * s["ens"], 2.5 * s["ens"]], "bound").assign_coords(
        bound=["lower", "upper"]).expand_dims(source=["ens"])
    assert dispersion_verdict(s).startswith("not clearly")
    s.attrs["members"] = 1
    assert dispersion_verdict(s) is None


def test_compare_recomputes_scores_on_common_cases_and_pairs_models(store, tmp_path, capsys):
    inits = np.array(["2000-02-01T00", "2000-02-02T00", "2000-02-03T00", "2000-02-04T00", "2000-02-05T00",
                      "2000-02-06T00"], dtype="datetime64[ns]")
    cfg = config(regions=["global"], statistics={"n_resamples": 200})
    runs = {}
    for name, noise, times in (("good", 0.02, inits), ("poor", 0.2, inits[1:])):
        product = noisy_product(store, tmp_path / f"{name}.zarr", times, 4, noise=noise, seed=2, name=name)
        runs[name] = run_evaluate(cfg, product, store, tmp_path / name, progress=False).scores
    c = compare_scores([tmp_path / "good", tmp_path / "poor"], reference="poor")
    assert c.attrs["n_init_times"] == 5 and list(c["p_value"]["model"].values) == ["good"]
    # poor's scores are its own evaluation's (same cases); good's are recomputed on the 5 shared initial times.
    xr.testing.assert_allclose(c["poor"], runs["poor"]["poor"], rtol=1e-5)
    assert not np.allclose(c["good"].sel(metric="rmse"), runs["good"]["good"].sel(metric="rmse"), rtol=1e-6)
    p = c["p_value"].sel(model="good", metric="rmse")
    assert (p < 0.05).all() and (c["difference_interval"].sel(model="good", metric="rmse", bound="upper") < 0).all()
    assert main(["compare", str(tmp_path / "good"), str(tmp_path / "poor"), "--reference", "poor", "--out",
                 str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "good vs poor, global" in printed and "*" in printed
    index = json.loads((tmp_path / "cmp" / "figures" / "index.json").read_text())
    assert {f["kind"] for f in index["figures"]} == {"lead", "scorecard"}
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert set(table.model) == {"good"} and (table.p_value.dropna() > 0).all()
    assert main(["compare", str(tmp_path / "good"), str(tmp_path / "good")]) == 1
    assert "forecast compare: error:" in capsys.readouterr().err
    with pytest.raises(InputError, match="not among"):
        compare_scores([tmp_path / "good", tmp_path / "poor"], reference="nobody")


def test_gridpoint_scores_by_hand():
    lat, lon = [45.0, -45.0], [0.0, 180.0]
    truth = grid_field(np.arange(16.0).reshape(4, 2, 2), lat, lon, {"init_time": 4})
    s = gridpoint_scores(truth + 3.0, truth)
    np.testing.assert_allclose(s["rmse"], 3.0)
    np.testing.assert_allclose(s["bias"], 3.0)
    np.testing.assert_allclose(s["crps"], 3.0)  # a point forecast's CRPS is its absolute error
    members = xr.concat([truth - 1.0, truth + 1.0], "member")  # mean = truth; fair CRPS = 1 - 4 / (2 * 2 * 1) = 0
    s = gridpoint_scores(members, truth)
    np.testing.assert_allclose(s["rmse"], 0.0)
    np.testing.assert_allclose(s["crps"], 0.0, atol=1e-12)
    assert s["rmse"].dims == ("latitude", "longitude")
