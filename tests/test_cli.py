"""The real entry points end to end on a tiny embedded archive: forecast synth -> ingest -> info."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "forecast")
TINY_SYNTH = ["--set", "months=2", "--set", "spin_up_days=10", "--set", "model.truncation=10",
              "--set", "model.nlat=16", "--set", "model.nlon=32", "--set", "model.dt_minutes=90",
              "--set", "output.nlat=19", "--set", "output.nlon=36"]


def run(*args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_help_lists_the_stages():
    out = run("--help").stdout
    for stage in ("synth", "ingest", "train", "skill", "info"):
        assert f"\n  {stage} " in out
    assert "--set KEY=VALUE" in run("ingest", "--help").stdout


def test_synth_then_ingest_with_the_shipped_config(tmp_path):
    raw = tmp_path / "raw"
    run("synth", "--out", str(raw), "--no-progress", *TINY_SYNTH)
    assert (raw / "MANIFEST.json").exists()
    store = tmp_path / "store.zarr"
    run("ingest", "configs/ingest/synthetic.yaml", "--output", str(store), "--no-progress",
        "--set", f"sources.0.paths=[{raw}/pressure_levels/*.nc, {raw}/single_levels/*.nc]",
        "--set", f"static.0.source.paths=[{raw}/invariant/*.nc]",
        "--set", f"static.1.source.paths=[{raw}/invariant/*.nc]",
        "--set", "stats.end=2000-01-31T18:00")
    ds = xr.open_zarr(store)
    assert ds.attrs["channels"] == ["z500", "u500", "v500", "msl"]
    assert ds.sizes["time"] == (31 + 29) * 4 and ds.z500.shape[1:] == (32, 64)
    assert 0.2 < float(ds.lsm.mean()) < 0.4 and float(ds.orography.max()) > 1000
    assert 45_000 < float(ds.stats_mean.sel(channel="z500")) < 60_000
    assert np.isfinite(ds.z500.values).all()
    info = run("info", str(store)).stdout
    assert "normalisation statistics" in info and "z500" in info
    again = run("ingest", "configs/ingest/synthetic.yaml", "--output", str(store), "--no-progress",
                "--set", f"sources.0.paths=[{raw}/pressure_levels/*.nc, {raw}/single_levels/*.nc]",
                "--set", f"static.0.source.paths=[{raw}/invariant/*.nc]",
                "--set", f"static.1.source.paths=[{raw}/invariant/*.nc]",
                "--set", "stats.end=2000-01-31T18:00")
    assert "is up to date" in again.stdout
