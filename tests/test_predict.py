"""Rollouts and ensembles end to end through ``run_predict`` / ``forecast predict`` on tiny stores.

Expected values come from closed forms: :func:`forecast.testing.linear_package` is a linear model whose
n-step forecast is known exactly (growth ``(1 + r) ** n`` or the sum of a forcing over the steps).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml

from forecast import ERA5_CREDIT, __version__
from forecast.cli import main
from forecast.data.features import cos_zenith
from forecast.data.store import open_training_store
from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.models import SFNO, SFNOConfig, build_model
from forecast.products import COMPLETE_MARKER, check_product, open_product, open_stability
from forecast.rollout.config import PredictConfig
from forecast.rollout.generator import _forcing_steps, batch_forcings, rollout
from forecast.rollout.guards import RolloutDiverged
from forecast.rollout.predict import run_predict
from forecast.testing import linear_package, tiny_store, write_cds_months
from forecast.train.package import load_package, save_package

DT = np.timedelta64(6, "h")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tiny_store(tmp_path_factory.mktemp("predict"), attribution=ERA5_CREDIT)


@pytest.fixture(scope="module")
def linear(store) -> Path:
    """z500 grows by 10 % a step; msl accumulates 0.2 x cos(solar zenith angle) of each step's start time."""
    return linear_package(store.parent / "linear.pt", store, {"z500": "z500", "msl": "cos_zenith"},
                          {"z500": 0.1, "msl": 0.2})


@pytest.fixture(scope="module")
def sfno(store) -> Path:
    s = open_training_store(store)
    cfg = SFNOConfig(embed_dim=8, num_layers=2, lmax=8, mmax=8)
    torch.manual_seed(0)
    net = build_model(cfg, s.grid_type, *s.shape, 9, 2)
    return save_package(store.parent / "sfno.pt", net, cfg, True, s, "name: tiny\n", info={"name": "tiny-sfno"})


def config(packages, store, out, **tree) -> PredictConfig:
    base = {"packages": [str(p) for p in packages], "store": str(store), "output": {"path": str(out)},
            "init": {"times": ["2000-01-10T00:00"]}, "lead": 4, "stability": {"data_samples": 8}}
    for k, v in tree.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return PredictConfig.model_validate(base)


def normalised(store, times):
    s = open_training_store(store)
    x = np.stack([s.state[s.index_of(t)] for t in times]).astype(np.float64)
    return (x - s.mean[:, None, None]) / s.std[:, None, None], s


def closed_form(store, init, n_steps, rates=(0.1, 0.2)):
    """Physical forecast ``(n_steps + 1, C, H, W)`` of the ``linear`` fixture's model from ``init``."""
    z, s = normalised(store, [np.datetime64(init, "ns")])
    z = z[0]
    out = []
    for n in range(n_steps + 1):
        cz = cos_zenith(np.datetime64(init, "ns") + np.arange(n) * DT, s.latitudes, s.longitudes).sum(0)
        out.append(np.stack([(1 + rates[0]) ** n * z[0], z[1] + rates[1] * cz]))
    return np.stack(out) * s.std[:, None, None] + s.mean[:, None, None]


def product_array(ds, channels=("z500", "msl")):
    """``(init, lead, [member,] C, H, W)`` from a product in the forecast naming."""
    return np.stack([ds[c].values for c in channels], axis=-3)


def test_linear_model_rollout_matches_closed_form(store, linear, tmp_path):
    inits = ["2000-01-10T00:00", "2000-01-12T06:00"]
    cfg = config([linear], store, tmp_path / "f.zarr", init={"times": inits}, lead="3d")
    result = run_predict(cfg)
    assert result.complete and result.n_steps == 12 and (tmp_path / "f.zarr" / COMPLETE_MARKER).exists()
    ds = open_product(tmp_path / "f.zarr")
    assert check_product(ds) == []
    assert ds.z500.dims == ("init_time", "lead_time", "latitude", "longitude")
    assert ds.lead_time.values[-1] == np.timedelta64(72, "h") and ds.sizes["lead_time"] == 13
    np.testing.assert_array_equal(ds.valid_time.values[1, 4], np.datetime64("2000-01-13T06:00", "ns"))
    got = product_array(ds)
    for i, init in enumerate(inits):
        want = closed_form(store, init, 12)
        np.testing.assert_allclose(got[i], want, rtol=2e-6, atol=2e-3)  # float32 in Pa and m2 s-2
    assert ds.z500.attrs["units"] == "m**2 s**-2" and ds.msl.attrs["standard_name"] == "air_pressure_at_mean_sea_level"
    # Stability report, recomputed by hand from the product: area-weighted moments; Parseval for the spectrum
    # (the power summed over degrees is the integral of f^2 over the unit sphere, 4 pi x its area mean).
    stab = open_stability(tmp_path / "f.zarr")
    w = area_weights(ds.latitude.values)[:, None]
    x = got.astype(np.float64)  # (init, lead, C, H, W)
    mean = (x * w).mean((-2, -1))
    np.testing.assert_allclose(stab.global_mean.values, mean, rtol=1e-6)
    np.testing.assert_allclose(stab.global_std.values, np.sqrt((((x - mean[..., None, None]) ** 2) * w).mean((-2, -1))),
                               rtol=1e-5)
    end = stab.power_spectrum.sel(spectrum_lead_time=np.timedelta64(72, "h")).values.sum(-1)  # (C,)
    np.testing.assert_allclose(end, 4 * np.pi * (x[:, -1] ** 2 * w).mean((-2, -1)).mean(0), rtol=1e-6)
    assert stab.data_power_spectrum.dims == ("channel", "degree")


def test_lead_every_writes_every_kth_step_of_the_same_rollout(store, linear, tmp_path):
    init = "2000-01-10T00:00"
    cfg = config([linear], store, tmp_path / "daily.zarr", init={"times": [init]}, lead="2d",
                 output={"lead_every": 4})
    result = run_predict(cfg)
    assert result.complete and result.n_steps == 8
    ds = open_product(tmp_path / "daily.zarr")
    np.testing.assert_array_equal(ds.lead_time.values, np.array([0, 24, 48], dtype="timedelta64[h]"))
    np.testing.assert_allclose(product_array(ds)[0], closed_form(store, init, 8)[::4], rtol=2e-6, atol=2e-3)
    assert open_stability(tmp_path / "daily.zarr").global_mean.shape == (1, 3, 2)
    with pytest.raises(InputError, match="lead_every 12"):
        run_predict(config([linear], store, tmp_path / "none.zarr", init={"times": [init]}, lead=8,
                           output={"lead_every": 12, "include_initial": False}))


def test_streaming_write_equals_in_memory_rollout(store, sfno, tmp_path):
    inits = np.array(["2000-01-05T00", "2000-01-06T00", "2000-01-07T06"], dtype="datetime64[ns]")
    cfg = config([sfno], store, tmp_path / "s.zarr", init={"times": [str(t) for t in inits]}, lead=9, max_batch=2,
                 output={"lead_chunk": 4})
    run_predict(cfg)
    ds = open_product(tmp_path / "s.zarr")
    assert ds.z500.encoding["chunks"] == (1, 4, 16, 32)
    pkg = load_package(sfno)
    f = pkg.build_forecaster()
    x0, s = normalised(store, inits)
    states = [torch.from_numpy(x0).float()]
    states += [step.state for step in rollout(f, states[0], inits, 9, "6h", s.latitudes, s.longitudes)]
    in_memory = pkg.denormalise(torch.stack(states, 1)).numpy()  # (init, lead, C, H, W)
    np.testing.assert_allclose(product_array(ds), in_memory, rtol=1e-5, atol=1e-2)


def test_guard_stops_a_runaway_and_keeps_a_readable_partial_product(store, tmp_path):
    pkg = linear_package(tmp_path / "fast.pt", store, {"z500": "z500", "msl": "msl"}, {"z500": 0.5, "msl": 0.0})
    init = "2000-01-10T00:00"
    z, _ = normalised(store, [np.datetime64(init, "ns")])
    bad = int(np.argmax([(1.5**n) * np.abs(z[0, 0]).max() > 20.0 for n in range(40)]))  # first step past 20 std
    out = tmp_path / "div.zarr"
    cfg = config([pkg], store, out, init={"times": [init]}, lead=40, guard={"max_abs_normalised": 20.0})
    with pytest.raises(RolloutDiverged, match=f"step {bad} .*channel z500") as info:
        run_predict(cfg)
    assert info.value.step == bad and info.value.valid_time == np.datetime64(init, "ns") + bad * DT
    with pytest.raises(InputError, match="incomplete"):
        open_product(out)
    ds = open_product(out, allow_incomplete=True)
    assert ds.attrs["complete"] is False and "diverged at step" in ds.attrs["incomplete_reason"]
    assert ds.attrs["last_lead_written"] == bad - 1 and not (out / COMPLETE_MARKER).exists()
    z500 = ds.z500.values[0]
    rates = (0.5, 0.0)
    want = closed_form(store, init, bad - 1, rates)
    np.testing.assert_allclose(z500[:bad], want[:, 0], rtol=2e-6)
    assert np.isnan(z500[bad:]).all()
    assert check_product(ds) == []
    assert int(np.isfinite(open_stability(out).global_mean.values[0, :, 0]).sum()) == bad


def test_non_finite_state_stops_the_cli_run_with_exit_status_3(store, tmp_path, capsys):
    pkg = linear_package(tmp_path / "boom.pt", store, {"z500": "z500", "msl": "msl"}, {"z500": 10.0, "msl": 0.0})
    init = np.datetime64("2000-01-10T00:00", "ns")
    # The forecaster computes x + x * 10 in float32, de-normalised x * std + mean: find where either
    # first overflows to Inf (de-normalising does, one step before the state itself).
    x, s = normalised(store, [init])
    x = x[0, 0].astype(np.float32)
    std, mean = np.float32(s.std[0]), np.float32(s.mean[0])
    bad = 0
    with np.errstate(over="ignore", invalid="ignore"):
        while np.isfinite(x * std + mean).all():
            x, bad = x + x * np.float32(10.0), bad + 1
    out = tmp_path / "inf.zarr"
    rc = main(["predict", str(pkg), "--store", str(store), "--init", "2000-01-10T00:00", "--lead", "50",
               "--out", str(out), "--no-progress", "--set", "guard.max_abs_normalised=null"])
    assert rc == 3
    err = capsys.readouterr().err
    assert f"diverged at step {bad} (valid time {pd.Timestamp(init + bad * DT):%Y-%m-%dT%H:%M})" in err
    assert "non-finite" in err and "partial product (complete: false)" in err
    ds = open_product(out, allow_incomplete=True)
    assert np.isfinite(ds.z500.values[0, :bad]).all() and np.isnan(ds.z500.values[0, bad:]).all()


def test_cli_package_form_refuses_to_overwrite_silently(store, linear, tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    args = ["predict", str(linear), "--store", str(store), "--init", "2000-01-10T00:00/2000-01-11T00:00/12h",
            "--lead", "1d", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "3 initial time(s) x 1 member(s) x 4 step(s)" in capsys.readouterr().out
    stamp = (out / "zarr.json").stat().st_mtime_ns
    assert main(args) == 1
    assert "already exists" in capsys.readouterr().err and (out / "zarr.json").stat().st_mtime_ns == stamp
    assert main([*args, "--overwrite", "--netcdf"]) == 0
    nc = xr.open_dataset(out.with_suffix(".nc"))
    np.testing.assert_array_equal(nc.z500.values, open_product(out, channels=False).z500.values)


def test_package_form_default_output_path(store, linear):
    from forecast.rollout.config import build_predict_config

    cfg = build_predict_config(linear, [f"store={store}", "init={times: [2000-01-10T06]}", "lead=5d"])
    assert cfg.output.path == str(linear.parent / "forecasts" / f"{linear.parent.name}-20000110T0600-5d.zarr")


def test_product_records_provenance_and_the_era5_credit(store, linear, tmp_path):
    run_predict(config([linear], store, tmp_path / "p.zarr"))
    attrs = open_product(tmp_path / "p.zarr").attrs
    assert attrs["model_sha256"] == hashlib.sha256(Path(linear).read_bytes()).hexdigest()
    assert attrs["forecast_version"] == __version__ and attrs["Conventions"].startswith("CF-")
    assert ERA5_CREDIT in attrs["attribution"]
    again = PredictConfig.model_validate(yaml.safe_load(attrs["predict_config"]))
    assert again == config([linear], store, tmp_path / "p.zarr")


def test_initial_conditions_from_a_users_files_through_ingestion(store, linear, tmp_path):
    files = write_cds_months(tmp_path / "mine", "2000-01-01", 1, variables=("msl", "z"), level=500, nlat=19, nlon=36)
    pkg = load_package(linear)
    ingest = {"sources": [{"paths": [str(p) for p in files]}],
              "channels": [{"variable": "z", "level": 500}, {"variable": "msl"}],
              "grid": {"type": pkg.grid_type, "nlat": 16, "nlon": 32}, "stats": None,
              "output": {"path": str(tmp_path / "mine.zarr")}}
    (tmp_path / "ingest.yaml").write_text(yaml.safe_dump(ingest))
    tree = config([linear], store, tmp_path / "u.zarr").model_dump(mode="json")
    tree.update(store=None, ingest=str(tmp_path / "ingest.yaml"))
    run_predict(PredictConfig.model_validate(tree))
    mine = xr.open_zarr(tmp_path / "mine.zarr").sel(time="2000-01-10T00:00")
    ds = open_product(tmp_path / "u.zarr")
    np.testing.assert_array_equal(ds.msl.values[0, 0], mine.msl.values)  # lead 0 is the user's analysis
    bad = dict(ingest, grid={"type": "equiangular", "nlat": 19, "nlon": 36}, output={"path": str(tmp_path / "b.zarr")})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    tree.update(ingest=str(tmp_path / "bad.yaml"), output={"path": str(tmp_path / "b2.zarr")})
    with pytest.raises(InputError, match="differs from the model's 16 x 32"):
        run_predict(PredictConfig.model_validate(tree))
    assert not (tmp_path / "b2.zarr").exists()


# -- ensembles ----------------------------------------------------------------------------------------------


def test_members_run_as_one_batch_and_equal_a_per_member_loop(store, sfno, tmp_path):
    members, n_steps = 6, 5
    cfg = config([sfno], store, tmp_path / "e.zarr", lead=n_steps,
                 ensemble={"members": members, "seed": 1, "perturbation": {"type": "white_noise", "amplitude": 0.1}})
    calls = []

    def count(module, inputs, output):
        if isinstance(module, SFNO):
            calls.append(inputs[0].shape[0])

    hook = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        run_predict(cfg)
    finally:
        hook.remove()
    assert calls == [members] * n_steps  # one forward pass per step for all members
    ds = open_product(tmp_path / "e.zarr")
    assert ds.z500.dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    assert check_product(ds) == []
    got = product_array(ds)[0]  # (lead, member, C, H, W)
    pkg = load_package(sfno)
    f = pkg.build_forecaster()
    s = open_training_store(store)
    t0 = np.array(["2000-01-10T00:00"], dtype="datetime64[ns]")
    for m in range(members):  # the loop the batch replaces, from each member's (perturbed) initial state
        x = pkg.normalise(torch.from_numpy(got[0, m].copy()))[None]
        loop = [step.state for step in rollout(f, x, t0, n_steps, "6h", s.latitudes, s.longitudes)]
        np.testing.assert_allclose(got[1:, m], pkg.denormalise(torch.cat(loop)).numpy(), rtol=1e-5, atol=0.05)


def test_linear_ensemble_spread_has_its_closed_form(store, linear, tmp_path):
    cfg = config([linear], store, tmp_path / "e.zarr", lead=6,
                 ensemble={"members": 4, "control": True, "perturbation": {"type": "white_noise", "amplitude": 0.2}})
    run_predict(cfg)
    ds = open_product(tmp_path / "e.zarr")
    got = product_array(ds)[0]  # (lead, member, C, H, W)
    np.testing.assert_allclose(got[:, 0], closed_form(store, "2000-01-10T00:00", 6), rtol=2e-6, atol=2e-3)
    assert ds.member_perturbed.values.tolist() == [0, 1, 1, 1]
    s = open_training_store(store)
    dev = (got - got[:, :1]) / s.std[None, None, :, None, None]  # normalised departures from the control
    for n in range(7):
        np.testing.assert_allclose(dev[n, 1:, 0], 1.1**n * dev[0, 1:, 0], rtol=1e-3, atol=1e-4)  # z500 grows
        np.testing.assert_allclose(dev[n, 1:, 1], dev[0, 1:, 1], atol=1e-4)  # msl: forcing-driven, spread constant
    w = area_weights(s.latitudes)[:, None]
    rms = np.sqrt((dev[0, 1:] ** 2 * w).mean((-2, -1)))  # (member, C)
    np.testing.assert_allclose(rms, 0.2, rtol=0.1)  # white noise of std 0.2 channel std


def test_reruns_are_identical_and_members_do_not_depend_on_batching(store, sfno, tmp_path):
    ens = {"members": 4, "seed": 7, "perturbation": {"type": "spherical_grf", "amplitude": 0.1,
                                                     "length_scale_km": 1500}}
    inits = {"times": ["2000-01-10T00:00", "2000-01-11T00:00"]}
    a = config([sfno], store, tmp_path / "a.zarr", init=inits, lead=3, ensemble=ens)
    run_predict(a)
    run_predict(a.model_copy(update={"output": a.output.model_copy(update={"path": str(tmp_path / "b.zarr")})}))
    small = config([sfno], store, tmp_path / "c.zarr", init=inits, lead=3, max_batch=2,
                   ensemble={**ens, "members": 2})
    run_predict(small)
    ra, rb, rc = (product_array(open_product(tmp_path / p)) for p in ("a.zarr", "b.zarr", "c.zarr"))
    np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(ra[:, 0, :2], rc[:, 0])  # same seed, init, member -> same perturbation
    np.testing.assert_allclose(ra[:, :, :2], rc, rtol=1e-5, atol=0.05)
    assert not np.allclose(ra[:, 0, 0], ra[:, 0, 1])
    attrs = open_product(tmp_path / "a.zarr").attrs
    assert attrs["ensemble_seed"] == 7 and attrs["perturbation_type"] == "spherical_grf"
    assert yaml.safe_load(attrs["perturbation"])["length_scale_km"] == 1500


def test_lagged_ensemble_starts_from_earlier_analyses(store, linear, tmp_path):
    cfg = config([linear], store, tmp_path / "lag.zarr", lead=2,
                 ensemble={"members": 3, "lagged": {"lags": 3, "every": 2}})
    run_predict(cfg)
    ds = open_product(tmp_path / "lag.zarr")
    assert ds.member_lag_steps.values.tolist() == [0, 2, 4]
    got = product_array(ds)[0]
    t0 = np.datetime64("2000-01-10T00:00", "ns")
    for m, lag in enumerate([0, 2, 4]):  # member m started lag steps earlier: lead n is its step lag + n
        want = closed_form(store, t0 - lag * DT, lag + 2)[lag:]
        np.testing.assert_allclose(got[:, m], want, rtol=2e-6, atol=2e-3)


def test_multi_model_ensemble_splits_members_among_packages(store, linear, tmp_path):
    other = linear_package(tmp_path / "other.pt", store, {"z500": "z500", "msl": "cos_zenith"},
                           {"z500": -0.05, "msl": 0.5})
    cfg = config([linear, other], store, tmp_path / "mm.zarr", lead=3, ensemble={"members": 4})
    run_predict(cfg)
    ds = open_product(tmp_path / "mm.zarr")
    assert ds.member_model.values.tolist() == [0, 0, 1, 1]
    assert len(ds.attrs["model_sha256"].split()) == 2
    got = product_array(ds)[0]
    for m, rates in enumerate([(0.1, 0.2), (0.1, 0.2), (-0.05, 0.5), (-0.05, 0.5)]):
        np.testing.assert_allclose(got[:, m], closed_form(store, "2000-01-10T00:00", 3, rates), rtol=2e-6, atol=2e-3)


def test_bred_vectors_on_analyses_have_the_set_amplitude(store, linear, tmp_path):
    cfg = config([linear], store, tmp_path / "bv.zarr", lead=1,
                 ensemble={"members": 3, "control": True, "seed": 3,
                           "perturbation": {"type": "bred_vectors", "amplitude": 0.3, "cycles": 3, "cycle_steps": 2}})
    run_predict(cfg)
    ds = open_product(tmp_path / "bv.zarr")
    s = open_training_store(store)
    lead0 = product_array(ds)[0, 0]  # (member, C, H, W)
    dev = (lead0[1:] - lead0[:1]) / s.std[None, :, None, None]
    rms = np.sqrt((dev**2 * area_weights(s.latitudes)[:, None]).mean((-2, -1)))
    np.testing.assert_allclose(rms, 0.3, rtol=1e-4)  # rescaled to exactly the amplitude per member and channel
    with pytest.raises(InputError, match="earlier analyses"):  # breeding 6 steps before the store's first time
        run_predict(config([linear], store, tmp_path / "bv2.zarr", init={"times": ["2000-01-01T06:00"]}, lead=1,
                           ensemble=cfg.ensemble.model_dump(mode="json")))


@pytest.mark.slow
def test_memory_does_not_grow_with_lead_count(store, tmp_path):
    """Peak RSS of a 40-lead then a 1000-lead 32-member rollout in one fresh process: keeping every lead
    would cost 1000 x 32 x 2 x 16 x 32 x 4 B = 131 MB more."""
    import json
    import subprocess
    import sys

    linear = linear_package(tmp_path / "slow.pt", store, {"z500": "z500", "msl": "cos_zenith"},
                            {"z500": -0.01, "msl": 0.01})
    script = f"""
import json, resource
from forecast.rollout.config import PredictConfig
from forecast.rollout.predict import run_predict
rss = []
for lead in (40, 1000):
    cfg = PredictConfig.model_validate({{"packages": [{str(linear)!r}], "store": {str(store)!r},
        "init": {{"times": ["2000-01-10T00:00"]}}, "lead": lead,
        "output": {{"path": {str(tmp_path)!r} + f"/m{{lead}}.zarr"}},
        "ensemble": {{"members": 32, "perturbation": {{"type": "white_noise"}}}}, "stability": {{"data_samples": 4}}}})
    run_predict(cfg)
    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(rss))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    short, long = json.loads(out.stdout.strip().splitlines()[-1])
    assert long - short < 40, f"peak RSS grew from {short:.0f} MB to {long:.0f} MB with 25x the leads"


@pytest.mark.parametrize("budget", [1, 3 * 8 * 16 * 4 * 2 * 3, 2**30])
def test_forcings_computed_several_steps_at_a_time_equal_the_step_by_step_ones(budget):
    """The rollout evaluates the solar geometry of several steps in one call (as many as fit in a budget);
    every step's forcings equal batch_forcings at that step's valid times, for members sharing a time or not."""
    lat, lon = np.linspace(80.0, -80.0, 8), np.arange(16) * 22.5
    step = np.timedelta64(6, "h")
    for times in (np.array(["2000-03-01T00", "2000-03-01T00", "2000-07-01T06"], dtype="datetime64[ns]"),
                  np.array(["2000-12-31T18"], dtype="datetime64[ns]")):
        got = list(_forcing_steps(times, step, 7, lat, lon, torch.device("cpu"), budget_bytes=budget))
        assert len(got) == 7
        for k, f in enumerate(got):
            torch.testing.assert_close(f, batch_forcings(times + k * step, lat, lon), rtol=0, atol=0)
