"""Ingestion pipeline on small CDS-style files with analytic fields."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from forecast.errors import InputError
from forecast.grids import Grid
from forecast.ingest.config import IngestConfig
from forecast.ingest.pipeline import run_ingest
from forecast.testing import analytic_field, cds_dataset, write_cds_months


def make_config(src: list[str], out: Path, **over) -> IngestConfig:
    tree = {
        "sources": [{"paths": src}],
        "channels": [{"variable": "msl"}],
        "grid": {"type": "equiangular", "nlat": 37, "nlon": 72},
        "stats": {"start": None, "end": None},
        "output": {"path": str(out), "time_chunk": 4},
    }
    tree.update(over)
    return IngestConfig.model_validate(tree)


def ingest(cfg: IngestConfig, **kw) -> xr.Dataset:
    run_ingest(cfg, progress=False, **kw)
    return xr.open_zarr(cfg.output.path)


@pytest.fixture
def two_months(tmp_path: Path) -> list[Path]:
    return write_cds_months(tmp_path / "raw", "2000-01-01", 2, variables=("msl", "z"), level=500)


def test_same_grid_round_trip_keeps_values(two_months, tmp_path):
    cfg = make_config([str(p) for p in two_months], tmp_path / "s.zarr",
                      channels=[{"variable": "msl"}, {"variable": "z", "level": 500}])
    ds = ingest(cfg)
    src = xr.open_mfdataset(two_months, engine="netcdf4")
    assert ds.sizes["time"] == (31 + 29) * 4
    np.testing.assert_array_equal(ds.msl.values, src.msl.values)
    np.testing.assert_array_equal(ds.z500.values, src.z.isel(pressure_level=0).values)
    assert ds.msl.dtype == np.float32 and ds.z500.attrs["units"] == "m**2 s**-2"
    assert ds.z500.attrs["level"] == 500.0 and ds.attrs["channels"] == ["msl", "z500"]
    assert ds.msl.encoding["chunks"] == (4, 37, 72)
    assert pd.Timestamp(ds.time.values[-1]) == pd.Timestamp("2000-02-29T18:00")


def test_regrid_to_gaussian_conserves_global_mean(two_months, tmp_path):
    cfg = make_config([str(p) for p in two_months], tmp_path / "g.zarr",
                      grid={"type": "legendre-gauss", "nlat": 16, "nlon": 32})
    ds = ingest(cfg)
    src = xr.open_mfdataset(two_months, engine="netcdf4").msl.isel(valid_time=slice(0, 8)).values
    g = Grid("legendre-gauss", 16, 32)
    np.testing.assert_allclose(ds.latitude.values, g.latitudes)
    # Independent area weights: exact cell areas of the 5 deg source grid and Gauss weights of the target.
    lat = np.deg2rad(np.linspace(90, -90, 37))
    edges = np.concatenate([[np.pi / 2], 0.5 * (lat[1:] + lat[:-1]), [-np.pi / 2]])
    w_src = np.sin(edges[:-1]) - np.sin(edges[1:])
    w_dst = np.polynomial.legendre.leggauss(16)[1]
    mean_src = (src.astype(np.float64) * w_src[None, :, None]).sum((1, 2)) / (w_src.sum() * 72)
    mean_dst = (ds.msl.values[:8].astype(np.float64) * w_dst[None, :, None]).sum((1, 2)) / (2.0 * 32)
    np.testing.assert_allclose(mean_dst, mean_src, rtol=2e-7)


def test_statistics_match_hand_computation_over_training_period(tmp_path):
    # A field that is uniform in space and equal to its time index: mean/std are those of 0..n-1.
    ds = cds_dataset("2000-01-01", 40, variables=("msl",))
    ds["msl"][:] = np.arange(40, dtype=np.float32)[:, None, None] * 10.0 + 100000.0
    (tmp_path / "raw").mkdir()
    ds.to_netcdf(tmp_path / "raw/a.nc")
    cfg = make_config([str(tmp_path / "raw/a.nc")], tmp_path / "s.zarr",
                      stats={"start": "2000-01-01T00:00", "end": "2000-01-05T18:00"})
    out = ingest(cfg)
    x = np.arange(20) * 10.0 + 100000.0  # 5 days x 4 steps inside the statistics period
    assert float(out.stats_mean[0]) == pytest.approx(x.mean(), rel=1e-12)
    assert float(out.stats_std[0]) == pytest.approx(x.std(), rel=1e-9)
    assert float(out.stats_tendency_mean[0]) == pytest.approx(10.0, rel=1e-9)
    assert float(out.stats_tendency_std[0]) == pytest.approx(0.0, abs=1e-6)
    assert out.attrs["stats_end"] == "2000-01-05T18:00" and out.attrs["stats_steps"] == 20


def test_statistics_are_area_weighted(tmp_path):
    # msl = 1e5 + 100 sin(lat) on a 5 deg grid: the area-weighted mean is 1e5 exactly (symmetry
    # holds for any weights), but std must be the area-weighted one: sqrt(E_w[100^2 sin^2(lat)]).
    ds = cds_dataset("2000-01-01", 8, variables=("msl",))
    lat = np.deg2rad(ds.latitude.values)
    ds["msl"][:] = (100000.0 + 100.0 * np.sin(lat))[None, :, None].astype(np.float32)
    (tmp_path / "raw").mkdir()
    ds.to_netcdf(tmp_path / "raw/a.nc")
    out = ingest(make_config([str(tmp_path / "raw/a.nc")], tmp_path / "s.zarr"))
    edges = np.concatenate([[np.pi / 2], 0.5 * (lat[1:] + lat[:-1]), [-np.pi / 2]])
    w = np.sin(edges[:-1]) - np.sin(edges[1:])
    f = (100000.0 + 100.0 * np.sin(lat)).astype(np.float32).astype(np.float64)
    mean = (w * f).sum() / w.sum()
    std = np.sqrt((w * (f - mean) ** 2).sum() / w.sum())
    assert float(out.stats_mean[0]) == pytest.approx(mean, rel=1e-9)
    assert float(out.stats_std[0]) == pytest.approx(std, rel=1e-6)
    # A plain grid-point std would be far off (poles over-counted): make sure it is not what we store.
    assert abs(float(out.stats_std[0]) - f.std()) > 1.0


def test_old_cds_layout_with_expver_split_is_merged(tmp_path):
    ds = cds_dataset("2000-01-01", 8, variables=("msl",), layout="old")
    era5 = ds.msl.where(ds.time < np.datetime64("2000-01-02T00"))
    era5t = ds.msl.where(ds.time >= np.datetime64("2000-01-02T00"))
    split = xr.concat([era5, era5t], dim=xr.DataArray([1, 5], dims="expver", name="expver")).to_dataset()
    split.msl.attrs = ds.msl.attrs
    (tmp_path / "raw").mkdir()
    split.to_netcdf(tmp_path / "raw/old.nc")
    out = ingest(make_config([str(tmp_path / "raw/old.nc")], tmp_path / "s.zarr"))
    np.testing.assert_array_equal(out.msl.values, ds.msl.values)


def test_longitude_and_latitude_conventions_are_normalised(tmp_path):
    ds = cds_dataset("2000-01-01", 8, variables=("msl",))
    flipped = ds.assign_coords(longitude=((ds.longitude + 180) % 360) - 180).sortby("longitude")
    flipped = flipped.sortby("latitude").rename({"pressure_level": "isobaricInhPa"} if "pressure_level" in
                                                  flipped.dims else {})
    (tmp_path / "raw").mkdir()
    flipped.to_netcdf(tmp_path / "raw/f.nc")
    out = ingest(make_config([str(tmp_path / "raw/f.nc")], tmp_path / "s.zarr"))
    np.testing.assert_array_equal(out.longitude.values, ds.longitude.values)
    np.testing.assert_array_equal(out.latitude.values, ds.latitude.values)
    np.testing.assert_array_equal(out.msl.values, ds.msl.values)


@pytest.mark.parametrize("name", ["isobaricInhPa", "level", "pressure_level"])
def test_level_names_are_recognised(tmp_path, name):
    ds = cds_dataset("2000-01-01", 4, variables=("z",), level=500).rename({"pressure_level": name})
    (tmp_path / "raw").mkdir()
    ds.to_netcdf(tmp_path / "raw/z.nc")
    out = ingest(make_config([str(tmp_path / "raw/z.nc")], tmp_path / "s.zarr",
                             channels=[{"variable": "z", "level": 500}]))
    assert "z500" in out and out.z500.shape == (4, 37, 72)


def test_hourly_source_is_subsampled_to_six_hours(tmp_path):
    ds = cds_dataset("2000-01-01", 48, variables=("msl",), freq="1h")
    (tmp_path / "raw").mkdir()
    ds.to_netcdf(tmp_path / "raw/h.nc")
    out = ingest(make_config([str(tmp_path / "raw/h.nc")], tmp_path / "s.zarr"))
    assert out.sizes["time"] == 8
    np.testing.assert_array_equal(out.msl.values, ds.msl.values[::6])


def test_units_are_converted_or_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    ds = cds_dataset("2000-01-01", 4, variables=("msl",))
    hpa = ds.copy()
    hpa["msl"] = ds.msl / 100.0
    hpa.msl.attrs = {**ds.msl.attrs, "units": "hPa"}
    hpa.to_netcdf(tmp_path / "raw/hpa.nc")
    out = ingest(make_config([str(tmp_path / "raw/hpa.nc")], tmp_path / "s.zarr"))
    np.testing.assert_allclose(out.msl.values, ds.msl.values, rtol=1e-6)
    bad = ds.copy()
    bad.msl.attrs = {**ds.msl.attrs, "units": "K"}
    bad.to_netcdf(tmp_path / "raw/k.nc")
    with pytest.raises(InputError, match=r"k\.nc: variable 'msl' has units 'K'; expected 'Pa'"):
        run_ingest(make_config([str(tmp_path / "raw/k.nc")], tmp_path / "k.zarr"), progress=False)


# --- bad input: each case names the file, the variable and the time --------------------------------


def test_missing_variable(two_months, tmp_path):
    cfg = make_config([str(p) for p in two_months], tmp_path / "s.zarr", channels=[{"variable": "t2m"}])
    with pytest.raises(InputError, match=r"variable 't2m' is in none of the 2 source files \(found: \['msl', 'z'\]"):
        run_ingest(cfg, progress=False)


def test_missing_level(two_months, tmp_path):
    cfg = make_config([str(p) for p in two_months], tmp_path / "s.zarr",
                      channels=[{"variable": "z", "level": 850}])
    with pytest.raises(InputError, match=r"era5_200001\.nc: variable 'z' has no level 850 hPa \(levels: \[500\.0\]\)"):
        run_ingest(cfg, progress=False)


def test_nan_is_refused_with_time_and_file(tmp_path, two_months):
    with xr.open_dataset(two_months[1]) as f:
        ds = f.load()
    ds["msl"][10, 5, 5] = np.nan
    ds.to_netcdf(two_months[1])
    out = tmp_path / "s.zarr"
    expected = r"channel 'msl': NaN values at 1 time\(s\): 2000-02-03T12:00 \(.*era5_200002\.nc\)"
    with pytest.raises(InputError, match=expected):
        run_ingest(make_config([str(p) for p in two_months], out), progress=False)
    assert not out.exists() and not list(out.parent.glob(".s.zarr.partial-*"))


def test_duplicated_time_across_files(tmp_path, two_months):
    extra = cds_dataset("2000-01-31T18:00", 2, variables=("msl",))
    extra.to_netcdf(tmp_path / "raw/extra.nc")
    paths = [str(p) for p in two_months] + [str(tmp_path / "raw/extra.nc")]
    expected = r"time 2000-01-31T18:00 appears twice \(in .*era5_200001\.nc and .*extra\.nc\)"
    with pytest.raises(InputError, match=expected):
        run_ingest(make_config(paths, tmp_path / "s.zarr"), progress=False)


def test_gap_in_time_names_the_files_around_it(tmp_path):
    paths = write_cds_months(tmp_path / "raw", "2000-01-01", 3, variables=("msl",))
    with pytest.raises(InputError, match=r"gap in time: 116 step\(s\) of 6h missing between "
                                         r"2000-01-31T18:00 \(.*era5_200001\.nc\) and 2000-03-01T00:00 "
                                         r"\(.*era5_200003\.nc\): 2000-02-01T00:00"):
        run_ingest(make_config([str(paths[0]), str(paths[2])], tmp_path / "s.zarr"), progress=False)


def test_non_uniform_step(tmp_path):
    (tmp_path / "raw").mkdir()
    ds = cds_dataset("2000-01-01", 8, variables=("msl",))
    times = ds.valid_time.values.copy()
    times[5:] = times[5:] + np.timedelta64(3, "h")
    ds.assign_coords(valid_time=times).to_netcdf(tmp_path / "raw/n.nc")
    expected = (r"non-uniform time step: 2000-01-02T00:00 -> 2000-01-02T09:00 \(9h, file .*n\.nc\) "
                r"is not a multiple of 6h")
    with pytest.raises(InputError, match=expected):
        run_ingest(make_config([str(tmp_path / "raw/n.nc")], tmp_path / "s.zarr"), progress=False)


def test_step_that_does_not_divide_the_configured_one(tmp_path):
    (tmp_path / "raw").mkdir()
    cds_dataset("2000-01-01", 8, variables=("msl",), freq="4h").to_netcdf(tmp_path / "raw/f.nc")
    with pytest.raises(InputError, match=r"source step 4h near 2000-01-01T00:00 \(.*f\.nc\) does "
                                         r"not divide the configured step 6h"):
        run_ingest(make_config([str(tmp_path / "raw/f.nc")], tmp_path / "s.zarr"), progress=False)


def test_truncated_file_is_named(tmp_path, two_months):
    data = two_months[1].read_bytes()
    two_months[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"era5_200002\.nc: cannot be read as netcdf .* unreadable or truncated"):
        run_ingest(make_config([str(p) for p in two_months], tmp_path / "s.zarr"), progress=False)


def test_garbage_file_is_named(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/bad.nc").write_bytes(b"this is not a netCDF file" * 100)
    with pytest.raises(InputError, match=r"bad\.nc: cannot be read as netcdf"):
        run_ingest(make_config([str(tmp_path / "raw/bad.nc")], tmp_path / "s.zarr"), progress=False)


def test_pattern_matching_nothing(tmp_path):
    with pytest.raises(InputError, match=r"source pattern '.*nothing-\*\.nc' matches no file"):
        run_ingest(make_config([str(tmp_path / "nothing-*.nc")], tmp_path / "s.zarr"), progress=False)


def test_channels_with_different_times_are_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    cds_dataset("2000-01-01", 8, variables=("msl",)).to_netcdf(tmp_path / "raw/a.nc")
    cds_dataset("2000-01-01", 6, variables=("z",), level=500).to_netcdf(tmp_path / "raw/b.nc")
    cfg = make_config([str(tmp_path / "raw/*.nc")], tmp_path / "s.zarr",
                      channels=[{"variable": "msl"}, {"variable": "z", "level": 500}])
    with pytest.raises(InputError, match=r"channel 'z500' lacks 2 time\(s\) that channel 'msl' has: "
                                         r"2000-01-02T12:00, 2000-01-02T18:00"):
        run_ingest(cfg, progress=False)


# --- writes: atomic, idempotent, byte-identical ------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rerun_is_a_noop_and_force_is_byte_identical(two_months, tmp_path):
    cfg = make_config([str(p) for p in two_months], tmp_path / "s.zarr")
    first = run_ingest(cfg, progress=False)
    before = _tree_bytes(first.path)
    again = run_ingest(cfg, progress=False)
    assert again.skipped
    forced = run_ingest(cfg, progress=False, force=True)
    assert not forced.skipped and _tree_bytes(forced.path) == before
    # A changed config is not "up to date".
    changed = make_config([str(p) for p in two_months], tmp_path / "s.zarr", output={
        "path": str(tmp_path / "s.zarr"), "time_chunk": 8})
    assert not run_ingest(changed, progress=False).skipped


def test_provenance_attributes(two_months, tmp_path):
    cfg = make_config([str(p) for p in two_months], tmp_path / "s.zarr", attribution="credit line")
    ds = ingest(cfg)
    assert "era5_200001.nc" in ds.attrs["source_files"]
    assert "channels:" in ds.attrs["ingest_config"] and ds.attrs["forecast_version"]
    assert ds.attrs["attribution"] == "credit line" and ds.attrs["grid_type"] == "equiangular"
    assert ds.latitude.attrs["bounds"] == "latitude_bnds"


def test_killed_ingest_leaves_no_store_and_next_run_cleans_up(tmp_path):
    paths = write_cds_months(tmp_path / "raw", "2000-01-01", 12, variables=("msl",), nlat=91, nlon=180)
    out = tmp_path / "s.zarr"
    script = (
        "import sys\nfrom forecast.ingest.config import IngestConfig\n"
        "from forecast.ingest.pipeline import run_ingest\n"
        f"cfg = IngestConfig.model_validate({make_config([str(p) for p in paths], out).model_dump(mode='json')!r})\n"
        "cfg.output.time_chunk = 1\ncfg.scheduler = 'synchronous'\nrun_ingest(cfg, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".s.zarr.partial-*/msl/c")):
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert list(tmp_path.glob(".s.zarr.partial-*"))
    run_ingest(make_config([str(p) for p in paths], out), progress=False)
    assert out.exists() and not list(tmp_path.glob(".s.zarr.partial-*"))


def test_distributed_scheduler_gives_the_same_store(two_months, tmp_path):
    threads = ingest(make_config([str(p) for p in two_months], tmp_path / "t.zarr"))
    environ = dict(os.environ)
    dist = ingest(make_config([str(p) for p in two_months], tmp_path / "d.zarr", scheduler="distributed",
                              workers=2))
    xr.testing.assert_equal(threads.load(), dist.load())
    provenance = {"ingest_config", "ingest_fingerprint"}  # they record the scheduler, as they should
    assert {k: v for k, v in threads.attrs.items() if k not in provenance} == {
        k: v for k, v in dist.attrs.items() if k not in provenance}
    # dask's nanny sets OMP_NUM_THREADS=1 etc. for its workers; none of that may leak into this process
    assert dict(os.environ) == environ


def test_cli_reports_bad_input_without_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"sources: [{{paths: ['{tmp_path}/none-*.nc']}}]\nchannels: [{{variable: msl}}]\n"
        f"grid: {{nlat: 37, nlon: 72}}\noutput: {{path: {tmp_path}/s.zarr}}\n"
    )
    exe = shutil.which("forecast", path=str(Path(sys.executable).parent))
    res = subprocess.run([exe, "ingest", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 1
    assert "forecast ingest: error: source pattern" in res.stderr and "Traceback" not in res.stderr
    cfg.write_text(cfg.read_text() + "unknown_key: 1\n")
    res = subprocess.run([exe, "ingest", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 1 and "unknown_key" in res.stderr and "Extra inputs are not permitted" in res.stderr


def test_analytic_helper_is_smooth():
    f = analytic_field("msl", pd.date_range("2000", periods=2, freq="6h").values, np.array([0.0]), np.array([0.0]))
    assert f.shape == (2, 1, 1) and 99000 < f.min() < f.max() < 103000


def test_grib_and_map_libraries_share_a_process_and_exit_cleanly():
    # cfgrib's eccodes wheels and cartopy's pyproj each bundle PROJ; two copies in one process used to
    # abort at interpreter exit with "double free or corruption" (hence the eckitlib pin).
    code = ("import eccodes, cartopy.crs as ccrs\n"
            "from forecast.naturalearth import use_offline_cartopy\n"
            "use_offline_cartopy()\n"
            "print(eccodes.codes_get_api_version(), ccrs.Robinson().proj4_init)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
