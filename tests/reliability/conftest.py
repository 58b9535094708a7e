"""Shared tiny inputs of the reliability suite: one truth store (``forecast ingest`` of analytic fields) and
a linear model package on its grid, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forecast.testing import evaluation_store, linear_package, tiny_store


@pytest.fixture(scope="session")
def truth_store(tmp_path_factory) -> Path:
    """z500 and msl, 6-hourly over January-February 2000 on a 19 x 36 equiangular grid, statistics over January."""
    return evaluation_store(tmp_path_factory.mktemp("reliability"))


@pytest.fixture(scope="session")
def linear(truth_store) -> Path:
    """z500 grows by 1 % a step; msl accumulates 0.1 x cos(solar zenith angle): a cheap, exact model."""
    return linear_package(truth_store.parent / "linear.pt", truth_store, {"z500": "z500", "msl": "cos_zenith"},
                          {"z500": 0.01, "msl": 0.1})


@pytest.fixture(scope="session")
def other_grid_store(tmp_path_factory) -> Path:
    """The same channels (z500, msl) on another grid: Legendre-Gauss 16 x 32."""
    return tiny_store(tmp_path_factory.mktemp("other-grid"))


@pytest.fixture
def unwritable_dir(tmp_path) -> Path:
    """A folder this process cannot create entries in (root ignores permission bits: then a read-only /sys)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for cand in (ro, Path("/sys")):
        try:
            (cand / f"probe-{os.getpid()}").mkdir()
        except OSError:
            return cand
        (cand / f"probe-{os.getpid()}").rmdir()
    pytest.skip("no unwritable folder on this machine")
