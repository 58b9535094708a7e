"""Smoke runs of the side-by-side benchmarks (issue 14): tiny sizes, one round, JSON shape only.

Each script runs in a subprocess as ``make bench`` runs it, with ``--quick --rounds 1`` and its results
written to a temporary folder. Nothing here asserts on speed. The four run concurrently to keep the
test short (their timings are meaningless here anyway).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# script -> extra arguments that keep the smoke run small
SCRIPTS = {
    # PhysicsNeMo takes ~10 s to import; the real run covers the AFNO reference.
    "models_vs_reference": ["--skip-afno-ref", "--warmup", "0"],
    "rollout_overhead": ["--warmup", "0"],
    "scaling": ["--warmup", "0"],
    "contention": ["--settings", "threads=1", "--neighbours", "busy", "--steps", "1"],
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("bench")
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--quick", "--rounds", "1",
             "--threads", "1", "--out-dir", str(out), *extra],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, extra in SCRIPTS.items()
    }
    loaded = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} failed:\n{stdout[-2000:]}\n{stderr[-3000:]}"
        assert (out / f"{name}.txt").read_text().strip()
        loaded[name] = json.loads((out / f"{name}.json").read_text())
    return loaded


def _machine(payload: dict) -> None:
    machine = payload["machine"]
    for key in ("cpu_model", "cores", "torch", "torch_threads", "device", "load_average"):
        assert key in machine
    assert payload["args"]["rounds"] == 1


def test_models_vs_reference(results: dict[str, dict]) -> None:
    r = results["models_vs_reference"]
    _machine(r)
    assert r["matmul_peak"]["gflops"] > 0
    (sfno,) = r["sfno"].values()
    facts = sfno["facts"]
    assert facts["ours_lmax_mmax"] == facts["ref_lmax_mmax"]  # equal truncation, checked by the script too
    assert facts["ours_params"] > 0 and facts["ref_params"] > 0
    for key in ("ours_forward", "ref_forward", "ours_train", "ref_train", "ratio_forward", "ratio_train"):
        assert {"median", "q1", "q3", "min", "max", "n"} <= set(sfno[key])
    # The reference transforms with FFTs; ours may use DFT matmuls instead (then its FFT share is 0).
    assert sfno["flops_ours"]["total"] > 0 and sfno["flops_ours"]["fft_estimate"] >= 0
    assert sfno["flops_ref"]["fft_estimate"] > 0
    assert "ours_forward_peak_fraction" in sfno
    (afno,) = r["afno"].values()
    assert "skipped" in afno  # --skip-afno-ref: the row says why, nothing is timed in its place


def test_rollout_overhead(results: dict[str, dict]) -> None:
    r = results["rollout_overhead"]
    _machine(r)
    assert set(r["scenarios"]) == {"ensemble", "long"}
    for s in r["scenarios"].values():
        for key in ("floor", "generator", "predict", "floor_member_steps_per_s", "ratio_generator_over_floor",
                    "ratio_predict_over_floor"):
            assert "median" in s[key]
        assert s["member_steps"] == s["members"] * s["steps"]


def test_scaling(results: dict[str, dict]) -> None:
    r = results["scaling"]
    _machine(r)
    assert set(r["train"]) == set(r["args"]["grids"])
    assert len(r["rollout"]) == len(r["args"]["grids"]) * len(r["args"]["members"])
    assert "train_vs_points" in r["slopes"]
    assert any(k.startswith("rollout_vs_members") for k in r["slopes"])


def test_contention(results: dict[str, dict]) -> None:
    r = results["contention"]
    _machine(r)
    s = r["settings"]["threads=1"]
    assert s["torch_threads"] == 1
    for key in ("alone", "with_busy", "slowdown_busy"):
        assert "median" in s[key]


@pytest.mark.slow
def test_models_vs_reference_with_physicsnemo(tmp_path: Path) -> None:
    """The AFNO rows against PhysicsNeMo's AFNO (the ``bench`` extra), when it is installed."""
    pytest.importorskip("physicsnemo.models.afno")
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "models_vs_reference.py"), "--quick", "--rounds", "1",
                    "--warmup", "0", "--threads", "1", "--out-dir", str(tmp_path)], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    (afno,) = json.loads((tmp_path / "models_vs_reference.json").read_text())["afno"].values()
    assert "skipped" not in afno
    assert afno["facts"]["padded_grid"] == [20, 32]  # 17 x 32 padded to whole 4 x 4 patches for both
    assert afno["facts"]["physicsnemo"]
    assert "median" in afno["ratio_train"]
