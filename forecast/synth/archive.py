"""Write the synthetic archive as the Climate Data Store delivers ERA5: monthly netCDF files.

Layout under ``out_dir``::

    pressure_levels/era5_synth_pl_YYYYMM.nc   z, u, v, vo  (valid_time, pressure_level, latitude, longitude)
    single_levels/era5_synth_sl_YYYYMM.nc     msl          (valid_time, latitude, longitude)
    invariant/era5_synth_invariant.nc         lsm, z       (valid_time = 1, latitude, longitude)

Each file copies the structure of a CDS netCDF (cfgrib's GRIB_* attributes, ``expver`` and
``number`` coordinates, float32 data with shuffle + zlib, NaN fill values) while its global
attributes say the data are synthetic and how they were made. Files appear atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm  # the text bar: tqdm.auto needs ipywidgets in notebooks

import forecast
from forecast.config import dump_config
from forecast.grids import Grid
from forecast.schema import LAT, LON, VALID_TIME
from forecast.storage import atomic_file
from forecast.synth.config import SynthConfig
from forecast.synth.simulate import OUTPUT_INTERVAL, Snapshot, SynthSimulation

__all__ = ["MANIFEST", "PRESSURE_LEVEL", "SynthConfig", "cds_dataset", "grib_pack", "write_archive"]

MANIFEST = "MANIFEST.json"

PRESSURE_LEVEL = "pressure_level"  # the CDS's name for the level dimension (hPa)

# What cfgrib writes for each parameter: (paramId, name, units, cfName / standard_name).
_PARAMS: dict[str, tuple[int, str, str, str]] = {
    "z": (129, "Geopotential", "m**2 s**-2", "geopotential"),
    "u": (131, "U component of wind", "m s**-1", "eastward_wind"),
    "v": (132, "V component of wind", "m s**-1", "northward_wind"),
    "vo": (138, "Vorticity (relative)", "s**-1", "atmosphere_relative_vorticity"),
    "msl": (151, "Mean sea level pressure", "Pa", "air_pressure_at_mean_sea_level"),
    "lsm": (172, "Land-sea mask", "(0 - 1)", "land_binary_mask"),
}
_COORD_ATTRS = {
    VALID_TIME: {"long_name": "time", "standard_name": "time"},
    PRESSURE_LEVEL: {
        "long_name": "pressure",
        "positive": "down",
        "standard_name": "air_pressure",
        "stored_direction": "decreasing",
        "units": "hPa",
    },
    LAT: {
        "long_name": "latitude",
        "standard_name": "latitude",
        "stored_direction": "decreasing",
        "units": "degrees_north",
    },
    LON: {"long_name": "longitude", "standard_name": "longitude", "units": "degrees_east"},
    "number": {"long_name": "ensemble member numerical id", "standard_name": "realization", "units": "1"},
}


def grib_pack(values: np.ndarray, bits: int, field_axes: int = 2) -> np.ndarray:
    """Quantise as GRIB simple packing: per field (the last ``field_axes`` axes), values become
    ``R + k 2**E`` with integer ``k`` and the smallest ``E`` for which ``bits`` bits span the field;
    ``R`` is aligned to ``2**E`` so the float32 results end in zero bits, which shuffle + zlib then
    compress (like CDS files decoded from 16-bit GRIB). Returns float32, same shape; the error is at
    most half a step."""
    x = np.asarray(values, dtype=np.float64)
    axes = tuple(range(x.ndim - field_axes, x.ndim))
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    exponent = np.ceil(np.log2(np.maximum(span, 1e-30) / (2.0**bits - 1)))
    step = np.exp2(exponent)
    ref = np.floor(lo / step) * step
    return (ref + np.round((x - ref) / step) * step).astype(np.float32)


def _grib_attrs(name: str, grid: Grid, level_type: str) -> dict[str, object]:
    param_id, long_name, units, cf_name = _PARAMS[name]
    lat, lon = grid.latitudes, grid.longitudes
    attrs: dict[str, object] = {
        "GRIB_paramId": param_id,
        "GRIB_dataType": "an",
        "GRIB_numberOfPoints": grid.nlat * grid.nlon,
        "GRIB_typeOfLevel": level_type,
        "GRIB_stepUnits": 1,
        "GRIB_stepType": "instant",
        "GRIB_gridType": "regular_ll",
        "GRIB_NV": 0,
        "GRIB_Nx": grid.nlon,
        "GRIB_Ny": grid.nlat,
        "GRIB_cfName": cf_name,
        "GRIB_cfVarName": name,
        "GRIB_gridDefinitionDescription": "Latitude/Longitude Grid",
        "GRIB_iDirectionIncrementInDegrees": float(lon[1] - lon[0]),
        "GRIB_iScansNegatively": 0,
        "GRIB_jDirectionIncrementInDegrees": float(lat[0] - lat[1]),
        "GRIB_jPointsAreConsecutive": 0,
        "GRIB_jScansPositively": 0,
        "GRIB_latitudeOfFirstGridPointInDegrees": float(lat[0]),
        "GRIB_latitudeOfLastGridPointInDegrees": float(lat[-1]),
        "GRIB_longitudeOfFirstGridPointInDegrees": float(lon[0]),
        "GRIB_longitudeOfLastGridPointInDegrees": float(lon[-1]),
        "GRIB_missingValue": 3.4028234663852886e38,
        "GRIB_name": long_name,
        "GRIB_shortName": name,
        "GRIB_totalNumber": 0,
        "GRIB_units": units,
        "GRIB_uvRelativeToGrid": 0,
        "long_name": long_name,
        "units": units,
        "standard_name": cf_name,
    }
    if level_type == "surface":
        attrs["GRIB_surface"] = 0.0
    return dict(sorted(attrs.items()))  # cfgrib's files list attributes alphabetically


def cds_dataset(
    fields: dict[str, np.ndarray],
    times: np.ndarray,
    grid: Grid,
    level: float | None,
    global_attrs: dict[str, object],
    level_type: str | None = None,
) -> xr.Dataset:
    """A Dataset laid out like a CDS netCDF from float32 ``fields`` ``(ntime, nlat, nlon)``.

    ``times`` are the valid times (``datetime64``); ``level`` (hPa) adds a ``pressure_level``
    dimension after ``valid_time``, ``None`` makes surface fields. ``level_type`` overrides the
    GRIB type of level (``isobaricInhPa`` or ``surface`` by default).
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    level_type = level_type or ("surface" if level is None else "isobaricInhPa")
    dims: tuple[str, ...] = (
        (VALID_TIME, LAT, LON) if level is None else (VALID_TIME, PRESSURE_LEVEL, LAT, LON)
    )
    # Coordinates in the CDS files' (alphabetical) order, after the data variables.
    coords: dict[str, object] = {
        "expver": (VALID_TIME, np.full(times.shape, "0001", dtype="<U4")),
        LAT: (LAT, grid.latitudes, _COORD_ATTRS[LAT]),
        LON: (LON, grid.longitudes, _COORD_ATTRS[LON]),
        "number": ((), np.int64(0), _COORD_ATTRS["number"]),
    }
    if level is not None:
        coords[PRESSURE_LEVEL] = (
            PRESSURE_LEVEL,
            np.array([level], dtype=np.float64),
            _COORD_ATTRS[PRESSURE_LEVEL],
        )
    coords[VALID_TIME] = (VALID_TIME, times, _COORD_ATTRS[VALID_TIME])
    data_vars = {}
    for name, values in fields.items():
        values = np.asarray(values, dtype=np.float32)
        if level is not None:
            values = values[:, None]
        data_vars[name] = (dims, values, _grib_attrs(name, grid, level_type))
    return xr.Dataset(data_vars, coords=coords, attrs=global_attrs)


def _encoding(ds: xr.Dataset, complevel: int) -> dict[str, dict[str, object]]:
    t0 = ds[VALID_TIME].values[0].astype("datetime64[s]").item().strftime("%Y-%m-%d %H:%M:%S")
    enc: dict[str, dict[str, object]] = {
        VALID_TIME: {"units": f"hours since {t0}", "calendar": "proleptic_gregorian", "dtype": "int64"},
    }
    for name, var in ds.data_vars.items():
        enc[name] = {
            "dtype": "float32",
            "zlib": complevel > 0,
            "complevel": complevel,
            "shuffle": True,
            "chunksizes": var.shape,
            "_FillValue": np.float32(np.nan),
        }
    return enc


def _write_atomic(ds: xr.Dataset, path: Path, complevel: int) -> Path:
    with atomic_file(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds, complevel))
    return path


def _write_manifest(out_dir: Path, config: SynthConfig, written: list[Path]) -> Path:
    # The manifest is written last: its presence says the archive is complete (make depends on it).
    # Files of an earlier, longer archive in the same folder would be picked up by ingest globs.
    keep = {p.resolve() for p in written}
    for old in out_dir.glob("*/era5_synth_*.nc"):
        if old.resolve() not in keep:
            old.unlink()
    manifest = {
        "title": "synthetic ERA5-like archive written by `forecast synth` (not ERA5)",
        "forecast_version": forecast.__version__,
        "config": dump_config(config),
        "files": [{"path": str(p.relative_to(out_dir)), "bytes": p.stat().st_size} for p in written],
    }
    path = out_dir / MANIFEST
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def _global_attrs(config: SynthConfig, what: str) -> dict[str, object]:
    mc = config.model
    return {
        "GRIB_centre": "ecmf",
        "GRIB_centreDescription": "European Centre for Medium-Range Weather Forecasts",
        "GRIB_subCentre": 0,
        "Conventions": "CF-1.7",
        "institution": "forecast package (synthetic data, not produced by ECMWF)",
        "title": f"Synthetic ERA5-like {what} (NOT ERA5): forced-dissipative shallow-water model",
        "source": (
            f"forecast {forecast.__version__} synth: T{mc.truncation} spectral shallow-water model on a "
            f"{mc.nlat} x {mc.nlon} Gaussian grid (torch-harmonics), seasonal Newtonian relaxation, "
            f"orography, Natural Earth 110m land-sea mask. Config:\n{dump_config(config)}"
        ),
        "history": (
            f"forecast {forecast.__version__} synth (seed {config.seed}): laid out as a CDS ERA5 "
            f"netCDF (GRIB to CDM+CF via cfgrib conventions)"
        ),
        "comment": "Generated for offline development and tests; values follow the model's climate, "
        "not the observed weather of the dates they carry.",
    }


@contextmanager
def _single_thread() -> Iterator[None]:
    # One thread is as fast at T31 and makes the chaotic run independent of the core count.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _month_key(time: np.datetime64) -> str:
    return str(np.datetime64(time, "M")).replace("-", "")


def write_archive(
    config: SynthConfig, out_dir: str | Path, progress: bool = True, stepper: str = "fused"
) -> list[Path]:
    """Simulate and write the archive of ``config`` under ``out_dir``; returns the files written
    (invariants first, then the pressure-level and single-level file of each month in order).
    ``stepper`` is the implementation of the model's time step (:data:`~forecast.synth.simulate.STEPPERS`).

    The model integrates on the main thread while a second thread synthesises, packs and writes
    the previous month (netCDF compression releases the GIL), so writing costs little wall time.
    Memory stays bounded: at most two months of spectral states are held. Same config (seed
    included) => identical values.
    """
    out_dir = Path(out_dir)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # incomplete until the new manifest is written
    oc = config.output
    grid = Grid("equiangular", oc.nlat, oc.nlon)
    with _single_thread(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer") as pool:
        sim = SynthSimulation(config, stepper=stepper)
        inv = sim.invariants()
        inv_ds = cds_dataset(
            {k: v[None] for k, v in inv.items()},
            np.array([sim.write_start]),
            grid,
            None,
            _global_attrs(config, "invariant fields"),
        )
        written = [_write_atomic(inv_ds, out_dir / "invariant" / "era5_synth_invariant.nc", oc.complevel)]

        def write_month(month: list[Snapshot]) -> list[Path]:
            key = _month_key(month[0].time)
            fields = sim.to_era5(torch.stack([s.spec for s in month]))
            if oc.packing_bits is not None:
                fields = {k: grib_pack(v, oc.packing_bits) for k, v in fields.items()}
            times = np.array([s.time for s in month])
            pl = {k: fields[k] for k in ("z", "u", "v", "vo")}
            pl_ds = cds_dataset(
                pl, times, grid, oc.pressure_level, _global_attrs(config, "pressure-level fields")
            )
            sl_ds = cds_dataset(
                {"msl": fields["msl"]}, times, grid, None, _global_attrs(config, "single-level fields")
            )
            return [
                _write_atomic(pl_ds, out_dir / "pressure_levels" / f"era5_synth_pl_{key}.nc", oc.complevel),
                _write_atomic(sl_ds, out_dir / "single_levels" / f"era5_synth_sl_{key}.nc", oc.complevel),
            ]

        days = config.spin_up_days + (sim.end - sim.start) / np.timedelta64(1, "D")
        step_days = OUTPUT_INTERVAL / np.timedelta64(1, "D")
        pending: Future[list[Path]] | None = None
        month: list[Snapshot] = []
        with tqdm(total=round(days, 2), unit="day", desc="forecast synth", disable=not progress) as bar:
            for snap in sim.run(on_window=lambda _t: bar.update(step_days)):
                if month and _month_key(snap.time) != _month_key(month[0].time):
                    if pending is not None:
                        written += pending.result()  # at most one month in flight: bounded memory
                    pending = pool.submit(write_month, month)
                    bar.set_postfix_str(_month_key(month[0].time))
                    month = []
                month.append(snap)
            if pending is not None:
                written += pending.result()
            written += write_month(month)
            bar.update(bar.total - bar.n)
    _write_manifest(out_dir, config, written)
    return written
