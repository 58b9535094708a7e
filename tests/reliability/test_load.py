"""Load (slow, ``make test-all``): a 64-member ensemble rolled out for a year in bounded memory (issue 10).

``tests/test_predict.py::test_memory_does_not_grow_with_lead_count`` already checks 32 members over 1000
leads; here the ensemble is 64 members, the rollout a full year (1460 six-hour steps, written daily).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from forecast.products import open_product

pytestmark = pytest.mark.slow

_ROLLOUTS = """
import json, resource
from forecast.rollout.config import PredictConfig
from forecast.rollout.predict import run_predict
rss = []
for lead, every in ((40, 4), (1460, 4)):
    cfg = PredictConfig.model_validate({{"packages": [{package!r}], "store": {store!r},
        "init": {{"times": ["2000-01-10T00:00"]}}, "lead": lead, "output": {{"path": {out!r} + f"/m{{lead}}.zarr",
        "lead_every": every}}, "ensemble": {{"members": 64, "perturbation": {{"type": "white_noise"}}}},
        "stability": {{"data_samples": 4}}, "guard": {{"max_abs_normalised": None}}}})
    run_predict(cfg)
    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(rss))
"""


def test_64_member_ensemble_over_a_year_in_bounded_memory(linear, truth_store, tmp_path):
    """Peak RSS of a 40-step then a 1460-step (one year) 64-member rollout in one fresh process: keeping the
    written leads would cost 366 x 64 x 2 x 19 x 36 x 4 B = 128 MB more."""
    code = _ROLLOUTS.format(package=str(linear), store=str(truth_store), out=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    short, long = json.loads(run.stdout.strip().splitlines()[-1])
    assert long - short < 40, f"peak RSS grew from {short:.0f} MB to {long:.0f} MB over a year of 64 members"
    ds = open_product(tmp_path / "m1460.zarr")
    assert ds.sizes["member"] == 64 and ds.sizes["lead_time"] == 366 and ds.attrs["complete"] is True
    assert np.isfinite(ds.z500.isel(lead_time=-1).values).all()
