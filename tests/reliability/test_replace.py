"""Replacing a good result: a run that fails or is killed leaves the previous one in place (issue 10).

Directories are swapped in one step, a writer killed between its renames is repaired by the next run,
``scores.nc`` and ``scores.csv`` change together, and a failed ``--overwrite`` keeps the complete product.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from forecast.errors import InputError
from forecast.evaluate.score import read_scores, write_scores
from forecast.products import COMPLETE_MARKER, ProductSpec, ProductWriter, open_product
from forecast.storage import atomic_directory, remove_stale_partials


def dead_pid() -> int:
    """The id of a process that has exited (so its leftovers count as a killed writer's)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def spec(n_lead: int = 4) -> ProductSpec:
    return ProductSpec(init_times=np.array(["2000-01-01T00"], "datetime64[ns]"),
                       lead_times=np.arange(1, n_lead + 1) * np.timedelta64(6, "h"),
                       latitudes=np.linspace(90, -90, 5), longitudes=np.arange(8) * 45.0, channels=["msl"],
                       channel_attrs=[{"units": "Pa", "long_name": "Mean sea level pressure"}],
                       attrs={"title": "t: test", "Conventions": "CF-1.8"})


def write_product(path, value: float, stop_after: int | None = None, overwrite: bool = True) -> None:
    s = spec()
    with ProductWriter(path, s, overwrite=overwrite) as w:
        for k in range(s.lead_times.size):
            if k == stop_after:
                raise RuntimeError("the rollout failed")
            w.write(slice(0, 1), k, np.full((1, 1, 1, 5, 8), value, np.float32))


def test_failed_overwrite_keeps_the_complete_product(tmp_path):
    path = tmp_path / "p.zarr"
    write_product(path, 1.0)
    with pytest.raises(RuntimeError, match="the rollout failed"):
        write_product(path, 2.0, stop_after=2)  # --overwrite by a run that fails after two leads
    ds = open_product(path)  # still the complete one, not a partial product renamed over it
    assert ds.attrs["complete"] is True and float(ds.msl.max()) == 1.0 and (path / COMPLETE_MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]


def test_writer_killed_between_its_two_renames_loses_nothing(tmp_path):
    """Where the names cannot be exchanged in one step the old folder is renamed aside first; a kill right
    then leaves ``.NAME.old-PID`` and no NAME: the next run puts the old one back."""
    path = tmp_path / "s.zarr"
    with atomic_directory(path) as tmp:
        tmp.mkdir()
        (tmp / "data").write_text("good")
    os.rename(path, tmp_path / f".s.zarr.old-{dead_pid()}")
    remove_stale_partials(path)
    assert (path / "data").read_text() == "good" and sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
    # An .old-* beside a complete NAME (killed while deleting it) is only removed.
    (tmp_path / f".s.zarr.old-{dead_pid()}").mkdir()
    (tmp_path / f".s.zarr.partial-{dead_pid()}").mkdir()
    with atomic_directory(path) as tmp:
        tmp.mkdir()
        (tmp / "data").write_text("new")
    assert (path / "data").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def scores(value: float) -> xr.Dataset:
    lead = pd.to_timedelta([6, 12], unit="h").values
    da = xr.DataArray(np.full((1, 1, 1, 2), value), dims=("metric", "region", "variable", "lead_time"),
                      coords={"metric": ["rmse"], "region": ["global"], "variable": ["msl"], "lead_time": lead})
    return xr.Dataset({"fc": da}, coords={"units": ("variable", ["Pa"])})


def test_scores_pair_is_replaced_as_one_unit_or_not_at_all(tmp_path, monkeypatch):
    write_scores(scores(1.0), tmp_path)
    csv_before = (tmp_path / "scores.csv").read_text()

    def disk_full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", disk_full)
    with pytest.raises(InputError, match=r"cannot write .*scores.nc: No space left on device \(ENOSPC\); the "
                                         "previous one is left as it was"):
        write_scores(scores(2.0), tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "scores.csv").read_text() == csv_before  # the csv of the failed run did not land alone
    assert float(read_scores(tmp_path)["fc"].max()) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores.nc"]


def test_pair_commit_interrupted_among_its_renames_is_finished_by_the_next_run(tmp_path):
    write_scores(scores(1.0), tmp_path)
    pid = dead_pid()
    # A writer of value 2 died after its journal and the first rename: new scores.nc beside the old csv.
    new_csv = tmp_path / f".scores.csv.partial-{pid}"
    new_csv.write_text("forecast,metric\nfc,rmse-2\n")
    journal = tmp_path / f".scores.nc.commit-{pid}"
    journal.write_text(json.dumps([[str(tmp_path / f".scores.nc.partial-{pid}"), str(tmp_path / "scores.nc")],
                                   [str(new_csv), str(tmp_path / "scores.csv")]]))
    remove_stale_partials(tmp_path / "scores.nc")
    assert (tmp_path / "scores.csv").read_text() == "forecast,metric\nfc,rmse-2\n" and not journal.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores.nc"]
