"""Scoring in bounded memory (issue 10): a product larger than a dask worker's memory limit is scored on that
worker, and scoring in one process holds a few blocks of the product, not the product nor the climatology.

Before the scoring streamed, a 420 MB product scored on a LocalCluster worker limited to 400 MB got the worker
killed (it held the climatology table whole in the graph and a block of 4 chunks of 64 MB per variable).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from forecast.cli import main
from forecast.evaluate.config import EvaluateConfig
from forecast.evaluate.score import read_scores, run_evaluate
from forecast.testing import evaluation_store

NLAT, NLON = 91, 180  # 2 degrees: 131 kB per (initial time, lead) of the two channels
# Scores that read everything the scoring holds: the forecast, the truth, persistence and the climatology.
OPTIONS = ["metrics=[rmse,acc]", "baselines=[persistence,climatology]", "regions=[global]"]


def test_chunks_and_blocks_follow_the_memory_budget(truth_store, tmp_path):
    """``memory_mb`` sizes the product's chunks (every variable together, ``memory_mb / WORKING_SET``) and so its
    blocks; the scores do not depend on it (the per-initial-time statistics are the same numbers)."""
    from forecast.evaluate.align import open_forecast
    from forecast.evaluate.score import WORKING_SET
    from forecast.testing import noisy_product

    inits = np.arange("2000-02-01T00", "2000-02-05T00", np.timedelta64(12, "h"), dtype="datetime64[ns]")
    product = noisy_product(truth_store, tmp_path / "p.zarr", inits, 6, members=3, noise=0.05)
    per_init = _nbytes(product) / inits.size  # 2 channels x 6 leads x 3 members x 19 x 36 x 4 B = 98 kB
    for memory_mb in (0.1, 2.0, 1000.0):
        chunks = open_forecast(product, total_mb=memory_mb / WORKING_SET).chunks["init_time"]
        assert max(chunks) == max(1, min(inits.size, int(memory_mb * 2**20 / WORKING_SET // per_init)))
    scores = [run_evaluate(EvaluateConfig.model_validate({"memory_mb": mb, "workers": 2}), product, truth_store,
                           tmp_path / str(mb), progress=False).scores for mb in (0.1, 1000.0)]
    np.testing.assert_array_equal(scores[0]["statistics"].values, scores[1]["statistics"].values)
    np.testing.assert_allclose(scores[0]["rank_histogram"].values, scores[1]["rank_histogram"].values, rtol=1e-12)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """z500 and msl, 6-hourly over January-February 2000 at 2 degrees (``forecast ingest``)."""
    return evaluation_store(tmp_path_factory.mktemp("memory"), nlat=NLAT, nlon=NLON)


def truth_plus_noise(store: Path, path: Path, init_times: np.ndarray, n_leads: int) -> Path:
    """A deterministic product (the real writer) that is the truth plus Gaussian noise of 5 % of each channel's
    standard deviation, written one lead of every initial time at a time (fast for many initial times)."""
    from forecast.products.writer import ProductSpec, ProductWriter, lead_timedeltas

    truth = xr.open_zarr(store)
    channels = list(truth.attrs["channels"])
    spec = ProductSpec(init_times=init_times.astype("datetime64[ns]"), lead_times=lead_timedeltas(n_leads, "6h", False),
                       latitudes=truth["latitude"].values, longitudes=truth["longitude"].values, channels=channels,
                       channel_attrs=[dict(truth[c].attrs) for c in channels], attrs={"title": "big: truth plus noise"})
    fields = np.stack([truth[c].values for c in channels], 1)  # (time, channel, lat, lon)
    first = np.searchsorted(truth["time"].values, spec.init_times)
    std = fields.std(axis=(0, 2, 3))[None, :, None, None]
    rng = np.random.default_rng(0)
    with ProductWriter(path, spec, overwrite=True) as writer:
        for k in range(n_leads):
            state = fields[first + k + 1]
            state = state + (0.05 * std * rng.standard_normal(state.shape)).astype(np.float32)
            writer.write(slice(0, init_times.size), k, state[:, None])
    return path


def _resident_peak() -> int:
    """This process's peak resident memory (bytes) since it started (``VmHWM``: unlike ``ru_maxrss``, not inherited
    from the process that forked it)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def _nbytes(product: Path) -> int:
    with xr.open_zarr(product) as ds:
        return sum(v.nbytes for v in ds.data_vars.values() if "init_time" in v.dims)


@pytest.mark.slow
def test_a_product_larger_than_a_workers_memory_limit_is_scored_on_it(store, tmp_path):
    """`forecast evaluate --scheduler tcp://...` on a LocalCluster of one worker process limited to 400 MB (its
    nanny kills it at 95 %; about 150 MB of it is the imported stack) scores a 450 MB product against the
    climatology built from the truth store, with the worker never restarted, and the same scores as in this
    process to 1e-12. (A larger limit than the stack's share would leave needs a product as large again.)"""
    from distributed import Client, LocalCluster

    inits = np.arange("2000-01-02T00", "2000-02-25T00", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    product = truth_plus_noise(store, tmp_path / "big.zarr", inits, 16)
    limit = 400 * 10**6
    assert _nbytes(product) > 1.1 * limit
    options = ["metrics=[rmse,acc]", "baselines=[climatology]", "regions=[global]"]
    local = ["evaluate", str(product), "--truth", str(store), "--no-progress",
             *(a for o in options for a in ("--set", o))]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=limit, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        (before,) = client.scheduler_info()["workers"]
        assert main([*local, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "cluster")]) == 0
        (after,) = client.scheduler_info()["workers"]
        peak = client.run(_resident_peak)[after]
    assert after == before, "the worker was restarted (killed for memory)"
    assert peak < 0.95 * limit
    assert main([*local, "--scheduler", "threads", "--out", str(tmp_path / "threads")]) == 0
    a, b = read_scores(tmp_path / "cluster"), read_scores(tmp_path / "threads")
    assert np.isfinite(a["big"].values).all()
    for name in ("big", "climatology", "statistics"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-12, err_msg=name)


def _traced_peak(config: EvaluateConfig, product: Path, store: Path, out: Path) -> tuple[int, xr.Dataset]:
    """Python-allocated peak (bytes; tracemalloc sees numpy's arrays) of ``run_evaluate`` and its scores."""
    tracemalloc.start()
    try:
        scores = run_evaluate(config, product, store, out, progress=False).scores
        return tracemalloc.get_traced_memory()[1], scores
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_scoring_memory_follows_the_budget_not_the_product(store, tmp_path):
    """Scoring a 42 MB product against persistence and a climatology file on 2 threads that may hold 8 MB each
    (``memory_mb``) allocates less than the product, and less than a third of what it does when a block may hold
    the whole product (``memory_mb: 256``, as every run did before: 4 chunks of up to 64 MB per thread); the
    scores are the same. Measured: 28 and 213 MB."""
    from forecast.evaluate.align import open_truth
    from forecast.evaluate.climatology import build_climatology, write_climatology

    inits = np.arange("2000-02-01T00", "2000-02-21T00", np.timedelta64(12, "h"), dtype="datetime64[ns]")
    product = truth_plus_noise(store, tmp_path / "big.zarr", inits, 8)
    clim = write_climatology(build_climatology(open_truth(store)), tmp_path / "clim.zarr")
    size = _nbytes(product)
    tree = {"workers": 2, "climatology": {"path": str(clim)}, **dict(o.split("=") for o in OPTIONS)}
    tree = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in tree.items()}
    small, a = _traced_peak(EvaluateConfig.model_validate({**tree, "memory_mb": 8}), product, store, tmp_path / "a")
    large, b = _traced_peak(EvaluateConfig.model_validate({**tree, "memory_mb": 256}), product, store, tmp_path / "b")
    assert size > 40e6
    assert small < size and small < large / 3, f"{size / 1e6:.0f} MB: {small / 1e6:.0f} vs {large / 1e6:.0f} MB"
    np.testing.assert_array_equal(a["statistics"].values, b["statistics"].values)
