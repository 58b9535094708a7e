"""Predict and evaluate: inputs that do not belong together are refused in one line that names them, and
nothing that looks complete is written (issue 10). The alignment rules themselves are tested in
``tests/test_evaluate.py::test_alignment_refuses_other_grids_units_and_missing_times``; here they are
checked through the command line, with what is left on disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import zarr
from reliability_support import one_line_error

from forecast.cli import main
from forecast.data.store import open_training_store
from forecast.models import build_model
from forecast.models.config import PersistenceConfig
from forecast.testing import linear_package, noisy_product
from forecast.train.package import save_package


def refused(capsys, stage: str, args: list[str], out: Path) -> str:
    code = main([stage, *args])
    line = one_line_error(capsys.readouterr().err, stage)
    assert code == 1 and not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    return line


def evaluate_args(product: Path, truth: Path, out: Path) -> list[str]:
    return [str(product), "--truth", str(truth), "--out", str(out), "--no-progress", "--set", "regions=[global]"]


@pytest.mark.parametrize("case", ["grid", "units", "leads"])
def test_evaluate_refuses_a_forecast_that_does_not_match_its_truth(truth_store, other_grid_store, tmp_path, capsys,
                                                                 case):
    if case == "grid":  # forecast on Legendre-Gauss 16 x 32, truth on equiangular 19 x 36
        product = noisy_product(other_grid_store, tmp_path / "fc.zarr", ["2000-01-10T00:00"], 2)
        expected = "the forecast's grid, legendre-gauss 16 x 32"
    elif case == "units":  # msl in hPa against a truth in Pa
        product = noisy_product(truth_store, tmp_path / "fc.zarr", ["2000-01-10T00:00"], 2)
        zarr.open_group(str(product), mode="r+")["msl"].attrs["units"] = "hPa"
        zarr.consolidate_metadata(str(product))
        expected = "variable 'msl': the forecast is in 'hPa' but the truth in 'Pa'"
    else:  # leads valid after the truth's last time (2000-02-29T18:00): the product moved a day later
        product = noisy_product(truth_store, tmp_path / "fc.zarr", ["2000-02-28T00:00"], 7)
        group = zarr.open_group(str(product), mode="r+")
        for name in ("init_time", "valid_time"):
            assert group[name].attrs["units"].startswith("hours since")
            group[name][...] = group[name][...] + 24
        zarr.consolidate_metadata(str(product))
        expected = "has no data at 4 valid time(s) of the forecast: 2000-03-01T00:00"
    line = refused(capsys, "evaluate", evaluate_args(product, truth_store, tmp_path / "ev"), tmp_path / "ev")
    assert expected in line, line


def package_with_channels(store: Path, path: Path, channels: list[str]) -> Path:
    """A persistence package on ``store``'s grid whose channels are ``channels`` (another channel set)."""
    s = open_training_store(store)
    s = dataclasses.replace(s, channels=channels)
    config = PersistenceConfig(prognostic_indices=list(range(len(channels))))
    net = build_model(config, s.grid_type, *s.shape, len(channels) + len(s.static_names) + 7, len(channels))
    return save_package(path, net, config, True, s, "name: other-channels\n")


@pytest.mark.parametrize("case", ["init", "grid", "channels"])
def test_predict_refuses_what_the_store_cannot_start(truth_store, other_grid_store, linear, tmp_path, capsys, case):
    init, package = "2000-01-10T00:00", linear
    if case == "init":
        init, expected = "2001-01-01T00:00", "initial-condition time(s) 2001-01-01T00:00 are not in the store"
    elif case == "grid":
        package = linear_package(tmp_path / "lg.pt", other_grid_store, {"z500": "z500", "msl": "msl"},
                                 {"z500": 0.0, "msl": 0.0})
        expected = "grid 19 x 36 (equiangular) differs from the"
    else:
        package = package_with_channels(truth_store, tmp_path / "uv.pt", ["z500", "u500"])
        expected = "channels ['u500'] the model needs are not in the store"
    out = tmp_path / "p.zarr"
    line = refused(capsys, "predict", [str(package), "--store", str(truth_store), "--init", init, "--lead", "1d",
                                       "--out", str(out), "--no-progress"], out)
    assert expected in line, line
