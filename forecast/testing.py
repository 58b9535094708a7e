"""Small ERA5-style datasets in the Climate Data Store's layouts, for tests, docs and notebooks.

The fields are analytic (smooth functions of latitude, longitude and time) so that tests can
compute expected values by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["cds_dataset", "linear_package", "tiny_store", "weatherbench_store", "write_cds_months"]

_ATTRS = {
    "z": {"units": "m**2 s**-2", "long_name": "Geopotential", "standard_name": "geopotential"},
    "u": {"units": "m s**-1", "long_name": "U component of wind", "standard_name": "eastward_wind"},
    "msl": {"units": "Pa", "long_name": "Mean sea level pressure",
            "standard_name": "air_pressure_at_mean_sea_level"},
    "t2m": {"units": "K", "long_name": "2 metre temperature"},
}


def analytic_field(name: str, times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth field ``(time, lat, lon)`` in physical units with a travelling wave and a trend."""
    hours = (times - np.datetime64("2000-01-01T00")) / np.timedelta64(1, "h")
    phi = np.deg2rad(lat)[None, :, None]
    lam = np.deg2rad(lon)[None, None, :]
    t = hours[:, None, None].astype(np.float64)
    wave = np.cos(phi) ** 2 * np.cos(3 * lam - 2 * np.pi * t / 120.0)
    base = {"z": (54000.0, 3000.0), "u": (10.0, 15.0), "msl": (101000.0, 1500.0), "t2m": (280.0, 20.0)}[name]
    return (base[0] + base[1] * (np.sin(phi) * 0.5 + wave)).astype(np.float32)


def cds_dataset(
    start: str,
    periods: int,
    variables: tuple[str, ...] = ("msl",),
    level: float | None = None,
    nlat: int = 37,
    nlon: int = 72,
    freq: str = "6h",
    layout: str = "new",
) -> xr.Dataset:
    """An ERA5 dataset as the CDS writes it.

    ``layout="new"`` is today's CDS netCDF (``valid_time``, ``pressure_level``, ``expver`` and
    ``number`` coordinates); ``"old"`` is the pre-2024 one (``time``, ``level``). Grid: regular,
    latitude 90 -> -90 with poles, longitude from 0.
    """
    times = pd.date_range(start, periods=periods, freq=freq).values
    lat = np.linspace(90.0, -90.0, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    tname = "valid_time" if layout == "new" else "time"
    lname = "pressure_level" if layout == "new" else "level"
    data = {}
    for name in variables:
        values = analytic_field(name, times, lat, lon)
        dims = [tname, "latitude", "longitude"]
        if level is not None and name in ("z", "u"):
            values = values[:, None]
            dims = [tname, lname, "latitude", "longitude"]
        data[name] = xr.Variable(dims, values, attrs=dict(_ATTRS[name]))
    coords = {tname: times, "latitude": lat, "longitude": lon}
    if level is not None:
        coords[lname] = np.array([float(level)])
    ds = xr.Dataset(data, coords=coords, attrs={"Conventions": "CF-1.7", "institution": "test"})
    ds["latitude"].attrs = {"units": "degrees_north"}
    ds["longitude"].attrs = {"units": "degrees_east"}
    if layout == "new":
        ds = ds.assign_coords(expver=(tname, np.array(["0001"] * periods)), number=0)
    return ds


def write_cds_months(folder: Path, start: str, months: int, **kwargs) -> list[Path]:
    """Write ``months`` monthly files ``era5_YYYYMM.nc`` of :func:`cds_dataset` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    first = pd.Timestamp(start)
    freq = kwargs.pop("freq", "6h")
    for m in range(months):
        t0 = first + pd.DateOffset(months=m)
        t1 = t0 + pd.DateOffset(months=1)
        periods = int((t1 - t0) / pd.Timedelta(freq))
        ds = cds_dataset(str(t0), periods, freq=freq, **kwargs)
        path = folder / f"era5_{t0:%Y%m}.nc"
        ds.to_netcdf(path, engine="netcdf4")
        paths.append(path)
    return paths


# WeatherBench2 / ARCO-ERA5 long variable names of the analytic fields, and the level ones.
_WB2_NAMES = {"z": "geopotential", "u": "u_component_of_wind", "msl": "mean_sea_level_pressure",
              "t2m": "2m_temperature"}


def weatherbench_store(path: Path, start: str = "2000-01-01", periods: int = 360,
                       variables: tuple[str, ...] = ("z", "u", "msl", "t2m"), levels: tuple[int, ...] = (500, 850),
                       nlat: int = 37, nlon: int = 72, latitude_ascending: bool = True, time_chunk: int = 4) -> Path:
    """Write a zarr store laid out as WeatherBench2's and ARCO-ERA5's are, and return ``path``.

    Zarr format 2 with Blosc (lz4, byte shuffle) like the public archives, consolidated metadata, long
    variable names (``geopotential``, ``mean_sea_level_pressure``...) over ``(time, level, latitude,
    longitude)`` (``level`` in hPa as integers; single-level variables lack it), 6-hourly ``time``, latitude
    with poles ascending (WeatherBench2) or descending (``latitude_ascending=False``, ARCO-ERA5), and the
    invariants ``land_sea_mask`` and ``geopotential_at_surface`` over ``(latitude, longitude)``. Chunks hold
    ``time_chunk`` times of one level of the whole grid, so a selection of one variable, one level and a few
    times reads only the chunks that hold them. Values are :func:`analytic_field` plus ``level / 10`` (units
    of the variable) at each level, so levels differ.
    """
    import numcodecs

    times = pd.date_range(start, periods=periods, freq="6h").values
    lat = np.linspace(-90.0, 90.0, nlat) if latitude_ascending else np.linspace(90.0, -90.0, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    data = {}
    for name in variables:
        values = analytic_field(name, times, lat, lon)
        attrs = {"units": _ATTRS[name]["units"], "long_name": _ATTRS[name]["long_name"]}
        if name in ("z", "u"):
            stacked = np.stack([values + np.float32(lev / 10.0) for lev in levels], axis=1)
            data[_WB2_NAMES[name]] = xr.Variable(("time", "level", "latitude", "longitude"), stacked, attrs)
        else:
            data[_WB2_NAMES[name]] = xr.Variable(("time", "latitude", "longitude"), values, attrs)
    from forecast.naturalearth import land_fraction

    land = land_fraction(lat, lon, supersample=3).astype(np.float32)
    data["land_sea_mask"] = xr.Variable(("latitude", "longitude"), land, {"units": "1"})
    # Orography: 2 km over land, a north-south slope to tell the latitude order by.
    height = land * 2000.0 + (lat[:, None] + 90.0) * np.ones_like(lon)[None, :]
    data["geopotential_at_surface"] = xr.Variable(("latitude", "longitude"), (9.80665 * height).astype(np.float32),
                                                  {"units": "m**2 s**-2"})
    ds = xr.Dataset(data, coords={"time": times, "level": np.array(levels, dtype=np.int64), "latitude": lat,
                                  "longitude": lon})
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    encoding = {v: {"compressors": (blosc,), "chunks": tuple(
        time_chunk if d == "time" else 1 if d == "level" else ds.sizes[d] for d in ds[v].dims)} for v in ds.data_vars}
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True, encoding=encoding)
    return path


def tiny_store(root: Path, months: int = 2, nlat: int = 16, nlon: int = 32, grid: str = "legendre-gauss",
               attribution: str | None = None, stats: bool = True) -> Path:
    """Ingest :func:`write_cds_months` files (``z500``, ``msl``) into a small training store under ``root``.

    Statistics cover the first month; ``stats=False`` writes a store of initial conditions only.
    """
    from forecast.ingest.config import IngestConfig
    from forecast.ingest.pipeline import run_ingest

    files = write_cds_months(root / "raw", "2000-01-01", months, variables=("msl", "z"), level=500)
    tree = {
        "sources": [{"paths": [str(p) for p in files]}],
        "channels": [{"variable": "z", "level": 500}, {"variable": "msl"}],
        "grid": {"type": grid, "nlat": nlat, "nlon": nlon},
        "stats": {"start": "2000-01-01", "end": "2000-01-31T18:00"} if stats else None,
        "output": {"path": str(root / "store.zarr")},
    }
    if attribution:
        tree["attribution"] = attribution
    return run_ingest(IngestConfig.model_validate(tree), progress=False).path


def linear_package(path: Path, store_path: Path, sources: dict[str, str], rates: dict[str, float]) -> Path:
    """A model package of a known linear model, for tests with closed-form answers.

    In normalised units channel ``c`` steps as ``x_c(t + dt) = x_c(t) + rates[c] * u(t)`` where ``u`` is the
    network input ``sources[c]``: the channel itself (``x_c(n) = (1 + r) ** n x_c(0)``), another channel, or a
    forcing (``cos_zenith``, ``sin_year``, ``cos_year``) evaluated at the step's start time. It is a
    persistence network behind the residual forecaster, with ``tendency_std = rates * std``.
    """
    import dataclasses

    from forecast.data.features import FORCING_NAMES, POSITION_NAMES
    from forecast.data.store import open_training_store
    from forecast.models import build_model
    from forecast.models.config import PersistenceConfig
    from forecast.train.package import save_package

    store = open_training_store(store_path)
    inputs = [*store.channels, *store.static_names, *POSITION_NAMES, *FORCING_NAMES]
    config = PersistenceConfig(prognostic_indices=[inputs.index(sources[c]) for c in store.channels])
    store = dataclasses.replace(store, tendency_std=np.array([rates[c] for c in store.channels]) * store.std)
    net = build_model(config, store.grid_type, *store.shape, len(inputs), len(store.channels))
    return save_package(path, net, config, True, store, "name: linear\n", info={"name": path.stem})


def write_land_sea_mask(path: Path, nlat: int = 37, nlon: int = 72) -> Path:
    """An ERA5 invariant file (``lsm``, one ``valid_time``) with the Natural Earth land fraction on a regular grid."""
    from forecast.naturalearth import land_fraction

    lat = np.linspace(90.0, -90.0, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    lsm = land_fraction(lat, lon, supersample=3).astype(np.float32)[None]
    ds = xr.Dataset({"lsm": (["valid_time", "latitude", "longitude"], lsm,
                             {"units": "(0 - 1)", "long_name": "Land-sea mask", "standard_name": "land_binary_mask"})},
                    coords={"valid_time": [np.datetime64("2000-01-01T00", "ns")], "latitude": lat, "longitude": lon})
    ds["latitude"].attrs = {"units": "degrees_north"}
    ds["longitude"].attrs = {"units": "degrees_east"}
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="netcdf4")
    return path


def evaluation_store(root: Path, months: int = 2, nlat: int = 19, nlon: int = 36) -> Path:
    """A small truth store through the real ``forecast ingest``: channels ``z500`` and ``msl`` (analytic fields,
    6-hourly from 2000-01-01), static ``lsm``, statistics (and so the climatology period) over January."""
    from forecast.ingest.config import IngestConfig
    from forecast.ingest.pipeline import run_ingest

    files = write_cds_months(root / "raw", "2000-01-01", months, variables=("msl", "z"), level=500)
    lsm = write_land_sea_mask(root / "raw" / "invariant.nc")
    cfg = IngestConfig.model_validate({
        "sources": [{"paths": [str(p) for p in files]}],
        "channels": [{"variable": "z", "level": 500}, {"variable": "msl"}],
        "static": [{"name": "lsm", "variable": "lsm", "source": {"paths": [str(lsm)]}}],
        "grid": {"type": "equiangular", "nlat": nlat, "nlon": nlon},
        "stats": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
        "output": {"path": str(root / "store.zarr")},
    })
    return run_ingest(cfg, progress=False).path


def noisy_product(store: Path, path: Path, init_times: np.ndarray, n_leads: int, members: int | None = None,
                  noise: float = 0.0, seed: int = 0, naming: str = "forecast", name: str = "noisy-truth",
                  lead_chunk: int = 1) -> Path:
    """A forecast product (:class:`forecast.products.ProductWriter`) that is the truth plus noise: lead ``k``
    of member ``m`` is the store's field at the valid time plus Gaussian noise of standard deviation
    ``noise * std(channel) * sqrt(k)``. ``members=None`` writes a deterministic product (no member axis)."""
    from forecast.products.writer import ProductSpec, ProductWriter, lead_timedeltas

    truth = xr.open_zarr(store)
    channels = list(truth.attrs["channels"])
    times = truth["time"].values
    step = str(truth.attrs.get("time_step", "6h"))
    spec = ProductSpec(
        init_times=np.asarray(init_times, dtype="datetime64[ns]"), lead_times=lead_timedeltas(n_leads, step, False),
        latitudes=truth["latitude"].values, longitudes=truth["longitude"].values, channels=channels,
        channel_attrs=[dict(truth[c].attrs) for c in channels], members=members, naming=naming,  # type: ignore[arg-type]
        attrs={"title": f"{name}: truth plus noise (forecast.testing)", "Conventions": "CF-1.8",
               "source": "forecast.testing.noisy_product", "history": "synthetic test product"},
        lead_chunk=lead_chunk,
    )
    std = np.array([float(truth[c].std()) for c in channels])[None, None, :, None, None]
    rng = np.random.default_rng(seed)
    m = members or 1
    with ProductWriter(path, spec, overwrite=True) as writer:
        for i, t0 in enumerate(spec.init_times):
            i0 = int(np.searchsorted(times, t0))
            fields = np.stack([truth[c].isel(time=slice(i0 + 1, i0 + n_leads + 1)).values for c in channels], 1)
            for k in range(n_leads):
                state = np.broadcast_to(fields[k][None, None], (1, m, *fields.shape[1:]))
                if noise:
                    state = state + rng.standard_normal(state.shape) * noise * std * np.sqrt(k + 1)
                writer.write(slice(i, i + 1), k, state)
    return Path(path)
