"""Ingest: inputs that used to give a silently wrong store, and real inputs that need a way in (issue 10).

Every refusal is checked for its message (file, variable, what was found and what was expected) and for
leaving nothing that looks like a store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from reliability_support import one_line_error

from forecast.cli import main
from forecast.errors import InputError
from forecast.ingest.config import IngestConfig
from forecast.ingest.pipeline import run_ingest
from forecast.testing import cds_dataset, write_cds_months


def config(paths: list[str], out: Path, **over) -> IngestConfig:
    tree = {"sources": [{"paths": paths}], "channels": [{"variable": "msl"}],
            "grid": {"type": "equiangular", "nlat": 19, "nlon": 36}, "stats": None,
            "output": {"path": str(out)}}
    for key, value in over.items():
        tree[key] = {**tree[key], **value} if isinstance(value, dict) and isinstance(tree.get(key), dict) else value
    return IngestConfig.model_validate(tree)


def nothing_written(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


def write(ds: xr.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path


def test_msl_in_hpa_labelled_pa_is_refused_with_the_observed_and_expected_range(tmp_path):
    ds = cds_dataset("2000-01-01", 8, nlat=19, nlon=36)
    ds["msl"] = (ds.msl / 100).assign_attrs(ds.msl.attrs)  # hPa values, still labelled "Pa"
    src = write(ds, tmp_path / "raw/hpa.nc")
    out = tmp_path / "s.zarr"
    with pytest.raises(InputError, match=r"hpa\.nc: variable 'msl' has values in \[9\d\d\.?\d*, 10\d\d\.?\d*\] Pa, "
                                         r"outside its plausible range \[85000, 110000\] Pa") as info:
        run_ingest(config([str(src)], out), progress=False)
    assert "valid_range" in str(info.value) and nothing_written(out)
    # The explicit option says the values are right: the store is written as they are.
    store = run_ingest(config([str(src)], out, channels=[{"variable": "msl", "valid_range": "any"}]), progress=False)
    assert float(xr.open_zarr(store.path).msl.max()) < 1100


def test_static_field_out_of_range_is_refused(tmp_path):
    src = write(cds_dataset("2000-01-01", 4, nlat=19, nlon=36), tmp_path / "raw/a.nc")
    lsm = cds_dataset("2000-01-01", 1, nlat=19, nlon=36).rename(msl="lsm")
    lsm["lsm"].attrs = {"units": "(0 - 1)"}  # a mask in percent: 0..100
    lsm["lsm"][:] = 100.0
    mask = write(lsm, tmp_path / "raw/lsm.nc")
    out = tmp_path / "s.zarr"
    with pytest.raises(InputError, match=r"variable 'lsm' has values in \[100, 100\] 1, outside its plausible range "
                                         r"\[-0\.01, 1\.01\]"):
        run_ingest(config([str(src)], out, static=[{"name": "lsm", "variable": "lsm",
                                                     "source": {"paths": [str(mask)]}}]), progress=False)
    assert nothing_written(out)


@pytest.mark.parametrize(("start", "end", "where"), [
    ("2000-01-01", "2000-03-10T18:00", "40 step(s)"),   # a download that stopped early
    ("1999-12-31", "2000-02-29T18:00", "4 step(s) of 6h missing at the start"),
])
def test_period_the_sources_do_not_cover_is_refused_unless_open_ended(tmp_path, start, end, where):
    files = write_cds_months(tmp_path / "raw", "2000-01-01", 2, nlat=19, nlon=36)
    out = tmp_path / "s.zarr"
    cfg = config([str(p) for p in files], out, time={"start": start, "end": end})
    with pytest.raises(InputError, match="missing at the (start|end).*time.open_ended: true") as info:
        run_ingest(cfg, progress=False)
    assert where.split(" missing")[0] in str(info.value) and "era5_200" in str(info.value) and nothing_written(out)
    cfg.time.open_ended = True
    ds = xr.open_zarr(run_ingest(cfg, progress=False).path)
    assert ds.sizes["time"] == (31 + 29) * 4  # what the sources hold, as asked


def test_hourly_source_is_subsampled_at_synoptic_hours(tmp_path):
    ds = cds_dataset("2000-01-01T01:00", 48, freq="1h", nlat=19, nlon=36)  # starts at 01 UTC
    src = write(ds, tmp_path / "raw/h.nc")
    store = xr.open_zarr(run_ingest(config([str(src)], tmp_path / "s.zarr"), progress=False).path)
    hours = pd.DatetimeIndex(store.time.values).hour
    assert set(hours) == {0, 6, 12, 18} and store.time.values[0] == np.datetime64("2000-01-01T06:00")
    np.testing.assert_array_equal(store.msl.values[:, 0, 0], ds.msl.sel(valid_time=store.time.values).values[:, 0, 0])


def test_finer_source_without_synoptic_times_is_refused(tmp_path):
    src = write(cds_dataset("2000-01-01T01:00", 16, freq="3h", nlat=19, nlon=36), tmp_path / "raw/t.nc")
    out = tmp_path / "s.zarr"
    with pytest.raises(InputError, match=r"'msl': the sources \(3h steps from 2000-01-01T01:00, .*t\.nc\) hold no time "
                                         r"at the synoptic hours of the 6h step.*time.resample"):
        run_ingest(config([str(src)], out), progress=False)
    assert nothing_written(out)


def test_regional_source_grid_names_file_and_variable(tmp_path):
    ds = cds_dataset("2000-01-01", 4, nlat=19, nlon=36).sel(latitude=slice(70, 20))
    src = write(ds, tmp_path / "raw/europe.nc")
    out = tmp_path / "s.zarr"
    with pytest.raises(InputError, match=r"europe\.nc: variable 'msl': source grid is not global: latitude covers"):
        run_ingest(config([str(src)], out), progress=False)
    assert nothing_written(out)


def time_index_store(path: Path, hours: np.ndarray, units: str | None = None) -> xr.Dataset:
    """An ERA5-like zarr with time as integer hours since 1940-01-01 in a dimension ``time_index``: msl grows
    by 10 Pa an hour (uniform in space), so values at any time are known exactly."""
    lat, lon = np.linspace(90, -90, 19), np.arange(36) * 10.0
    msl = (100_000.0 + 10.0 * (hours - hours[0]))[:, None, None] * np.ones((1, 19, 36))
    ds = xr.Dataset({"mean_sea_level_pressure": (("time_index", "latitude", "longitude"), msl.astype(np.float32),
                                                 {"units": "Pa"})},
                    coords={"time_index": ("time_index", hours.astype(np.int64), {"units": units} if units else {}),
                            "latitude": lat, "longitude": lon})
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True)
    return ds


def irregular_hours(n: int) -> np.ndarray:
    """Integer hours since 1940-01-01 from 2000-01-01T00 at alternating 7 and 8 h steps."""
    h0 = int((np.datetime64("2000-01-01T00") - np.datetime64("1940-01-01T00")) / np.timedelta64(1, "h"))
    return h0 + np.concatenate([[0], np.cumsum(np.tile([7, 8], n)[: n - 1])])


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_time_index_in_hours_since_1940_at_irregular_steps_is_resampled(tmp_path, method):
    hours = irregular_hours(20)
    time_index_store(tmp_path / "src.zarr", hours)
    cfg = config([str(tmp_path / "src.zarr")], tmp_path / f"{method}.zarr",
                 sources=[{"paths": [str(tmp_path / "src.zarr")], "rename_dims": {"time_index": "time"},
                           "time_units": "hours since 1940-01-01"}],
                 time={"resample": method})
    store = xr.open_zarr(run_ingest(cfg, progress=False).path)
    times = store.time.values
    span = hours[-1] - hours[0]
    assert times[0] == np.datetime64("2000-01-01T00:00") and times.size == span // 6 + 1
    assert set(pd.DatetimeIndex(times).hour) == {0, 6, 12, 18}
    elapsed = (times - times[0]) / np.timedelta64(1, "h")  # hours since the first source time
    src = hours - hours[0]
    if method == "linear":
        expected = 100_000.0 + 10.0 * elapsed  # msl is linear in time: interpolation is exact
    else:
        nearest = src[np.abs(src[None, :] - elapsed[:, None]).argmin(1)]
        expected = 100_000.0 + 10.0 * nearest
    np.testing.assert_allclose(store.msl.values.mean((1, 2)), expected, rtol=0, atol=0.02)


def test_time_axis_that_is_not_cf_decodable_names_the_option(tmp_path, capsys):
    time_index_store(tmp_path / "src.zarr", irregular_hours(6))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources: [{{paths: ['{tmp_path}/src.zarr'], rename_dims: {{time_index: time}}}}]\n"
                   f"channels: [{{variable: msl}}]\ngrid: {{nlat: 19, nlon: 36}}\nstats: null\n"
                   f"output: {{path: {tmp_path}/s.zarr}}\n")
    assert main(["ingest", str(cfg), "--no-progress"]) == 1
    line = one_line_error(capsys.readouterr().err, "ingest")
    assert "src.zarr: time axis 'time' holds int64 values with no units attribute, not dates" in line
    assert "set `time_units:`" in line and nothing_written(tmp_path / "s.zarr")
    # Units a CF reader cannot decode ("hours after"): the same message names the option.
    time_index_store(tmp_path / "src.zarr", irregular_hours(6), units="hours after 1940-01-01")
    assert main(["ingest", str(cfg), "--no-progress"]) == 1
    line = one_line_error(capsys.readouterr().err, "ingest")
    assert "units 'hours after 1940-01-01', not dates" in line and "time_units" in line


def test_resampling_does_not_bridge_a_hole_in_the_sources(tmp_path):
    hours = irregular_hours(12)
    hours[6:] += 48  # two days missing
    time_index_store(tmp_path / "src.zarr", hours)
    cfg = config([str(tmp_path / "src.zarr")], tmp_path / "s.zarr",
                 sources=[{"paths": [str(tmp_path / "src.zarr")], "rename_dims": {"time_index": "time"},
                           "time_units": "hours since 1940-01-01"}],
                 time={"resample": "linear"})
    with pytest.raises(InputError, match=r"'msl': no source time within 12h around .*src\.zarr.*max_gap"):
        run_ingest(cfg, progress=False)
    assert nothing_written(tmp_path / "s.zarr")
