"""The ingestion pipeline: sources -> normalised channels -> model grid -> validated zarr store.

``build_dataset`` assembles the lazy (dask) dataset and refuses bad input before any data is read;
``run_ingest`` streams it to a zarr store chunk by chunk (so memory does not grow with the number
of time steps), checks for NaNs in the same pass, adds normalisation statistics over the training
period and renames the store into place only when it is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from forecast import __version__
from forecast.compute import Session, session
from forecast.config import dump_config
from forecast.errors import InputError
from forecast.grids import Grid, latitude_bounds, longitude_bounds
from forecast.ingest.config import IngestConfig, StaticConfig
from forecast.ingest.conventions import convert_units
from forecast.ingest.readers import SourceFile, _open_raw, detect_format, open_sources
from forecast.ingest.regrid import regrid
from forecast.ingest.stats import StatsAccumulator
from forecast.ingest.timeaxis import check_period, check_range, resample_time
from forecast.ingest.validate import assemble_variable, check_time_axis, find_unreadable, fmt_time
from forecast.schema import LAT, LEVEL, LON, TIME, VARIABLES, canonical_units
from forecast.storage import atomic_directory, check_output_path

__all__ = ["IngestResult", "build_dataset", "run_ingest", "store_fingerprint"]

log = logging.getLogger(__name__)

REGRID_DESCRIPTION = (
    "first-order conservative: each target cell is the area-weighted mean of the source cells it "
    "overlaps, areas measured as longitude extent x sin(latitude) extent on the sphere"
)


@dataclass
class Assembled:
    """The lazy store contents plus what is needed to explain errors and record provenance."""

    dataset: xr.Dataset
    files: list[SourceFile]
    origins: dict[str, dict[np.datetime64, Path]] = field(default_factory=dict)

    @property
    def nbytes_read(self) -> int:
        return sum(f.nbytes for f in self.files)


@dataclass
class IngestResult:
    path: Path
    n_times: int
    bytes_read: int
    seconds: float
    skipped: bool = False

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / max(self.seconds, 1e-9)


def _channel_attrs(variable: str, level: float | None, units: str) -> dict:
    info = VARIABLES.get(variable)
    long_name = info.long_name if info else variable
    attrs = {"short_name": variable, "units": units, "long_name": long_name}
    if level is not None:
        attrs["level"] = float(level)
        attrs["long_name"] = f"{long_name} at {level:g} hPa"
    if info and info.standard_name:
        attrs["standard_name"] = info.standard_name
    return attrs


def _static_field(cfg: StaticConfig, files: list[SourceFile]) -> xr.DataArray:
    holders = [f for f in files if cfg.variable in f.dataset.data_vars]
    if not holders:
        found = sorted({v for f in files for v in f.variables})
        raise InputError(
            f"static field {cfg.name!r}: variable {cfg.variable!r} is in none of "
            f"{[str(f.path) for f in files]} (found: {found})"
        )
    src = holders[0]
    da = src.dataset[cfg.variable]
    if TIME in da.dims:
        da = da.isel({TIME: 0}, drop=True)  # invariants come with one (arbitrary) valid time in CDS files
    if LEVEL in da.dims:
        if da.sizes[LEVEL] != 1:
            raise InputError(f"{src.path}: static variable {cfg.variable!r} has several levels")
        da = da.isel({LEVEL: 0}, drop=True)
    info = VARIABLES.get(cfg.variable)
    units = cfg.units or (info.units if info else da.attrs.get("units", "1"))
    da = convert_units(da, units, str(src.path))
    # The store name says what the field is (surface geopotential converted to metres is orography).
    named = VARIABLES.get(cfg.name, info)
    attrs = {"units": units, "long_name": named.long_name if named else cfg.name, "short_name": cfg.variable}
    if named and named.standard_name:
        attrs["standard_name"] = named.standard_name
    return da.assign_attrs(attrs).rename(cfg.name)


# Each dask task handles at most this much source data per channel, and a slab (one compute) a few
# tasks per channel: enough to keep the workers busy, small enough that memory holds one slab.
BLOCK_BYTES = 8_000_000
BLOCKS_PER_SLAB = 4


def block_steps(sources: Iterable[xr.DataArray], time_chunk: int) -> int:
    """Time steps per dask chunk: a multiple of the store's ``time_chunk`` with at most
    :data:`BLOCK_BYTES` of source data per channel (at least one ``time_chunk``)."""
    per_step = max(int(np.prod([n for d, n in da.sizes.items() if d != TIME])) * da.dtype.itemsize
                   for da in sources)
    return time_chunk * max(1, BLOCK_BYTES // (per_step * time_chunk))


def build_dataset(config: IngestConfig) -> Assembled:
    """Open, normalise, validate and regrid everything the config asks for, lazily.

    Raises :class:`InputError` for missing variables or levels, duplicated or missing times,
    a non-uniform step, wrong units, channels that do not cover the same times, unreadable files.
    """
    wanted = {ch.variable for ch in config.channels}
    files = [f for src in config.sources for f in open_sources(src, wanted)]
    grid = config.grid.build()
    step = config.time.timedelta
    arrays: dict[str, xr.DataArray] = {}
    origins: dict[str, dict[np.datetime64, Path]] = {}
    for ch in config.channels:
        da, origin = assemble_variable(files, ch.variable, ch.level)
        if config.time.resample != "none":
            da, origin = resample_time(da, step, config.time.resample, pd.Timedelta(config.time.max_gap), ch.channel,
                                       origin)
        da = da.sel({TIME: slice(config.time.start, config.time.end)})
        if da.sizes[TIME] == 0:
            raise InputError(
                f"channel {ch.channel!r}: no time of the sources lies in {config.time.start} .. {config.time.end}"
            )
        keep = check_time_axis(da[TIME].values, step, ch.channel, origin)
        if keep.size != da.sizes[TIME]:
            da = da.sel({TIME: keep})
        if not config.time.open_ended:
            check_period(keep, config.time.start, config.time.end, step, ch.channel, origin)
        units = VARIABLES[ch.variable].units if ch.variable in VARIABLES else da.attrs.get("units", "1")
        arrays[ch.channel] = da.assign_attrs(_channel_attrs(ch.variable, ch.level, units))
        origins[ch.channel] = origin

    names = list(arrays)
    ref_times = arrays[names[0]][TIME].values
    for name in names[1:]:
        times = arrays[name][TIME].values
        if times.size != ref_times.size or not np.array_equal(times, ref_times):
            only_ref = np.setdiff1d(ref_times, times)
            only_here = np.setdiff1d(times, ref_times)
            which, other, diff = (name, names[0], only_ref) if only_ref.size else (names[0], name, only_here)
            shown = ", ".join(fmt_time(t) for t in diff[:4]) + (" ..." if diff.size > 4 else "")
            raise InputError(
                f"channel {which!r} lacks {diff.size} time(s) that channel {other!r} has: {shown}"
            )

    data = {name: _regrid_named(da, grid, origins[name]) for name, da in arrays.items()}
    for s in config.static:
        static_files = open_sources(s.source, {s.variable})
        files.extend(f for f in static_files if f.path not in {g.path for g in files})
        data[s.name] = regrid(_static_field(s, static_files), grid).astype(np.float32)

    # The sources' encodings (a zarr-2 store's Blosc compressor, netCDF chunking and fill values) describe
    # how *they* were stored; carried into the zarr-3 output they are invalid there, or wrong.
    ds = xr.Dataset(data).drop_encoding()
    chunks = {TIME: block_steps(arrays.values(), config.output.time_chunk), LAT: -1, LON: -1}
    ds = ds.chunk({k: v for k, v in chunks.items() if k in ds.dims})
    ds = ds.assign_coords(
        latitude_bnds=((LAT, "nv"), latitude_bounds(ds[LAT].values)),
        longitude_bnds=((LON, "nv"), longitude_bounds(ds[LON].values)),
    )
    ds[LAT].attrs["bounds"] = "latitude_bnds"
    ds[LON].attrs["bounds"] = "longitude_bnds"
    ds[TIME].attrs.update({"standard_name": "time", "long_name": "valid time of the analysis"})
    return Assembled(ds, files, origins)


def _regrid_named(da: xr.DataArray, grid: Grid, origin: dict[np.datetime64, Path]) -> xr.DataArray:
    """:func:`regrid`, its refusals (a regional source grid) naming the file and variable."""
    try:
        return regrid(da, grid)
    except InputError as exc:
        first = origin.get(da[TIME].values[0], "?") if TIME in da.dims else "?"
        raise InputError(f"{first}: variable {da.attrs.get('short_name', da.name)!r}: {exc}") from exc


def _expected_ranges(config: IngestConfig) -> dict[str, tuple[float, float]]:
    """Plausible value range per store variable (channels and static fields) in its store units: the config's
    ``valid_range``, else the quantity's own (:data:`forecast.schema.VARIABLES`); ``any`` is not checked."""
    out = {}
    for name, variable, given, units in [*((c.channel, c.variable, c.valid_range, None) for c in config.channels),
                                         *((s.name, s.variable, s.valid_range, s.units) for s in config.static)]:
        if given is not None:
            if given != "any":
                out[name] = (float(given[0]), float(given[1]))
            continue
        for key in (name, variable):  # a static field's name says its units (orography in m from z)
            info = VARIABLES.get(key)
            if info and info.valid_range and (units is None or canonical_units(units) == info.units):
                out[name] = info.valid_range
                break
    return out


def _check_ranges(low: xr.Dataset, high: xr.Dataset, times: np.ndarray, config: IngestConfig,
                  assembled: Assembled) -> None:
    """Refuse store variables whose ``[low, high]`` (over the slab ``times``; static fields whole) leave their
    plausible range, naming the files the values came from."""
    for name, expected in _expected_ranges(config).items():
        if name not in low:
            continue
        origin = assembled.origins.get(name, {})
        files = sorted({origin[t] for t in times if t in origin}) or sorted({f.path for f in assembled.files})
        check_range(name, float(low[name]), float(high[name]), expected, str(low[name].attrs.get("units", "")),
                    files)


def store_fingerprint(config: IngestConfig, files: Sequence[SourceFile]) -> str:
    """Hash of the config and of each source's identity (path, size, modification time; at a URL the digest
    of the store's metadata)."""
    h = hashlib.sha256(dump_config(config).encode())
    for f in sorted(files, key=lambda f: str(f.path)):
        h.update(f.identity.encode())
    h.update(__version__.encode())
    return h.hexdigest()


def _existing_fingerprint(path: Path) -> str | None:
    try:
        return zarr.open_group(str(path), mode="r").attrs.get("ingest_fingerprint")
    except Exception:  # noqa: BLE001 - anything unreadable is simply not up to date
        return None


def _stream(ds: xr.Dataset, tmp: Path, config: IngestConfig, assembled: Assembled, progress: bool) -> None:
    """Write ``ds`` to the zarr store ``tmp`` slab by slab of time, checking NaNs and accumulating the
    statistics in the same pass, so memory holds one slab whatever the number of time steps."""
    time_vars = [v for v in ds.data_vars if TIME in ds[v].dims]
    static = [v for v in ds.data_vars if TIME not in ds[v].dims]
    channels = [c.channel for c in config.channels]
    stats = None
    if config.stats is not None:
        step = np.timedelta64(config.time.timedelta.value, "ns")
        stats = StatsAccumulator(channels, ds[LAT].values, ds.sizes[LON], step, config.stats.start,
                                 config.stats.end)
        stats.check_period(ds[TIME].values)  # a too-short period is refused before anything is read
    # Static fields are small: load them now so the template write stores them with the metadata.
    ds = ds.assign({v: ds[v].load() for v in static})
    if static:
        _raise_on_nans(ds[static].isnull().sum([LAT, LON]), assembled)
        _check_ranges(ds[static].min(keep_attrs=True), ds[static].max(keep_attrs=True), np.array([]), config,
                      assembled)
    # zarr chunks are time_chunk steps; the dask blocks are multiples of it, so writes never share a chunk.
    encoding = {v: {"chunks": (config.output.time_chunk, ds.sizes[LAT], ds.sizes[LON])} for v in time_vars}
    encoding.update({v: {"chunks": tuple(ds[v].shape)} for v in static})
    ds.to_zarr(tmp, mode="w", compute=False, consolidated=False, zarr_format=3, encoding=encoding)
    n_times = ds.sizes[TIME]
    slab = ds.chunks[TIME][0] * BLOCKS_PER_SLAB
    region_vars = ds[time_vars]
    region_vars = region_vars.drop_vars([c for c in region_vars.coords if TIME not in region_vars[c].dims])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_times, desc="ingest", unit="step")
    try:
        with session(config.scheduler, config.workers) as dask_session:
            for a in range(0, n_times, slab):
                part = _read_slab(dask_session, region_vars.isel({TIME: slice(a, a + slab)}), assembled)
                write = part.to_zarr(tmp, region={TIME: slice(a, a + part.sizes[TIME])}, compute=False,
                                     consolidated=False, zarr_format=3)
                partials = stats.partials(part) if stats is not None else None
                # The first slab's value range is checked with its write: a wrong units label shows at once.
                lazy = [write, part.isnull().sum([LAT, LON]), *([part.min(keep_attrs=True),
                                                                 part.max(keep_attrs=True)] if a == 0 else [])]
                if partials is not None:
                    lazy += [partials.sums, partials.first, partials.last]
                try:
                    _, nans, *done = dask_session.compute(lazy)
                except InputError:
                    raise
                except Exception as exc:  # a file whose header read but whose data do not
                    _raise_unreadable(assembled, exc)
                    raise
                _raise_on_nans(nans, assembled)
                if a == 0:
                    low, high, *done = done
                    _check_ranges(low, high, part[TIME].values, config, assembled)
                if partials is not None:
                    partials.sums, partials.first, partials.last = done
                    stats.add(partials)
                if bar is not None:
                    bar.update(part.sizes[TIME])
    finally:
        if bar is not None:
            bar.close()
    if stats is not None:
        _append_stats(tmp, stats.result(), ds.attrs)


def _read_slab(dask_session: Session, part: xr.Dataset, assembled: Assembled) -> xr.Dataset:
    """``part`` read and regridded once, held in memory (the workers' with a cluster). Left lazy, the write,
    whose graph dask optimises on its own, and the checks and statistics would each read every source chunk
    (twice the bytes from a remote store)."""
    try:
        return dask_session.persist(part)
    except InputError:
        raise
    except Exception as exc:  # a file whose header read but whose data do not
        _raise_unreadable(assembled, exc)
        raise


def _raise_unreadable(assembled: Assembled, exc: Exception) -> None:
    bad = find_unreadable([f.path for f in assembled.files], lambda p: _open_raw(p, detect_format(p)))
    if bad:
        lines = "\n".join(f"  {p}: {why}" for p, why in bad)
        raise InputError(f"cannot read the data of {len(bad)} source file(s) (truncated or damaged):\n{lines}") from exc


def _raise_on_nans(nan_counts: xr.Dataset, assembled: Assembled) -> None:
    for name, counts in nan_counts.data_vars.items():
        values = np.asarray(counts.values).reshape(-1)
        if values.sum() == 0:
            continue
        if TIME in counts.dims:
            bad = counts[TIME].values[values > 0]
            origin = assembled.origins.get(str(name), {})
            shown = ", ".join(f"{fmt_time(t)} ({origin.get(t, '?')})" for t in bad[:3])
            raise InputError(
                f"channel {name!r}: NaN values at {bad.size} time(s): {shown}"
                f"{' ...' if bad.size > 3 else ''}; fill or drop them before ingesting"
            )
        raise InputError(f"static field {name!r}: {int(values.sum())} NaN grid points")


def _append_stats(store: Path, stats: xr.Dataset, attrs: dict) -> None:
    period = dict(stats.attrs)
    stats = stats.rename({v: f"stats_{v}" for v in stats.data_vars})
    # Appending rewrites the group's attributes: carry the provenance along.
    stats.attrs = {**attrs, **period}
    for v in stats.data_vars:
        what = str(v)[len("stats_"):].replace("_", " ")
        stats[v].attrs = {"long_name": f"area-weighted {what} over {period['stats_start']} .. {period['stats_end']}"}
    stats.to_zarr(store, mode="a", consolidated=False, zarr_format=3)


def run_ingest(config: IngestConfig, force: bool = False, progress: bool = True) -> IngestResult:
    """Build the training store described by ``config`` (see module docstring).

    If a complete store with the same fingerprint (config + inputs + version) exists, nothing is
    done unless ``force``; a rebuild of the same inputs is byte-identical.
    """
    t0 = time.perf_counter()
    out = check_output_path(config.output.path)  # before any file is read
    assembled = build_dataset(config)
    ds = assembled.dataset
    fp = store_fingerprint(config, assembled.files)
    if not force and out.exists() and _existing_fingerprint(out) == fp:
        log.info("%s is up to date; nothing to do", out)
        return IngestResult(out, int(ds.sizes.get(TIME, 0)), 0, time.perf_counter() - t0, skipped=True)

    channels = [c.channel for c in config.channels]
    ds.attrs = {
        "title": f"{config.name}: training store written by forecast ingest",
        "Conventions": "CF-1.8",
        "forecast_version": __version__,
        "ingest_config": dump_config(config),
        "ingest_fingerprint": fp,
        "source_files": json.dumps([{"path": str(f.path), "bytes": f.nbytes} for f in assembled.files]),
        "channels": channels,
        "static_channels": [s.name for s in config.static],
        "grid_type": config.grid.type,
        "grid_nlat": config.grid.nlat,
        "grid_nlon": config.grid.nlon,
        "time_step": config.time.step,
        "regrid_method": REGRID_DESCRIPTION,
    }
    if config.attribution:
        ds.attrs["attribution"] = config.attribution

    log.info("ingesting %d channel(s), %d time(s) from %d file(s) (%.1f MB) -> %s on %s",
             len(channels), ds.sizes.get(TIME, 0), len(assembled.files), assembled.nbytes_read / 1e6,
             out, config.grid.build().describe())
    with atomic_directory(out) as tmp:
        _stream(ds, tmp, config, assembled, progress)
        with warnings.catch_warnings():
            # Consolidated metadata is not yet in the zarr v3 spec, but xarray and zarr-python read it
            # and it saves one request per array when opening a store over a network.
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(str(tmp))
    seconds = time.perf_counter() - t0
    return IngestResult(out, int(ds.sizes.get(TIME, 0)), assembled.nbytes_read, seconds)
