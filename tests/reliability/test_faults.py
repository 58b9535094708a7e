"""SIGKILL at a random point of ``forecast predict`` and ``forecast evaluate``, each replacing a good result
(``--overwrite``): the good one (or the complete new one) is what the path holds afterwards, never a partial
one, and a rerun gives what an uninterrupted run gives (issue 10).

Ingestion and training have their own kill tests: ``tests/test_ingest.py::
test_killed_ingest_leaves_no_store_and_next_run_cleans_up`` and ``tests/test_train.py::
test_killed_run_resumes_to_the_same_loss_trajectory``; a killed product writer:
``tests/test_products.py::test_a_killed_run_never_leaves_a_product_that_looks_complete``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import xarray as xr

from forecast.cli import main
from forecast.evaluate.score import read_scores
from forecast.products import COMPLETE_MARKER, open_product

SEED = 20261201  # the kill points are random, but the same on every run of the suite


def kill_at_random_point(args: list[str], started: Path, rng: random.Random, latest: float) -> float:
    """Run ``forecast ARGS`` in a subprocess and SIGKILL it at a random moment: up to ``latest`` seconds after
    ``started`` (a path the run creates early) appears, or at once if it never does. Returns the delay."""
    proc = subprocess.Popen([sys.executable, "-m", "forecast.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not list(started.parent.glob(started.name)):
        time.sleep(0.01)
    delay = rng.uniform(0.0, latest)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    return delay


def predict_args(linear: Path, store: Path, out: Path, init: str) -> list[str]:
    return ["predict", str(linear), "--store", str(store), "--init", init, "--lead", "20d", "--out", str(out),
            "--no-progress", "--overwrite"]


def test_killed_predict_overwrite_keeps_a_complete_product_and_reruns_equal(linear, truth_store, tmp_path):
    rng = random.Random(SEED)
    new = "2000-01-10T00:00/2000-01-12T00:00/24h"
    assert main(predict_args(linear, truth_store, tmp_path / "ref.zarr", new)) == 0  # uninterrupted
    out = tmp_path / "p.zarr"
    assert main(predict_args(linear, truth_store, out, "2000-01-05T00:00")) == 0  # the good product to replace
    delay = kill_at_random_point(predict_args(linear, truth_store, out, new), tmp_path / ".p.zarr.partial-*", rng,
                                 latest=1.0)
    assert (out / COMPLETE_MARKER).exists(), f"killed {delay:.2f} s into the write"
    assert open_product(out).attrs["complete"] is True  # the old product, or the new one if it had finished
    assert main(predict_args(linear, truth_store, out, new)) == 0  # the rerun removes the dead run's leftovers
    got, ref = open_product(out), open_product(tmp_path / "ref.zarr")
    xr.testing.assert_equal(got[["z500", "msl"]].load(), ref[["z500", "msl"]].load())  # history differs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr", "ref.zarr"]


def test_killed_evaluate_keeps_the_scores_pair_and_reruns_equal(linear, truth_store, tmp_path):
    rng = random.Random(SEED + 1)
    product = tmp_path / "p.zarr"
    assert main(predict_args(linear, truth_store, product, "2000-01-10T00:00/2000-01-12T00:00/24h")) == 0
    args = ["evaluate", str(product), "--truth", str(truth_store), "--no-progress", "--set", "regions=[global]"]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0  # uninterrupted
    out = tmp_path / "ev"
    assert main([*args, "--out", str(out), "--set", "lead_times=[24h]"]) == 0  # the good scores to replace
    old_csv = (out / "scores.csv").read_text()
    kill_at_random_point([*args, "--out", str(out)], Path(sys.executable), rng, latest=6.0)
    csv = (out / "scores.csv").read_text()
    ref_csv = (tmp_path / "ref" / "scores.csv").read_text()
    assert csv in (old_csv, ref_csv)  # one run's pair or the other's, never a mix
    leads = read_scores(out).sizes["lead_time"]
    assert leads == (1 if csv == old_csv else read_scores(tmp_path / "ref").sizes["lead_time"])
    assert main([*args, "--out", str(out)]) == 0
    assert (out / "scores.csv").read_text() == ref_csv
    xr.testing.assert_identical(read_scores(out).drop_attrs(), read_scores(tmp_path / "ref").drop_attrs())
    assert sorted(p.name for p in out.iterdir()) == ["scores.csv", "scores.nc"]
