"""Open raw sources lazily (CDS netCDF, GRIB through cfgrib, WeatherBench2/ARCO zarr) file by file.

Each file is opened on its own so that any later error can name it; data stay lazy (dask) with
chunks that follow the file's own storage layout, so a compressed chunk is decompressed once, and a
selection of variables, levels and times reads only the chunks that hold it. Zarr stores may be URLs
(``gs://``, ``s3://``, ``https://``, ``memory://``; see :mod:`forecast.remote`).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from forecast.errors import InputError
from forecast.ingest.config import SourceConfig
from forecast.ingest.conventions import normalise
from forecast.ingest.timeaxis import prepare_time, require_datetime
from forecast.remote import expand_url, is_url, metadata_digest, open_zarr_url, storage_options_for
from forecast.schema import TIME, VARIABLE_ALIASES

__all__ = ["SourceFile", "detect_format", "expand_paths", "open_source", "open_sources"]

_GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5")


@dataclass
class SourceFile:
    """One opened source: its path (or URL), its normalised lazy dataset and the times it holds."""

    path: Path | str  # a str only for a URL
    dataset: xr.Dataset
    nbytes: int  # size on disk, for provenance and throughput; 0 at a URL (an archive there is not listed)
    times: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[ns]"))
    # What a rebuilt store must match: path, size and modification time; at a URL, the metadata's digest.
    identity: str = ""

    @property
    def variables(self) -> list[str]:
        return [str(v) for v in self.dataset.data_vars]


def expand_paths(patterns: list[str], storage_options: dict[str, Any] | None = None) -> list[Path | str]:
    """Glob patterns -> sorted unique paths (URLs stay strings); a pattern that matches nothing is an error."""
    paths: list[Path | str] = []
    for pattern in patterns:
        if is_url(pattern):
            paths.extend(expand_url(pattern, storage_options))
            continue
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise InputError(f"source pattern {pattern!r} matches no file")
        paths.extend(Path(m) for m in matches)
    return sorted(set(paths), key=str)


def detect_format(path: Path | str) -> str:
    if is_url(path):
        # Archive names vary (`...chunk-1.zarr-v3`, `....zarr/`); only zarr is read from a URL.
        if ".zarr" in str(path).rstrip("/").rsplit("/", 1)[-1].lower():
            return "zarr"
        raise InputError(f"{path}: only zarr stores are read from URLs; set `format: zarr` if it is one, "
                         "or download netCDF/GRIB files first")
    name = path.name.lower()
    if path.is_dir() or name.endswith(".zarr") or name.endswith(".zarr/"):
        return "zarr"
    if name.endswith(_GRIB_SUFFIXES):
        return "grib"
    if name.endswith(_NETCDF_SUFFIXES):
        return "netcdf"
    raise InputError(f"{path}: cannot tell its format from the name; set `format:` in the source config")


def _disk_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


# HDF5 keeps each open variable's last decompressed chunks in a per-variable cache (64 MiB by
# default). Ingestion holds every source file open and reads each chunk about once, so those caches
# would keep the whole archive in memory (peak memory growing with the number of files); 1 MiB each
# keeps it bounded at the price of decompressing a chunk twice where two dask blocks share it.
NETCDF_CHUNK_CACHE_BYTES = 1 << 20


# Arrays of a zarr store kept whatever the variables asked for: coordinates that normalisation reads.
_ZARR_COORDINATES = {"time", "valid_time", "step", "expver", "number", "member", "realization", "pressure_level",
                     "isobaricInhPa", "level", "plev", "lev", "latitude", "lat", "longitude", "lon"}


def _unwanted_arrays(path: Path | str, storage_options: dict[str, Any] | None, variables: set[str],
                     rename: dict[str, str] | None) -> list[str]:
    """Arrays of the zarr store at ``path`` that hold none of ``variables`` (ERA5 short names), to leave
    unopened: an archive holds hundreds (ARCO-ERA5's, each in up to a million chunks), and xarray would
    build a dask array of every one. Read from the (consolidated) metadata only."""
    opts = storage_options_for(str(path), storage_options) if is_url(path) else None
    group = zarr.open_group(str(path), mode="r", storage_options=opts)
    dims: dict[str, tuple[str, ...]] = {}
    for name, array in group.arrays():
        names = getattr(array.metadata, "dimension_names", None) or array.attrs.get("_ARRAY_DIMENSIONS") or ()
        dims[name] = tuple(names)
    used_as_dims = {d for names in dims.values() for d in names}
    aliases = {**VARIABLE_ALIASES, **(rename or {})}
    return sorted(n for n in dims if n not in used_as_dims and n not in _ZARR_COORDINATES
                  and n not in variables and aliases.get(n, n) not in variables)


def _open_raw(path: Path | str, fmt: str, decode_times: bool = True,
              storage_options: dict[str, Any] | None = None, variables: set[str] | None = None,
              rename: dict[str, str] | None = None) -> xr.Dataset:
    """``path`` opened lazily; of a zarr store only the arrays of ``variables`` (ERA5 short names; None: all)."""
    if fmt == "zarr":
        drop = _unwanted_arrays(path, storage_options, variables, rename) if variables is not None else None
        if is_url(path):
            return open_zarr_url(str(path), storage_options, chunks={}, decode_times=decode_times,
                                 drop_variables=drop)
        return xr.open_zarr(path, chunks={}, consolidated=None, decode_times=decode_times, drop_variables=drop)
    if is_url(path):
        raise InputError(f"{path}: only zarr stores are read from URLs, not {fmt}")
    if fmt == "netcdf":
        import netCDF4

        netCDF4.set_chunk_cache(NETCDF_CHUNK_CACHE_BYTES, 521, 0.75)
        # chunks={} keeps the file's own chunking: a CDS file compressed as one block is read once.
        return xr.open_dataset(path, engine="netcdf4", chunks={}, cache=False, decode_times=decode_times)
    if fmt == "grib":
        # indexpath="" keeps cfgrib from writing .idx files next to (possibly read-only) data.
        return xr.open_dataset(
            path,
            engine="cfgrib",
            chunks={},
            cache=False,
            backend_kwargs={"indexpath": "", "errors": "raise"},
        )
    raise InputError(f"{path}: unknown format {fmt!r}")


def _identity(path: Path | str, nbytes: int, storage_options: dict[str, Any] | None) -> str:
    if is_url(path):
        return f"{path}|{metadata_digest(str(path), storage_options)}"
    return f"{Path(path).resolve()}|{nbytes}|{Path(path).stat().st_mtime_ns}"


def open_source(path: Path | str, fmt: str = "auto", member: int | None = None,
                rename: dict[str, str] | None = None, rename_dims: dict[str, str] | None = None,
                time_units: str | None = None, storage_options: dict[str, Any] | None = None,
                variables: set[str] | None = None) -> SourceFile:
    """Open and normalise one file; unreadable or truncated files raise :class:`InputError`.

    ``variables`` (ERA5 short names) limits what is opened of a zarr store (an archive holds hundreds).

    ``rename_dims`` and ``time_units`` give a way in to sources with other dimension names or an integer
    time axis without CF units (:func:`forecast.ingest.timeaxis.prepare_time`)."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    try:
        # Given units replace the file's: its own may be what does not decode.
        raw = _open_raw(path, fmt, decode_times=time_units is None, storage_options=storage_options,
                        variables=variables, rename=rename)
    except InputError:
        raise
    except Exception as exc:  # netCDF4/HDF5/eccodes raise many types for a damaged file
        if "decode" in str(exc) and "time" in str(exc):
            raise InputError(f"{path}: its time axis is not CF-decodable ({exc}); set `time_units:` in the source "
                             "config, e.g. time_units: 'hours since 1940-01-01'") from exc
        raise InputError(
            f"{path}: cannot be read as {fmt} ({type(exc).__name__}: {exc}); the file is unreadable "
            "or truncated - download it again"
        ) from exc
    raw = prepare_time(raw, str(path), rename_dims, time_units)
    # A variable asked for by the source's own name keeps it (WeatherBench2's geopotential_at_surface,
    # which would otherwise become z like geopotential).
    own_names = {v: v for v in variables or () if v in raw.data_vars}
    ds = normalise(raw, str(path), member=member, rename={**own_names, **(rename or {})})
    require_datetime(ds, str(path))
    times = ds[TIME].values if TIME in ds.dims else np.array([], dtype="datetime64[ns]")
    nbytes = 0 if is_url(path) else _disk_size(Path(path))
    return SourceFile(path=path, dataset=ds, nbytes=nbytes, times=times,
                      identity=_identity(path, nbytes, storage_options))


def open_sources(config: SourceConfig, variables: set[str] | None = None) -> list[SourceFile]:
    """Open every file matched by ``config.paths`` (of zarr stores only ``variables``, when given)."""
    return [
        open_source(p, config.format, member=config.member, rename=config.rename, rename_dims=config.rename_dims,
                    time_units=config.time_units, storage_options=config.storage_options, variables=variables)
        for p in expand_paths(config.paths, config.storage_options)
    ]
