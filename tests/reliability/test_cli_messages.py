"""Failures that used to end in a traceback: each is one line ``forecast <stage>: error: ...`` naming the
path, exit status 1, and nothing that looks complete is left behind (issue 10)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import xarray as xr
from reliability_support import one_line_error

from forecast.cli import main
from forecast.products import COMPLETE_MARKER, open_product
from forecast.products.writer import ProductWriter
from forecast.testing import cds_dataset, noisy_product


@pytest.fixture
def ingest_config(tmp_path) -> Path:
    src = tmp_path / "raw" / "a.nc"
    src.parent.mkdir()
    cds_dataset("2000-01-01", 8, nlat=19, nlon=36).to_netcdf(src)
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(f"sources: [{{paths: ['{src}']}}]\nchannels: [{{variable: msl}}]\n"
                   f"grid: {{nlat: 19, nlon: 36}}\nstats: null\noutput: {{path: {tmp_path}/s.zarr}}\n")
    return cfg


def run(capsys, stage: str, *args: str) -> str:
    """``forecast STAGE ARGS`` in this process: exit status 1 and the one error line."""
    code = main([stage, *args])
    err = capsys.readouterr().err
    assert code == 1, err
    return one_line_error(err, stage)


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "chunk")


def test_info_on_a_missing_store(tmp_path, capsys):
    assert "nowhere.zarr does not exist" in run(capsys, "info", str(tmp_path / "nowhere.zarr"))
    (tmp_path / "empty.zarr").mkdir()
    assert "empty.zarr is not a zarr store" in run(capsys, "info", str(tmp_path / "empty.zarr"))


@pytest.mark.parametrize(("override", "message"), [
    ("sources.3.paths=[x.nc]", "override 'sources.3.paths': sources has 1 item(s); index 3 is out of range"),
    ("sources.first.paths=[x.nc]", "override 'sources.first.paths': sources is a list; 'first' is not an index"),
    ("grid.nlat.size=3", "override 'grid.nlat.size': grid.nlat is a int (19), not a mapping"),
    ("grid.nlat=many", "grid.nlat: Input should be a valid integer, unable to parse string as an integer (got 'many')"),
])
def test_bad_set_override(ingest_config, capsys, override, message):
    assert message in run(capsys, "ingest", str(ingest_config), "--set", override)


def test_ingest_output_paths_that_cannot_be_written(ingest_config, tmp_path, capsys, unwritable_dir):
    (tmp_path / "file").write_text("not a folder")
    line = run(capsys, "ingest", str(ingest_config), "--output", str(tmp_path / "file" / "s.zarr"))
    assert f"cannot write {tmp_path}/file/s.zarr: {tmp_path}/file is a file, not a folder" in line
    line = run(capsys, "ingest", str(ingest_config), "--output", str(tmp_path / "file"))
    assert f"cannot write {tmp_path}/file: it is an existing file, not a folder" in line
    assert (tmp_path / "file").read_text() == "not a folder"
    line = run(capsys, "ingest", str(ingest_config), "--output", str(unwritable_dir / "s.zarr"))
    assert f"cannot write {unwritable_dir}/s.zarr: {unwritable_dir} is not writable" in line


def test_ingest_disk_full_keeps_the_previous_store(ingest_config, tmp_path, capsys, monkeypatch):
    assert main(["ingest", str(ingest_config), "--no-progress"]) == 0
    before = xr.open_zarr(tmp_path / "s.zarr").load()
    monkeypatch.setattr(xr.Dataset, "to_zarr", disk_full)
    line = run(capsys, "ingest", str(ingest_config), "--force", "--no-progress")
    assert f"cannot write {tmp_path}/s.zarr: No space left on device (ENOSPC); the previous one is left" in line
    monkeypatch.undo()
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "s.zarr").load(), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingest.yaml", "raw", "s.zarr"]


def predict_args(linear, store, out) -> list[str]:
    return [str(linear), "--store", str(store), "--init", "2000-01-10T00:00", "--lead", "1d", "--out", str(out),
            "--no-progress"]


def test_predict_output_paths_that_cannot_be_written(linear, truth_store, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    line = run(capsys, "predict", *predict_args(linear, truth_store, tmp_path / "file" / "p.zarr"))
    assert f"{tmp_path}/file is a file, not a folder" in line
    line = run(capsys, "predict", *predict_args(linear, truth_store, tmp_path / "file"), "--overwrite")
    assert f"cannot write {tmp_path}/file: it is an existing file, not a folder" in line
    assert (tmp_path / "file").read_text() == "x"


def test_predict_disk_full_keeps_the_complete_product(linear, truth_store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "p.zarr"
    assert main(["predict", *predict_args(linear, truth_store, out)]) == 0
    before = open_product(out).load()
    monkeypatch.setattr(ProductWriter, "_flush", disk_full)
    line = run(capsys, "predict", *predict_args(linear, truth_store, out), "--overwrite")
    assert f"cannot write {out}: No space left on device (ENOSPC); the previous one is left as it was" in line
    monkeypatch.undo()
    xr.testing.assert_identical(open_product(out).load(), before)
    assert (out / COMPLETE_MARKER).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]


def test_evaluate_output_that_is_a_file_is_refused_before_scoring(truth_store, tmp_path, capsys):
    product = noisy_product(truth_store, tmp_path / "fc.zarr", ["2000-01-10T00:00"], 2)
    (tmp_path / "out").write_text("x")
    line = run(capsys, "evaluate", str(product), "--truth", str(truth_store), "--out", str(tmp_path / "out"),
               "--no-progress")
    assert f"cannot write {tmp_path}/out: it is an existing file, not a folder" in line


def test_train_run_folder_under_a_file(truth_store, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"name: t\ndata: {{store: {truth_store}, train: {{}}, valid: {{}}}}\n"
                   "model: {type: sfno, embed_dim: 4, num_layers: 1, lmax: 6, mmax: 6}\n"
                   f"output_dir: {tmp_path}/file/run\ndevice: cpu\n")
    line = run(capsys, "train", str(cfg), "--no-progress")
    assert f"cannot write {tmp_path}/file/run: {tmp_path}/file is a file, not a folder" in line
