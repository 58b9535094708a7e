"""A running dask.distributed cluster (`dask scheduler` + two `dask worker` processes on 127.0.0.1) does
ingestion, climatology and evaluation through `--scheduler tcp://...`, with the threaded run's results."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from distributed import Client

from forecast.cli import main
from forecast.errors import InputError
from forecast.evaluate.score import read_scores
from forecast.testing import evaluation_store, noisy_product, write_cds_months

DASK = str(Path(sys.executable).parent / "dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _executed(address: str) -> dict[str, int]:
    """Tasks each worker has run so far, by worker name."""
    with Client(address, timeout=30) as client:
        counts = client.run(lambda dask_worker: (dask_worker.name, dask_worker.state.executed_count))
    return dict(counts.values())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, each its own process, as `dask scheduler` and
    `dask worker` start them on a real cluster; yields the scheduler's address."""
    root = tmp_path_factory.mktemp("cluster")
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=open(root / "scheduler.log", "w"))]
    try:
        for name in ("w0", "w1"):
            procs.append(subprocess.Popen(
                [DASK, "worker", address, "--name", name, "--nthreads", "1", "--no-dashboard", "--no-nanny",
                 "--host", "127.0.0.1", "--local-directory", str(root / name)],
                stdout=subprocess.DEVNULL, stderr=open(root / f"{name}.log", "w")))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a loaded machine can be slow to shut a worker down
                p.kill()
                p.wait()


def test_ingest_on_a_running_cluster_equals_the_threaded_run(cluster, tmp_path):
    files = write_cds_months(tmp_path / "raw", "2000-01-01", 2, variables=("msl", "z"), level=500)
    config = tmp_path / "ingest.yaml"
    config.write_text(
        f"sources: [{{paths: [{', '.join(str(f) for f in files)}]}}]\n"
        "channels: [{variable: z, level: 500}, {variable: msl}]\n"
        "grid: {type: legendre-gauss, nlat: 24, nlon: 48}\n"
        "output: {path: unused, time_chunk: 4}\n")
    before = _executed(cluster)
    for name, scheduler in (("threads", "threads"), ("cluster", cluster)):
        assert main(["ingest", str(config), "--output", str(tmp_path / f"{name}.zarr"), "--scheduler", scheduler,
                     "--no-progress"]) == 0
    after = _executed(cluster)
    assert all(after[w] > before[w] for w in ("w0", "w1"))  # both worker processes did part of the work
    threads, remote = (xr.open_zarr(tmp_path / f"{n}.zarr") for n in ("threads", "cluster"))
    xr.testing.assert_identical(threads.drop_attrs(deep=False).load(), remote.drop_attrs(deep=False).load())
    assert threads.attrs["source_files"] == remote.attrs["source_files"]


def test_climatology_and_evaluation_on_a_running_cluster_equal_the_threaded_run(cluster, tmp_path):
    store = evaluation_store(tmp_path / "truth")
    inits = np.array(["2000-02-01T00", "2000-02-02T00", "2000-02-03T12"], dtype="datetime64[ns]")
    product = noisy_product(store, tmp_path / "ensemble.zarr", inits, 4, members=3, noise=0.05, seed=1)
    before = _executed(cluster)
    for name, scheduler in (("threads", "threads"), ("cluster", cluster)):
        clim = tmp_path / f"clim-{name}.zarr"
        assert main(["climatology", str(store), "--out", str(clim), "--window", "31", "--scheduler", scheduler,
                     "--no-progress"]) == 0
        assert main(["evaluate", str(product), "--truth", str(store), "--climatology", str(clim), "--out",
                     str(tmp_path / name), "--scheduler", scheduler, "--no-progress",
                     "--set", "regions=[global, sea]"]) == 0
    after = _executed(cluster)
    assert all(after[w] > before[w] for w in ("w0", "w1"))
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "clim-threads.zarr").load(),
                                xr.open_zarr(tmp_path / "clim-cluster.zarr").load())
    threads, remote = read_scores(tmp_path / "threads"), read_scores(tmp_path / "cluster")
    diff = max(float(np.nanmax(np.abs(threads[v] - remote[v]))) for v in threads.data_vars
               if threads[v].dtype.kind == "f" and np.isfinite(threads[v]).any())
    print(f"\nscores on the cluster vs threads: largest absolute difference {diff:.3g}")
    xr.testing.assert_allclose(threads.drop_attrs(deep=False), remote.drop_attrs(deep=False), rtol=1e-12)


def test_bad_or_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["ingest", str(tmp_path / "any.yaml"), "--scheduler", "tcp:/host"])
    assert "forecast ingest: error: argument --scheduler: scheduler 'tcp:/host' is none of" in capsys.readouterr().err
    import forecast.compute

    monkeypatch.setattr(forecast.compute, "CONNECT_TIMEOUT_S", 2)  # nothing listens there: fail fast
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(InputError, match=f"cannot reach the dask scheduler at {address}"):
        with forecast.compute.session(address):
            pass
