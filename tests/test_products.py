"""Forecast products: streaming writes, atomicity, CF / schema checks and round trips through xarray.

The writer is fed known arrays lead by lead; what xarray reads back must be those arrays exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from forecast.errors import InputError
from forecast.grids import Grid
from forecast.products import (
    COMPLETE_MARKER,
    ProductSpec,
    ProductWriter,
    check_product,
    export_netcdf,
    lead_timedeltas,
    open_product,
)
from forecast.products.writer import CHUNK_TARGET_BYTES

GRID = Grid("legendre-gauss", 8, 16)
CHANNELS = ["z500", "z850", "u500", "msl"]
ATTRS = [
    {"units": "m**2 s**-2", "long_name": "Geopotential at 500 hPa", "standard_name": "geopotential",
     "short_name": "z", "level": 500.0},
    {"units": "m**2 s**-2", "long_name": "Geopotential at 850 hPa", "standard_name": "geopotential",
     "short_name": "z", "level": 850.0},
    {"units": "m s**-1", "long_name": "U component of wind at 500 hPa", "standard_name": "eastward_wind",
     "short_name": "u", "level": 500.0},
    {"units": "Pa", "long_name": "Mean sea level pressure", "standard_name": "air_pressure_at_mean_sea_level",
     "short_name": "msl"},
]


def spec(n_init=3, n_lead=5, members=None, **kw) -> ProductSpec:
    return ProductSpec(
        init_times=np.datetime64("2001-01-01T00", "ns") + np.arange(n_init) * np.timedelta64(12, "h"),
        lead_times=lead_timedeltas(n_lead - 1, "6h", include_initial=True),
        latitudes=GRID.latitudes, longitudes=GRID.longitudes, channels=CHANNELS, channel_attrs=ATTRS,
        members=members, attrs={"title": "test", "Conventions": "CF-1.8", "source": "tests",
                                "history": "written by a test"}, **kw)


def fields(s: ProductSpec) -> np.ndarray:
    """Known data ``(init, lead, member, C, H, W)``: every value distinct."""
    m = s.members or 1
    shape = (s.init_times.size, s.lead_times.size, m, len(CHANNELS), *s.shape)
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 0.5 + 1.0


def write(path, s, data, blocks=None, stop_after=None):
    blocks = blocks or [(0, s.init_times.size)]
    with ProductWriter(path, s) as w:
        for i0, i1 in blocks:
            for k in range(s.lead_times.size):
                if stop_after is not None and k == stop_after:
                    raise KeyboardInterrupt("stopped by the test")
                w.write(slice(i0, i1), k, data[i0:i1, k])
    return w


@pytest.mark.parametrize("lead_chunk,blocks", [(1, None), (2, [(0, 2), (2, 3)]), (None, [(0, 1), (1, 3)])])
def test_streamed_product_equals_the_in_memory_fields(tmp_path, lead_chunk, blocks):
    s = spec(members=2, lead_chunk=lead_chunk)
    data = fields(s)
    write(tmp_path / "p.zarr", s, data, blocks)
    ds = open_product(tmp_path / "p.zarr")
    for c, name in enumerate(CHANNELS):
        np.testing.assert_array_equal(ds[name].values, data[:, :, :, c])
    k = 5 if lead_chunk is None else lead_chunk  # 5 leads x 2 members x 8 x 16 x 4 B is far below 1 MiB
    assert ds.z500.encoding["chunks"] == ds.msl.encoding["chunks"] == (1, k, 2, 8, 16)
    stored = open_product(tmp_path / "p.zarr", channels=False)
    assert stored.z500.encoding["chunks"] == (1, k, 2, 1, 8, 16)  # one level of the level axis per chunk
    assert ds.attrs["complete"] is True and ds.attrs["leads_written"] == [5, 5, 5]
    assert (tmp_path / "p.zarr" / COMPLETE_MARKER).is_file()


def test_chunks_hold_about_one_mib_by_default():
    long = ProductSpec(init_times=np.array(["2001-01-01"], dtype="datetime64[ns]"),
                       lead_times=lead_timedeltas(1460, "6h", True), latitudes=np.linspace(90, -90, 32),
                       longitudes=np.arange(64) * 5.625, channels=["msl"], channel_attrs=[{}])
    assert long.leads_per_chunk == CHUNK_TARGET_BYTES // (32 * 64 * 4) == 128  # a year: 12 chunks per series
    big = ProductSpec(init_times=long.init_times, lead_times=long.lead_times, latitudes=np.linspace(90, -90, 73),
                      longitudes=np.arange(144) * 2.5, channels=["msl"], channel_attrs=[{}], members=16)
    assert big.leads_per_chunk == 1  # one lead of 16 members is already 0.67 MB


def test_product_passes_the_cf_check_and_round_trips_through_xarray_and_netcdf(tmp_path):
    s = spec(members=3)
    data = fields(s)
    write(tmp_path / "p.zarr", s, data)
    ds = open_product(tmp_path / "p.zarr")
    assert check_product(ds) == []
    assert ds.z500.dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    assert ds.valid_time.dims == ("init_time", "lead_time")
    np.testing.assert_array_equal(ds.valid_time.values[2, 3], np.datetime64("2001-01-02T18:00", "ns"))
    assert ds.lead_time.dtype == "timedelta64[ns]" and ds.init_time.dtype == "datetime64[ns]"
    assert ds.z850.attrs["units"] == "m**2 s**-2" and ds.z850.attrs["level"] == 850.0
    assert ds.latitude.attrs["units"] == "degrees_north" and ds.member.attrs["standard_name"] == "realization"
    # CF cell bounds: each latitude between its edges, the outer edges at the poles, longitudes 360/n wide.
    lat_b, lon_b = ds["latitude_bnds"].values, ds["longitude_bnds"].values
    assert ds.latitude.attrs["bounds"] == "latitude_bnds" and lat_b.shape == (ds.latitude.size, 2)
    assert (lat_b[:, 0] >= ds.latitude.values).all() and (ds.latitude.values >= lat_b[:, 1]).all()
    assert lat_b[0, 0] == 90.0 and lat_b[-1, 1] == -90.0 and (lat_b[1:, 0] == lat_b[:-1, 1]).all()
    np.testing.assert_allclose(lon_b[:, 1] - lon_b[:, 0], 360.0 / ds.longitude.size)
    assert "latitude_bnds" not in ds.data_vars  # a coordinate, not a forecast variable
    # The encoding is CF: raw integers with "hours since" / "hours" units, decoded by any CF reader.
    raw = xr.open_zarr(tmp_path / "p.zarr", decode_times=False, decode_timedelta=False)
    assert raw.lead_time.attrs["units"] == "hours" and raw.lead_time.values.tolist() == [0, 6, 12, 18, 24]
    assert raw.init_time.attrs["units"] == "hours since 1970-01-01"
    nc = export_netcdf(tmp_path / "p.zarr", tmp_path / "p.nc")
    back = xr.open_dataset(nc)
    assert check_product(back) == []
    stored = open_product(tmp_path / "p.zarr", channels=False).load()  # the CF level axis too
    xr.testing.assert_identical(back.drop_attrs(), stored.drop_attrs())
    assert back.attrs["complete"] == 1 and back.attrs["title"] == "test"


def test_pressure_level_channels_have_a_cf_level_axis_that_xarray_selects(tmp_path):
    s = spec(members=2)
    data = fields(s)
    write(tmp_path / "p.zarr", s, data)
    raw = xr.open_zarr(tmp_path / "p.zarr")  # as any CF / WeatherBench2 reader sees it
    assert check_product(raw) == [] and check_product(open_product(tmp_path / "p.zarr")) == []
    assert raw.level.values.tolist() == [500.0, 850.0] and raw.level.dtype == np.float64
    assert raw.level.attrs == {"units": "hPa", "standard_name": "air_pressure", "long_name": "pressure level",
                               "positive": "down", "axis": "Z"}
    assert raw.z500.dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert raw.msl.dims == ("init_time", "lead_time", "member", "latitude", "longitude")  # no level: single-level
    at500 = raw.sel(level=500)
    np.testing.assert_array_equal(at500.z500.values, data[:, :, :, 0])
    np.testing.assert_array_equal(at500.u500.values, data[:, :, :, 2])
    assert np.isnan(at500.z850.values).all()  # z850 holds nothing at 500 hPa
    np.testing.assert_array_equal(raw.z850.sel(level=850).values, data[:, :, :, 1])
    np.testing.assert_array_equal(at500.msl.values, data[:, :, :, 3])
    # z500's chunks at 850 hPa are all NaN: never stored (chunk keys c/init/lead/member/level/lat/lon).
    assert {p.name for p in (tmp_path / "p.zarr" / "z500" / "c").glob("*/*/*/*")} == {"0"}
    # The project's view (every stage reads it): one array per channel, its level an attribute, as before.
    ds = open_product(tmp_path / "p.zarr")
    assert "level" not in ds.dims and ds.z850.attrs["level"] == 850.0
    np.testing.assert_array_equal(ds.z850.values, data[:, :, :, 1])
    assert ds.z850.dims == ("init_time", "lead_time", "member", "latitude", "longitude")


def test_weatherbench2_naming_stacks_levels(tmp_path):
    s = spec(members=2, naming="weatherbench2")
    data = fields(s)
    write(tmp_path / "wb2.zarr", s, data)
    ds = open_product(tmp_path / "wb2.zarr")
    assert check_product(ds) == []
    assert set(ds.data_vars) == {"geopotential", "u_component_of_wind", "mean_sea_level_pressure"}
    assert ds.geopotential.dims == ("time", "prediction_timedelta", "number", "level", "latitude", "longitude")
    assert ds.level.values.tolist() == [500.0, 850.0] and ds.valid_time.dims == ("time", "prediction_timedelta")
    np.testing.assert_array_equal(ds.geopotential.sel(level=850).values, data[:, :, :, 1])
    np.testing.assert_array_equal(ds.u_component_of_wind.sel(level=500).values, data[:, :, :, 2])
    assert np.isnan(ds.u_component_of_wind.sel(level=850).values).all()  # u850 is not a channel
    np.testing.assert_array_equal(ds.mean_sea_level_pressure.values, data[:, :, :, 3])


def test_check_product_reports_what_is_wrong(tmp_path):
    s = spec()
    write(tmp_path / "p.zarr", s, fields(s))
    ds = open_product(tmp_path / "p.zarr").load()
    assert check_product(ds) == []
    broken = ds.copy()
    broken["msl"].attrs.pop("units")
    broken = broken.assign_coords(valid_time=broken.valid_time + np.timedelta64(1, "h"))
    broken = broken.isel(latitude=slice(None, None, -1))
    del broken.attrs["Conventions"]
    problems = "\n".join(check_product(broken))
    for expected in ("'msl': attribute 'units' is missing", "north to south", "valid_time is not init_time + lead_time",
                     "'Conventions' is missing"):
        assert expected in problems
    assert "dims" in "\n".join(check_product(ds.transpose("lead_time", ...)))


def test_crash_in_the_middle_leaves_a_readable_partial_product_flagged_incomplete(tmp_path):
    s = spec(n_init=2, n_lead=6, lead_chunk=4)
    data = fields(s)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "p.zarr", s, data, stop_after=3)
    assert not (tmp_path / "p.zarr" / COMPLETE_MARKER).exists()
    with pytest.raises(InputError, match="incomplete forecast product: KeyboardInterrupt: stopped by the test"):
        open_product(tmp_path / "p.zarr")
    ds = open_product(tmp_path / "p.zarr", allow_incomplete=True)
    assert ds.attrs["complete"] is False and ds.attrs["last_lead_written"] == 2
    np.testing.assert_array_equal(ds.msl.values[:, :3], data[:, :3, 0, 3])  # a buffered, half-full chunk too
    assert np.isnan(ds.msl.values[:, 3:]).all()
    assert not list(tmp_path.glob(".p.zarr.partial-*"))


def test_failure_before_any_lead_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "p.zarr", spec(), fields(spec()), stop_after=0)
    assert not (tmp_path / "p.zarr").exists() and not list(tmp_path.iterdir())


def test_an_existing_product_is_not_overwritten_silently(tmp_path):
    s = spec()
    write(tmp_path / "p.zarr", s, fields(s))
    with pytest.raises(InputError, match="already exists"):
        write(tmp_path / "p.zarr", s, fields(s) * 0)
    assert open_product(tmp_path / "p.zarr").msl.values[0, 0, 0, 0] == fields(s)[0, 0, 0, 3, 0, 0]
    with ProductWriter(tmp_path / "p.zarr", s, overwrite=True) as w:
        for k in range(s.lead_times.size):
            w.write(slice(0, 3), k, fields(s)[:, k] * 0)
    assert float(abs(open_product(tmp_path / "p.zarr").msl).max()) == 0.0


_KILLED_WRITER = """
import sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from test_products import fields, spec
from forecast.products import ProductWriter
s = spec(n_lead=50, lead_chunk=1)
data = fields(s)
with ProductWriter({path!r}, s) as w:
    for k in range(50):
        w.write(slice(0, 3), k, data[:, k])
        print(k, flush=True)
        time.sleep(0.2)
"""


def test_a_killed_run_never_leaves_a_product_that_looks_complete(tmp_path):
    path = tmp_path / "p.zarr"
    code = _KILLED_WRITER.format(tests=os.path.dirname(__file__), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"  # the first lead is on disk
        proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = list(tmp_path.glob(".p.zarr.partial-*"))
    assert not path.exists() and len(partial) == 1
    with pytest.raises(InputError, match="only an unfinished .p.zarr.partial"):
        open_product(path)
    time.sleep(0.01)
    s = spec()
    write(path, s, fields(s))  # the next run removes the dead writer's leftovers
    assert not partial[0].exists() and open_product(path).attrs["complete"] is True
