"""`make gpu-check` (benchmarks/gpu_check.py): without CUDA it says so and does no work; with the CPU standing
in for the GPU the whole check runs (training, rollout, comparison, throughput) and agrees with itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU this machine may have
    res = subprocess.run([sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "gpu-check: no CUDA device visible" in res.stdout and "nothing was run on a GPU" in res.stdout
    assert not list(tmp_path.iterdir())  # no work, no results


@pytest.mark.slow
def test_the_check_runs_end_to_end_with_the_cpu_as_the_device(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--steps", "3", "--lead", "3",
                          "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    # The same device twice: identical arithmetic, so no difference at all.
    assert result["passed"] and result["loss_max_rel_diff"] == 0.0
    assert set(result["rollout_max_diff_over_std"]) == {"z500", "msl"}
    assert all(v == 0.0 for v in result["rollout_max_diff_over_std"].values())
    assert "gpu-check: PASSED" in res.stdout
