"""WeatherBench2 / ARCO-ERA5 zarr sources: zarr format 2 with Blosc, on disk and at URLs (HTTP, memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from forecast.ingest.config import IngestConfig
from forecast.ingest.pipeline import run_ingest
from forecast.testing import analytic_field, weatherbench_store


def wb2_config(source: str, out: Path, **over) -> IngestConfig:
    tree = {
        "sources": [{"paths": [source]}],
        "channels": [{"variable": "z", "level": 500}, {"variable": "u", "level": 850}, {"variable": "msl"}],
        "grid": {"type": "equiangular", "nlat": 37, "nlon": 72},
        "stats": {"start": None, "end": None},
        "output": {"path": str(out), "time_chunk": 4},
    }
    tree.update(over)
    return IngestConfig.model_validate(tree)


@pytest.mark.parametrize("ascending", [True, False], ids=["latitude-ascending", "latitude-descending"])
def test_format2_blosc_store_ingests_with_level_selection(tmp_path, ascending):
    src = weatherbench_store(tmp_path / "wb2.zarr", periods=40, latitude_ascending=ascending)
    assert '"id": "blosc"' in (src / "geopotential" / ".zarray").read_text()  # as the public archives are
    ds = xr.open_zarr(run_ingest(wb2_config(str(src), tmp_path / "out.zarr"), progress=False).path)
    # Same 5-degree grid with poles in and out: the conservative remap is the identity, so the store holds
    # the analytic fields (north to south) plus each level's offset of level / 10.
    times = pd.date_range("2000-01-01", periods=40, freq="6h").values
    lat, lon = np.linspace(90.0, -90.0, 37), np.arange(72) * 5.0
    np.testing.assert_allclose(ds.z500.values, analytic_field("z", times, lat, lon) + 50.0, rtol=1e-6)
    np.testing.assert_allclose(ds.u850.values, analytic_field("u", times, lat, lon) + 85.0, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(ds.msl.values, analytic_field("msl", times, lat, lon), rtol=1e-6)
    assert ds.z500.attrs["units"] == "m**2 s**-2" and ds.latitude.values[0] == 90.0
