"""Ingestion of the real ERA5 files in ../shared/era5 (skipped where they are absent)."""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numpy as np
import pytest
import xarray as xr

from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.ingest.config import IngestConfig
from forecast.ingest.pipeline import run_ingest

pytestmark = pytest.mark.era5


def config(out: Path, **tree) -> IngestConfig:
    base = {"output": {"path": str(out), "time_chunk": 4}, "stats": None}
    return IngestConfig.model_validate({**base, **tree})


def test_cds_netcdf_msl_vo850_to_gaussian_grid(era5_dir, tmp_path):
    cfg = config(
        tmp_path / "era5.zarr",
        sources=[{"paths": [str(era5_dir / "era5_msl_2.5deg_6h_*.nc"), str(era5_dir / "era5_vo850_*.nc")]}],
        channels=[{"variable": "msl"}, {"variable": "vo", "level": 850}],
        static=[
            {"name": "lsm", "variable": "lsm", "source": {"paths": [str(era5_dir / "samples/constants_5.625deg.nc")]}},
            {"name": "orography", "variable": "orography", "units": "m",
             "source": {"paths": [str(era5_dir / "samples/constants_5.625deg.nc")]}},
        ],
        grid={"type": "legendre-gauss", "nlat": 48, "nlon": 96},
        stats={"start": "2025-12-01T00:00", "end": "2026-01-24T18:00"},
    )
    result = run_ingest(cfg, progress=False)
    ds = xr.open_zarr(result.path)
    assert ds.sizes == {"time": 276, "latitude": 48, "longitude": 96, "channel": 2, "nv": 2}
    assert str(ds.time.values[0])[:13] == "2025-12-01T00" and str(ds.time.values[-1])[:13] == "2026-02-07T18"
    # Global means are conserved by the conservative remap: compare with the source at a few times.
    with xr.open_dataset(era5_dir / "era5_msl_2.5deg_6h_20251201-20260207.nc") as src:
        msl = src.msl.isel(valid_time=[0, 100, 275]).values.astype(np.float64)
        w = area_weights(src.latitude.values)
    src_mean = (msl * w[None, :, None]).mean((1, 2))
    gw = area_weights(ds.latitude.values)
    dst_mean = (ds.msl.isel(time=[0, 100, 275]).values.astype(np.float64) * gw[None, :, None]).mean((1, 2))
    np.testing.assert_allclose(dst_mean, src_mean, rtol=1e-6)
    assert 90_000 < float(ds.msl.min()) and float(ds.msl.max()) < 108_000
    assert 1e-5 < float(ds.stats_std.sel(channel="vo850")) < 1e-4
    assert float(ds.stats_mean.sel(channel="msl")) == pytest.approx(101_150, abs=300)
    lsm = ds.lsm.values
    assert lsm.min() >= 0 and lsm.max() <= 1
    assert 0.25 < float((lsm * gw[:, None]).mean()) < 0.36  # Earth's land fraction, ~0.29
    assert float(ds.orography.max()) > 3000  # Tibet / Antarctica survive the 5.625 deg -> 3.75 deg remap
    assert "Copernicus" not in ds.attrs.get("attribution", "")  # none configured here


def test_repo_era5_config_builds_store_with_credit(era5_dir, tmp_path):
    from forecast.config import load_config

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(IngestConfig, repo / "configs/ingest/era5.yaml", [
        f"sources.0.paths=[{era5_dir}/era5_msl_*.nc, {era5_dir}/era5_vo850_*.nc]",
        f"static.0.source.paths=[{era5_dir}/samples/constants_5.625deg.nc]",
        f"static.1.source.paths=[{era5_dir}/samples/constants_5.625deg.nc]",
        f"output.path={tmp_path}/era5.zarr",
    ])
    ds = xr.open_zarr(run_ingest(cfg, progress=False).path)
    assert ds.attrs["attribution"].startswith("Contains modified Copernicus Climate Change Service information")
    assert ds.attrs["stats_start"] == "2025-12-01T00:00" and ds.attrs["stats_end"] == "2026-01-17T18:00"
    with xr.open_dataset(era5_dir / "era5_vo850_2.5deg_6h_20251201-20260207.nc") as src:
        np.testing.assert_array_equal(ds.vo850.values, src.vo.isel(pressure_level=0).values)


def test_grib_ensemble_members(era5_dir, tmp_path):
    grib = str(era5_dir / "samples/era5-levels-members.grib")
    tree = dict(
        sources=[{"paths": [grib], "member": 3}],
        channels=[{"variable": "z", "level": 500}, {"variable": "t", "level": 850}],
        grid={"type": "equiangular", "nlat": 31, "nlon": 60},
        time={"step": "12h"},
        stats={"start": None, "end": None},
    )
    ds = xr.open_zarr(run_ingest(config(tmp_path / "g.zarr", **tree), progress=False).path)
    assert ds.sizes["time"] == 4 and ds.z500.shape == (4, 31, 60)
    raw = xr.open_dataset(grib, engine="cfgrib", backend_kwargs={"indexpath": ""})
    w_src, w_dst = area_weights(raw.latitude.values), area_weights(ds.latitude.values)
    src = (raw.z.sel(number=3, isobaricInhPa=500).values * w_src[None, :, None]).mean((1, 2))
    dst = (ds.z500.values.astype(np.float64) * w_dst[None, :, None]).mean((1, 2))
    np.testing.assert_allclose(dst, src, rtol=1e-6)
    assert 200 < float(ds.t850.min()) and float(ds.t850.max()) < 320
    tree["sources"] = [{"paths": [grib]}]
    with pytest.raises(InputError, match=r"era5-levels-members\.grib: holds 10 ensemble members .* set `member:`"):
        run_ingest(config(tmp_path / "h.zarr", **tree), progress=False)
    tree["time"] = {"step": "6h"}
    tree["sources"] = [{"paths": [grib], "member": 0}]
    expected = r"source step 12h near 2017-01-01T00:00 .* does not divide the configured step 6h"
    with pytest.raises(InputError, match=expected):
        run_ingest(config(tmp_path / "i.zarr", **tree), progress=False)


def test_gaussian_37_level_sample_with_transposed_dims(era5_dir, tmp_path):
    nc = str(era5_dir / "samples/era5_tl31_19590102T00.nc")
    tree = dict(
        sources=[{"paths": [nc]}],
        channels=[{"variable": "z", "level": 500}, {"variable": "t", "level": 850},
                  {"variable": "u", "level": 250}, {"variable": "q", "level": 700}],
        grid={"type": "legendre-gauss", "nlat": 32, "nlon": 64},
    )
    ds = xr.open_zarr(run_ingest(config(tmp_path / "tl31.zarr", **tree), progress=False).path)
    raw = xr.open_dataset(nc)
    # Same Gaussian grid in and out: the remap is the identity, only the axes are reordered.
    expected = raw.geopotential.sel(level=500).transpose("latitude", "longitude").values[::-1]
    np.testing.assert_array_equal(ds.z500.values[0], expected)
    assert "stats_mean" not in ds  # stats: null -> a store of initial conditions only
    assert 20 < float(ds.u250.max()) < 100


def test_weatherbench_zarr_source(era5_dir, tmp_path):
    # A WeatherBench2/ARCO-style store: long variable names, `time`, `level`, latitude ascending, no poles.
    with xr.open_dataset(era5_dir / "era5_msl_2.5deg_6h_20251201-20260207.nc") as src:
        wb = src.rename(valid_time="time", msl="mean_sea_level_pressure").drop_vars(["expver", "number"])
        wb = wb.isel(time=slice(0, 40)).sortby("latitude").load()
    # Zarr format 2 with Blosc, as the public WeatherBench2 and ARCO-ERA5 archives are.
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    wb.to_zarr(tmp_path / "wb2.zarr", zarr_format=2, consolidated=True,
               encoding={"mean_sea_level_pressure": {"compressors": (blosc,), "chunks": (8, 73, 144)}})
    tree = dict(sources=[{"paths": [str(tmp_path / "wb2.zarr")]}], channels=[{"variable": "msl"}],
                grid={"type": "equiangular", "nlat": 73, "nlon": 144})
    ds = xr.open_zarr(run_ingest(config(tmp_path / "o.zarr", **tree), progress=False).path)
    np.testing.assert_array_equal(ds.msl.values, wb.mean_sea_level_pressure.values[:, ::-1])
