"""Training: data windows, the loop end to end, exact resume after a kill, DDP equivalence, model package."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import xarray as xr
import yaml

from forecast.config import dump_config
from forecast.data.dataset import WindowDataset
from forecast.data.store import open_training_store
from forecast.grids import area_weights
from forecast.ingest.config import IngestConfig
from forecast.ingest.pipeline import run_ingest
from forecast.testing import write_cds_months
from forecast.train.config import TrainConfig
from forecast.train.loop import EpochSampler, build_forecaster, train
from forecast.train.losses import AreaWeightedMSE
from forecast.train.objectives import UnrolledMSE
from forecast.train.package import load_package


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    files = write_cds_months(root / "raw", "2000-01-01", 2, variables=("msl", "z"), level=500)
    cfg = IngestConfig.model_validate({
        "sources": [{"paths": [str(p) for p in files]}],
        "channels": [{"variable": "z", "level": 500}, {"variable": "msl"}],
        "grid": {"type": "legendre-gauss", "nlat": 16, "nlon": 32},
        "stats": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
        "output": {"path": str(root / "store.zarr")},
    })
    return run_ingest(cfg, progress=False).path


def train_config(store: Path, run_dir: Path, **over) -> TrainConfig:
    tree = {
        "name": "tiny",
        "data": {"store": str(store), "train": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
                 "valid": {"start": "2000-02-01", "end": "2000-02-29T18:00"}, "batch_size": 4, "workers": 0},
        "model": {"type": "sfno", "embed_dim": 8, "num_layers": 2, "lmax": 8, "mmax": 8},
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "validation": {"lead_steps": [1, 4], "max_cases": 4},
        "epochs": 2,
        "steps_per_epoch": 6,
        "checkpoint_every": 2,
        "output_dir": str(run_dir),
        "device": "cpu",
    }
    for k, v in over.items():
        if isinstance(v, dict):
            tree[k] = {**tree.get(k, {}), **v}
        else:
            tree[k] = v
    return TrainConfig.model_validate(tree)


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


def test_windows_are_normalised_and_aligned(store):
    s = open_training_store(store)
    ds = WindowDataset(s, np.datetime64("2000-01-01"), np.datetime64("2000-01-02T00:00"), n_steps=2)
    assert len(ds) == 3  # windows starting 00, 06, 12 UTC fit before 2000-01-02T00
    item = ds[1]
    assert item["state"].shape == (2, 16, 32) and item["targets"].shape == (2, 2, 16, 32)
    assert item["forcings"].shape == (3, 3, 16, 32)
    raw = s.state[2]  # the target one step after the second window's start
    np.testing.assert_allclose(item["targets"][0].numpy(), (raw - s.mean[:, None, None]) / s.std[:, None, None],
                               rtol=1e-5, atol=1e-5)
    assert int(item["time"]) == np.datetime64("2000-01-01T06:00", "ns").astype(np.int64)


def test_sampler_is_deterministic_sharded_and_resumable():
    a = list(EpochSampler(40, 4, seed=3))
    b = list(EpochSampler(40, 4, seed=3))
    assert a == b and sorted(a) == list(range(40))
    r0, r1 = EpochSampler(40, 2, 3, rank=0, world_size=2), EpochSampler(40, 2, 3, rank=1, world_size=2)
    assert sorted(list(r0) + list(r1)) == list(range(40)) and not set(r0) & set(r1)
    resumed = EpochSampler(40, 4, seed=3)
    resumed.set_epoch(0, skip_batches=3)
    assert list(resumed) == a[12:]


def test_area_weighted_mse_hand_value():
    lat = np.array([45.0, -45.0])  # two cells of equal area: weights 1, 1
    loss = AreaWeightedMSE(lat, np.array([1.0, 3.0]))
    pred = torch.zeros(1, 2, 2, 3)
    target = torch.ones(1, 2, 2, 3)
    target[:, 1] = 2.0
    # channel weights normalised to mean 1 -> 0.5 and 1.5; errors^2 1 and 4 -> mean (0.5 + 6) / 2
    assert float(loss(pred, target)) == pytest.approx(3.25)
    np.testing.assert_allclose(loss.per_channel(pred, target).numpy(), [1.0, 4.0])


def test_uniform_latitude_weighting_weighs_every_row_alike():
    """Area weighting gives a row its cell area; uniform gives each row 1, so an error at the polar row counts
    as much as one at the equator."""
    lat = np.array([80.0, 0.0])  # cells 90..40 and 40..-90 deg (bounds halfway between centres, then the poles)
    pred = torch.zeros(1, 1, 2, 4)
    target = torch.zeros(1, 1, 2, 4)
    target[..., 0, :] = 2.0  # error 2 at the polar row only
    area = AreaWeightedMSE(lat)
    uniform = AreaWeightedMSE(lat, latitude_weighting="uniform")
    a = np.array([1 - np.sin(np.deg2rad(40.0)), np.sin(np.deg2rad(40.0)) + 1])  # sin(upper) - sin(lower)
    assert float(area(pred, target)) == pytest.approx(4.0 * a[0] / a.mean() / 2)
    assert float(uniform(pred, target)) == pytest.approx(4.0 / 2)


def test_zonal_mean_weight_counts_only_the_zonal_mean_part_of_the_error_again():
    """An error constant along each latitude row is counted 1 + w times, one with zero zonal mean once."""
    lat = np.array([45.0, -45.0])
    pred = torch.zeros(1, 1, 2, 4)
    zonal = torch.full((1, 1, 2, 4), 2.0)
    wave = torch.tensor([1.0, -1.0, 1.0, -1.0]).expand(1, 1, 2, 4)
    loss = AreaWeightedMSE(lat, zonal_mean_weight=3.0)
    assert float(loss(pred, zonal)) == pytest.approx(4.0 * (1 + 3.0))
    assert float(loss(pred, wave)) == pytest.approx(1.0)
    assert float(loss(pred, zonal + wave)) == pytest.approx(4.0 * 4 + 1.0)


def test_tiny_run_end_to_end_and_package(store, tmp_path):
    cfg = train_config(store, tmp_path / "run")
    result = train(cfg, progress=False)
    assert result.steps == 12
    for name in ("last.pt", "best.pt", "model.pt", "metrics.jsonl", "config.yaml"):
        assert (tmp_path / "run" / name).exists()
    curve = losses(tmp_path / "run")
    assert len(curve) == 12 and np.mean(curve[-3:]) < np.mean(curve[:3])
    rmse = result.last_validation["rmse"]
    assert set(rmse) == {"1", "4"} and set(rmse["1"]) == {"z500", "msl"}
    assert 0 < rmse["1"]["msl"] < 3000  # physical units (Pa)
    pkg = load_package(tmp_path / "run" / "model.pt")
    assert pkg.channels == ["z500", "msl"] and pkg.units == ["m**2 s**-2", "Pa"] and pkg.grid_type == "legendre-gauss"
    assert TrainConfig.model_validate(yaml.safe_load(pkg.train_config)) == cfg
    s = open_training_store(store)
    f1 = pkg.build_forecaster()
    f2 = build_forecaster(cfg, s)
    f2.load_state_dict(torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"])
    f2.eval()
    item = WindowDataset(s, None, None, 1)[0]
    x, fz = item["state"][None], item["forcings"][None, 0]
    torch.testing.assert_close(f1(x, fz), f2(x, fz))
    with pytest.raises(Exception, match="already holds a run"):
        train(cfg, progress=False)


def test_killed_run_resumes_to_the_same_loss_trajectory(store, tmp_path):
    # Both runs go through the CLI in fresh processes so they share thread settings: a different
    # intra-op thread count reorders float reductions and the comparison below is bit-exact.
    exe = str(Path(sys.executable).parent / "forecast")
    ref_file = tmp_path / "ref.yaml"
    ref_file.write_text(dump_config(train_config(store, tmp_path / "ref")))
    subprocess.run([exe, "train", str(ref_file), "--no-progress"], check=True, stderr=subprocess.DEVNULL)
    cfg = train_config(store, tmp_path / "killed")
    cfg_file = tmp_path / "killed.yaml"
    cfg_file.write_text(dump_config(cfg))
    proc = subprocess.Popen([exe, "train", str(cfg_file), "--no-progress"], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "killed" / "last.pt").exists():
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(losses(tmp_path / "killed")) < 12
    subprocess.run([exe, "train", str(cfg_file), "--resume", "--no-progress"], check=True)
    np.testing.assert_array_equal(losses(tmp_path / "killed"), losses(tmp_path / "ref"))


def _ddp_worker(rank: int, world: int, port: int, store: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    cfg = train_config(Path(store), Path(out))
    s = open_training_store(store)
    fc = build_forecaster(cfg, s)
    model = torch.nn.parallel.DistributedDataParallel(UnrolledMSE(fc, 2, AreaWeightedMSE(s.latitudes)))
    batch = [WindowDataset(s, None, None, 2)[i] for i in range(4)]
    mine = batch[rank * 2 : rank * 2 + 2]
    opt = torch.optim.AdamW(fc.parameters(), lr=1e-3)
    loss = model(torch.stack([b["state"] for b in mine]), torch.stack([b["forcings"] for b in mine]),
                 torch.stack([b["targets"] for b in mine]))
    loss.backward()
    opt.step()
    if rank == 0:
        torch.save(fc.state_dict(), out + "/ddp.pt")
    dist.destroy_process_group()


def test_two_process_ddp_step_equals_one_process_on_the_whole_batch(store, tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(store), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    cfg = train_config(store, tmp_path)
    s = open_training_store(store)
    fc = build_forecaster(cfg, s)
    batch = [WindowDataset(s, None, None, 2)[i] for i in range(4)]
    opt = torch.optim.AdamW(fc.parameters(), lr=1e-3)
    # The loss written out, not through the objective the workers use.
    pred = fc.unroll(torch.stack([b["state"] for b in batch]), torch.stack([b["forcings"] for b in batch]), 2)
    loss = AreaWeightedMSE(s.latitudes)(pred, torch.stack([b["targets"] for b in batch])[:, :2])
    loss.backward()
    opt.step()
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for k, v in fc.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_store_without_stats_is_refused(tmp_path):
    files = write_cds_months(tmp_path / "raw", "2000-01-01", 1, variables=("msl",))
    cfg = IngestConfig.model_validate({"sources": [{"paths": [str(files[0])]}], "channels": [{"variable": "msl"}],
                                       "grid": {"nlat": 37, "nlon": 72}, "stats": None,
                                       "output": {"path": str(tmp_path / "s.zarr")}})
    run_ingest(cfg, progress=False)
    with pytest.raises(Exception, match="no normalisation statistics"):
        open_training_store(tmp_path / "s.zarr")
    assert xr.open_zarr(tmp_path / "s.zarr").sizes["time"] == 124


def test_skill_table_scores_model_and_baselines_on_the_same_cases(store, tmp_path):
    from forecast.rollout.skill import skill_table

    cfg = train_config(store, tmp_path / "run", epochs=1, steps_per_epoch=3)
    train(cfg, progress=False)
    s = open_training_store(store)
    table = skill_table(load_package(tmp_path / "run" / "model.pt"), s, np.datetime64("2000-02-01"),
                        np.datetime64("2000-02-29T18:00"), [1, 4], max_cases=6,
                        clim_period=(None, np.datetime64("2000-01-31T18:00")))
    scores = table.query("reference == ''")
    assert set(scores.model) == {"model", "persistence", "climatology", "training_mean"}
    assert set(table.lead_hours) == {6, 24} and set(table.metric) == {"rmse", "acc"}
    assert table.query("model == 'climatology' and metric == 'acc'").empty  # undefined, so not reported
    assert table.value.notna().all()
    assert ((scores.lower <= scores.value + 1e-9) & (scores.value <= scores.upper + 1e-9)).all()
    # Paired differences: model minus each baseline, with an interval around it.
    diffs = table.query("reference != '' and metric == 'rmse'")
    assert set(diffs.reference) == {"persistence", "climatology", "training_mean"}
    for r in diffs.itertuples():
        pick = scores.query(f"metric == 'rmse' and channel == '{r.channel}' and lead_hours == {r.lead_hours}")
        by_name = dict(zip(pick.model, pick.value, strict=True))
        assert r.value == pytest.approx(by_name["model"] - by_name[r.reference], rel=1e-9, abs=1e-12)
        assert r.lower <= r.value + 1e-9 <= r.upper + 2e-9
    # Persistence RMSE at 24 h by hand for msl on the same six cases.
    first = np.flatnonzero(s.times >= np.datetime64("2000-02-01"))
    first = first[first + 4 < s.times.size]
    first = first[s.times[first + 4] <= np.datetime64("2000-02-29T18:00")]
    cases = first[np.unique(np.linspace(0, first.size - 1, 6).round().astype(int))]
    c = s.channels.index("msl")
    w = lat_weights_np(s.latitudes)
    err = (s.state[cases + 4, c].astype(np.float64) - s.state[cases, c]) ** 2
    expected = np.sqrt((err * w[None, :, None]).mean(axis=(1, 2)).mean())
    got = scores.query("model == 'persistence' and metric == 'rmse' and channel == 'msl' and lead_hours == 24").value
    assert float(got.iloc[0]) == pytest.approx(expected, rel=1e-6)
    # The training mean: January's time mean at every grid point, scored at the valid times by hand.
    jan = s.times <= np.datetime64("2000-01-31T18:00")
    mean = s.state[jan, c].astype(np.float64).mean(axis=0)
    err = (s.state[cases + 4, c].astype(np.float64) - mean) ** 2
    expected = np.sqrt((err * w[None, :, None]).mean(axis=(1, 2)).mean())
    got = scores.query("model == 'training_mean' and metric == 'rmse' and channel == 'msl' and lead_hours == 24")
    assert float(got.value.iloc[0]) == pytest.approx(expected, rel=1e-6)


def lat_weights_np(lat: np.ndarray) -> np.ndarray:
    from forecast.grids import area_weights

    return area_weights(lat)


def test_resume_refuses_another_config_and_starts_fresh_without_checkpoint(store, tmp_path):
    cfg = train_config(store, tmp_path / "run", epochs=1, steps_per_epoch=2)
    result = train(cfg, resume=True, progress=False)  # nothing to resume: a new run
    assert result.steps == 2
    changed = train_config(store, tmp_path / "run", epochs=1, steps_per_epoch=2, optim={"lr": 1e-2})
    with pytest.raises(Exception, match="belongs to a run with a different config"):
        train(changed, resume=True, progress=False)


def test_init_from_starts_at_the_packaged_weights(store, tmp_path):
    train(train_config(store, tmp_path / "a", epochs=1, steps_per_epoch=3), progress=False)
    tuned = train_config(store, tmp_path / "b", epochs=1, steps_per_epoch=1, init_from=str(tmp_path / "a/model.pt"),
                         optim={"lr": 1e-12, "warmup_steps": 0, "weight_decay": 0.0})
    train(tuned, progress=False)
    a, b = load_package(tmp_path / "a/model.pt").state_dict, load_package(tmp_path / "b/model.pt").state_dict
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-9)


def test_torchrun_two_processes_through_the_cli(store, tmp_path):
    cfg = train_config(store, tmp_path / "ddp", epochs=1, steps_per_epoch=2)
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(dump_config(cfg))
    torchrun = str(Path(sys.executable).parent / "torchrun")
    res = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port", str(29600 + os.getpid() % 300),
                          "-m", "forecast.cli", "train", str(cfg_file), "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 process(es)" in res.stderr
    assert len(losses(tmp_path / "ddp")) == 2 and (tmp_path / "ddp" / "model.pt").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_nodes_equal_one_process_on_the_same_global_batch(store, tmp_path):
    """Two "nodes" (one torchrun agent each, 1 process per node) meeting through c10d rendezvous on 127.0.0.1:
    the loss trajectory and weights equal one process's on the same global batch, and rank 0's checkpoint
    resumes the run."""
    tree = {"epochs": 2, "steps_per_epoch": 2, "checkpoint_every": 1}
    cfg_file = tmp_path / "nodes.yaml"
    cfg_file.write_text(dump_config(train_config(store, tmp_path / "nodes", **tree)))
    torchrun = str(Path(sys.executable).parent / "torchrun")
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen(
        [torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank), "--rdzv-backend", "c10d",
         "--rdzv-endpoint", endpoint, "--rdzv-id", f"test-{os.getpid()}", "--max-restarts", "0",
         "-m", "forecast.cli", "train", str(cfg_file), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        outputs = [n.communicate(timeout=300) for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    assert all(n.returncode == 0 for n in nodes), "\n".join(err[-2000:] for _, err in outputs)
    assert any("2 process(es)" in err for _, err in outputs)
    train(train_config(store, tmp_path / "one", **tree), progress=False)
    two, one = np.array(losses(tmp_path / "nodes")), np.array(losses(tmp_path / "one"))
    print(f"\n2 nodes x 1 process vs 1 process, losses {two.tolist()} vs {one.tolist()}: largest relative "
          f"difference {np.max(np.abs(two - one) / one):.2e}")
    np.testing.assert_allclose(two, one, rtol=1e-5)
    a, b = load_package(tmp_path / "nodes/model.pt").state_dict, load_package(tmp_path / "one/model.pt").state_dict
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)
    # Only rank 0 wrote the checkpoint, atomically (no temporaries left), at the end of the run; it resumes.
    assert sorted(p.name for p in (tmp_path / "nodes").iterdir() if p.name.startswith(".")) == []
    result = train(train_config(store, tmp_path / "nodes", **tree), resume=True, progress=False)
    assert result.steps == 4 and len(losses(tmp_path / "nodes")) == 4


def test_rollout_schedule_unrolls_more_steps_in_later_epochs(store, tmp_path):
    cfg = train_config(store, tmp_path / "run", epochs=3, steps_per_epoch=2, loss={"rollout_schedule": {1: 2, 2: 3}})
    assert [cfg.loss.steps_at(e) for e in range(4)] == [1, 2, 3, 3] and cfg.loss.max_steps == 3
    train(cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["epoch"], r["rollout_steps"]) for r in rows if r["kind"] == "train"]
    assert steps == [(0, 1), (0, 1), (1, 2), (1, 2), (2, 3), (2, 3)]
    with pytest.raises(Exception, match="rollout_schedule"):
        train_config(store, tmp_path / "bad", loss={"rollout_schedule": {1: 0}})


@pytest.mark.parametrize("noise", [0.1, {"type": "spherical_grf", "amplitude": 0.1, "length_scale_km": 3000}])
def test_input_noise_changes_the_trajectory_and_resumes_exactly(store, tmp_path, noise):
    plain = train(train_config(store, tmp_path / "plain", epochs=1, steps_per_epoch=4), progress=False)
    noisy_cfg = train_config(store, tmp_path / "noisy", epochs=1, steps_per_epoch=4, loss={"input_noise": noise})
    train(noisy_cfg, progress=False)
    assert losses(tmp_path / "noisy") != losses(tmp_path / "plain") and plain.steps == 4
    # Noise is drawn from the run's RNG, which the checkpoint carries: stop after 2 steps, resume, same curve.
    half = train_config(store, tmp_path / "half", epochs=1, steps_per_epoch=4, loss={"input_noise": noise})
    with pytest.MonkeyPatch.context() as mp_:
        import forecast.train.loop as loop

        calls = {"n": 0}
        real_step = loop._train_step

        def stop_after_two(run, batch):
            if calls["n"] == 2:
                raise KeyboardInterrupt
            calls["n"] += 1
            out = real_step(run, batch)
            run.checkpoint(run.epoch, calls["n"])
            return out

        mp_.setattr(loop, "_train_step", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            train(half, progress=False)
    train(half, resume=True, progress=False)
    np.testing.assert_allclose(losses(tmp_path / "half"), losses(tmp_path / "noisy"), rtol=1e-6)


def test_spherical_grf_input_noise_has_unit_variance_and_a_matern_spectrum():
    """Pointwise std = amplitude (area-weighted, over many draws), zero global mean, and the sample power
    per degree follows the configured Matérn spectrum: red, unlike white noise."""
    from torch_harmonics import RealSHT

    from forecast.grids import gaussian_latitudes
    from forecast.rollout.perturbations import matern_spectrum
    from forecast.train.config import InputNoiseConfig
    from forecast.train.noise import InputNoise

    nlat, nlon = 32, 64
    cfg = InputNoiseConfig.model_validate({"type": "spherical_grf", "amplitude": 0.3, "length_scale_km": 2500})
    noise = InputNoise(cfg, "legendre-gauss", nlat, nlon)  # the embedded store's grid
    torch.manual_seed(0)
    field = noise(torch.zeros(64, 2, nlat, nlon, dtype=torch.float64))  # (B, C, H, W)
    w = torch.as_tensor(area_weights(gaussian_latitudes(nlat)[0]))[:, None]
    assert abs(float((field.square() * w).mean().sqrt()) - 0.3) < 0.02
    assert float((field * w).mean((-2, -1)).abs().max()) < 1e-10  # degree 0 is left out
    coeffs = RealSHT(nlat, nlon, lmax=noise.lmax, mmax=noise.lmax, grid="legendre-gauss").double()(field)
    power = coeffs.abs().square()
    power[..., 1:] *= 2  # m > 0 stand for +-m
    per_degree = power.sum(-1).mean((0, 1))  # sum over m of |c_lm|^2, orthonormal harmonics
    expected = 0.3**2 * (2 * np.arange(noise.lmax) + 1) * matern_spectrum(noise.lmax, 2500, 1.5)
    ratio = per_degree[1:20].numpy() / expected[1:20]
    assert np.all(np.abs(ratio - 1) < 0.35), ratio
    white = InputNoise(InputNoiseConfig.model_validate(0.3), "equiangular", nlat, nlon)
    assert white.config.type == "white" and bool(white) and not InputNoise(InputNoiseConfig(), "equiangular", 4, 8)


def test_conserved_channels_keep_their_global_mean_through_a_rollout(store, tmp_path):
    cfg = train_config(store, tmp_path / "run", epochs=1, steps_per_epoch=2, conserve_global_mean=["msl"])
    train(cfg, progress=False)
    pkg = load_package(tmp_path / "run" / "model.pt")
    assert pkg.conserve_global_mean == ["msl"]
    forecaster = pkg.build_forecaster()
    s = open_training_store(store)
    item = WindowDataset(s, None, None, 1)[0]
    w = torch.as_tensor(area_weights(s.latitudes), dtype=torch.float64)[:, None]

    def global_mean(x):  # (C,) physical units
        return (pkg.denormalise(x.double()) * w).mean(dim=(-2, -1))

    state, forcing = item["state"][None], item["forcings"][None, 0]
    start = global_mean(state[0])
    with torch.no_grad():
        for _ in range(50):
            state = forecaster(state, forcing)
    drift = global_mean(state[0]) - start
    assert abs(float(drift[1])) < 1e-6 * float(pkg.std[1]) * 50  # msl: rounding only
    assert abs(float(drift[0])) > 1e-3 * float(pkg.std[0])  # z500 is free to move
    with pytest.raises(Exception, match="conserve_global_mean names"):
        train(train_config(store, tmp_path / "bad", conserve_global_mean=["t850"]), progress=False)


def test_weight_decay_on_weights_only_spares_biases_norms_and_position_embeddings():
    """With zero gradients an AdamW step only decays: matrices shrink by lr * wd, the rest stay put."""
    from forecast.train.schedule import parameter_groups

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    net.register_parameter("pos_embed", torch.nn.Parameter(torch.ones(1, 2, 4)))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.AdamW(parameter_groups(net, 0.5, "weights"), lr=0.1)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(net.named_parameters())
    torch.testing.assert_close(after["0.weight"], before["0.weight"] * (1 - 0.1 * 0.5))
    for name in ("0.bias", "1.weight", "1.bias", "pos_embed"):
        torch.testing.assert_close(after[name], before[name])
    groups = parameter_groups(net, 0.5, "all")
    assert len(groups) == 1 and len(groups[0]["params"]) == 5


def test_tendency_weighting_equals_channel_weights_of_std_over_tendency_std_squared(store, tmp_path):
    """``loss.weighting: tendency`` is the state loss with each channel weighted by (std / tendency_std)^2,
    computed here by hand from the store's statistics: the two runs follow the same loss curve. The tiny
    store's channels change alike, so a copy gets a 3x faster msl to tell the weightings apart."""
    import shutil

    import zarr

    copy = tmp_path / "store.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(str(copy), mode="r+")
    msl = list(open_training_store(store).channels).index("msl")
    tendency = group["stats_tendency_std"][:]
    tendency[msl] *= 3.0
    group["stats_tendency_std"][:] = tendency
    s = open_training_store(copy)
    by_hand = {c: float((s.std[i] / s.tendency_std[i]) ** 2) for i, c in enumerate(s.channels)}
    assert max(by_hand.values()) / min(by_hand.values()) > 5
    a = train_config(copy, tmp_path / "a", epochs=1, steps_per_epoch=3, loss={"weighting": "tendency"})
    b = train_config(copy, tmp_path / "b", epochs=1, steps_per_epoch=3, loss={"channel_weights": by_hand})
    train(a, progress=False)
    train(b, progress=False)
    # Equal curves also show the weighting is applied: run b's weights differ 5x between channels, so a
    # run that ignored `weighting` (uniform weights) would not follow it.
    np.testing.assert_allclose(losses(tmp_path / "a"), losses(tmp_path / "b"), rtol=1e-5)
