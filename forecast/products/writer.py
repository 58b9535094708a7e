"""Streaming, atomic writer of forecast products (zarr), one lead time at a time.

Layout. Every variable is created up front with its full lead axis (metadata only: xarray writes
the coordinates and ``to_zarr(compute=False)`` leaves the data chunks unwritten, so they read as
NaN). Each lead is then written into its region with zarr directly as soon as it is computed:
memory holds one lead (times ``lead_chunk``), whatever the lead count, and a one-year rollout
streams in bounded memory.

Chunks are ``(1 init, k leads, all members, all levels, full grid)`` (one level in the project's naming,
whose channels hold data at one level of the ``level`` axis only: zarr stores no chunk that is all NaN).
Reading one map (or one ensemble of maps) is one chunk; reading a time series at one point reads ``L / k``
chunks. By default (``lead_chunk=None``) ``k`` is chosen so that a chunk holds about :data:`CHUNK_TARGET_BYTES` (1 MiB,
uncompressed): a deterministic 32 x 64 product gets 128 leads per chunk (a year of 6-hourly leads is
12 chunks per time series, one map decompresses 1 MiB), a 16-member 73 x 144 one gets 1 lead per chunk
(one ensemble of maps is already 0.7 MB). The writer buffers ``k`` leads of one block of initial times
before writing them, so memory is bounded by the chunk size, whatever the lead count.

Atomicity. Everything is written into ``.NAME.partial-PID`` beside the final path
(:func:`forecast.storage.atomic_directory`) and renamed into place at the end, with ``complete: true``
and ``last_lead_written`` in the attributes. If the run fails after writing some leads (a guard stops
a diverging rollout, an error, Ctrl-C), the partial product is still renamed into place, readable,
with ``complete: false`` and the ``incomplete_reason``; leads never written read as NaN, unless it was
to replace a complete product (``overwrite=True``): then the complete one stays and the partial one is
discarded. A run that fails before writing anything leaves nothing; a killed process (SIGKILL) leaves only the
``.partial`` folder, which never looks complete and which the next run removes. An existing product
is replaced only with ``overwrite=True``. A complete product also holds a plain file
:data:`COMPLETE_MARKER` (written last, inside the temporary folder, before the rename): what ``make``
and scripts can test without opening the store.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from forecast.errors import InputError
from forecast.grids import latitude_bounds, longitude_bounds
from forecast.products.layout import Naming, OutputVariable, dims_for, output_variables
from forecast.schema import LAT, LON
from forecast.storage import atomic_directory, check_output_path

__all__ = ["CHUNK_TARGET_BYTES", "COMPLETE_MARKER", "ProductSpec", "ProductWriter", "lead_steps", "lead_timedeltas",
           "time_units"]

CHUNK_TARGET_BYTES = 1 << 20
BNDS = "bnds"  # the two edges of a cell, CF's usual name
COMPLETE_MARKER = "COMPLETE"


def time_units(values: np.ndarray, since: str | None = "1970-01-01") -> str:
    """CF units for datetimes (``since`` given) or timedeltas: the coarsest of hours, minutes, seconds
    that represents every value exactly, so they encode as integers."""
    v = np.asarray(values)
    ns = (v - np.datetime64(since, "ns")) if since is not None else v
    ns = ns.astype("timedelta64[ns]").astype(np.int64)
    sizes = {"hours": 3_600_000_000_000, "minutes": 60_000_000_000, "seconds": 1_000_000_000}
    unit = next((u for u, size in sizes.items() if np.all(ns % size == 0)), "seconds")
    return f"{unit} since {since}" if since is not None else unit


def _jsonable(value: Any) -> Any:
    """Attributes must survive JSON (zarr) and netCDF: numpy scalars/arrays -> Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return value


@dataclass
class ProductSpec:
    """Everything that fixes a product's layout before the first lead is computed.

    ``members`` is ``None`` for a deterministic product (no member dimension).
    ``member_coords`` are extra coordinates along the member axis: ``name -> (values (M,), attrs)``.
    """

    init_times: np.ndarray  # (N,) datetime64[ns]
    lead_times: np.ndarray  # (L,) timedelta64[ns]
    latitudes: np.ndarray  # (H,) degrees north, north first
    longitudes: np.ndarray  # (W,) degrees east in [0, 360)
    channels: list[str]
    channel_attrs: list[dict[str, Any]]
    members: int | None = None
    member_coords: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)
    naming: Naming = "forecast"
    attrs: dict[str, Any] = field(default_factory=dict)
    lead_chunk: int | None = None  # leads per chunk; None: about CHUNK_TARGET_BYTES per chunk
    zarr_format: int = 3

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.latitudes.size), int(self.longitudes.size)

    @property
    def leads_per_chunk(self) -> int:
        """``k``: leads in one chunk (``lead_chunk``, or the 1 MiB rule; never more than the leads)."""
        n_lead = int(self.lead_times.size)
        if self.lead_chunk is not None:
            return max(1, min(self.lead_chunk, n_lead))
        h, w = self.shape
        per_lead = (self.members or 1) * self.levels_per_chunk * h * w * 4  # bytes of the largest variable
        return max(1, min(n_lead, CHUNK_TARGET_BYTES // per_lead))

    @property
    def levels_per_chunk(self) -> int:
        """Levels in one chunk: all of a WeatherBench2 variable's; one in the project's naming, whose channels
        hold data at one level of the axis only, so the NaN chunks of the others are never stored or read."""
        _, levels = output_variables(self.channels, self.channel_attrs, self.naming)
        return max(len(levels), 1) if self.naming == "weatherbench2" else 1

    def template(self) -> tuple[xr.Dataset, list[OutputVariable], dict[str, Any]]:
        """The lazy product (data are dask NaN arrays never computed), its variables and zarr encoding."""
        d = dims_for(self.naming)
        variables, levels = output_variables(self.channels, self.channel_attrs, self.naming)
        n, n_lead = self.init_times.size, self.lead_times.size
        init = np.asarray(self.init_times, dtype="datetime64[ns]")
        lead = np.asarray(self.lead_times, dtype="timedelta64[ns]")
        coords: dict[str, Any] = {
            d.init: (d.init, init, {"standard_name": "forecast_reference_time", "long_name": "initial time"}),
            d.lead: (d.lead, lead, {"standard_name": "forecast_period", "long_name": "lead time"}),
            d.valid: ((d.init, d.lead), init[:, None] + lead[None, :],
                      {"standard_name": "time", "long_name": "valid time (initial time + lead time)"}),
            LAT: (LAT, np.asarray(self.latitudes, np.float64),
                  {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y",
                   "bounds": f"{LAT}_bnds"}),
            LON: (LON, np.asarray(self.longitudes, np.float64),
                  {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X",
                   "bounds": f"{LON}_bnds"}),
            # CF cell bounds (edges of the cells the values are means of; the poles close the outermost rows),
            # so area weights and conservative regridding need not guess them from the centres.
            f"{LAT}_bnds": ((LAT, BNDS), latitude_bounds(self.latitudes),
                            {"units": "degrees_north", "long_name": "latitude cell bounds (north, south)"}),
            f"{LON}_bnds": ((LON, BNDS), longitude_bounds(self.longitudes),
                            {"units": "degrees_east", "long_name": "longitude cell bounds (west, east)"}),
        }
        lead_dims: tuple[str, ...] = (d.init, d.lead)
        if self.members is not None:
            coords[d.member] = (d.member, np.arange(self.members, dtype=np.int32),
                                {"standard_name": "realization", "long_name": "ensemble member"})
            for name, (values, attrs) in self.member_coords.items():
                coords[name] = (d.member, np.asarray(values), attrs)
            lead_dims += (d.member,)
        if levels:
            coords[d.level] = (d.level, np.asarray(levels, np.float64),
                               {"units": "hPa", "standard_name": "air_pressure", "long_name": "pressure level",
                                "positive": "down", "axis": "Z"})
        ds = xr.Dataset(coords={k: xr.Variable(*v) for k, v in coords.items()})
        h, w = self.shape
        encoding: dict[str, Any] = {
            d.init: {"units": time_units(init), "calendar": "proleptic_gregorian", "dtype": "int64"},
            d.valid: {"units": time_units(init[:, None] + lead[None, :]), "calendar": "proleptic_gregorian",
                      "dtype": "int64"},
            d.lead: {"units": time_units(lead, since=None), "dtype": "int64"},
        }
        for v in variables:
            dims = lead_dims + ((d.level,) if v.has_level else ()) + (LAT, LON)
            shape = ((n, n_lead) + ((self.members,) if self.members is not None else ())
                     + ((len(levels),) if v.has_level else ()) + (h, w))
            chunks = (1, self.leads_per_chunk) + shape[2:]
            if v.has_level:
                chunks = chunks[:-3] + (self.levels_per_chunk,) + chunks[-2:]
            ds[v.name] = xr.Variable(dims, da.full(shape, np.nan, dtype=np.float32, chunks=chunks), v.attrs)
            encoding[v.name] = {"chunks": chunks, "dtype": "float32", "_FillValue": np.float32(np.nan)}
        ds.attrs = {k: _jsonable(v) for k, v in self.attrs.items()}
        level_text = "all levels" if self.naming == "weatherbench2" else "one level"
        ds.attrs["chunking"] = (f"1 {d.init} x {self.leads_per_chunk} {d.lead} x all members x {level_text} x "
                                "full grid per chunk")
        return ds, variables, encoding


class ProductWriter:
    """Context manager writing a product lead by lead (see the module docstring)::

        with ProductWriter(path, spec) as w:
            for k, step in enumerate(steps):
                w.write(slice(i0, i1), k, state)  # (n_init, M, C, H, W) physical
    """

    def __init__(self, path: str | Path, spec: ProductSpec, overwrite: bool = False):
        self.path = Path(path)
        self.spec = spec
        self.overwrite = overwrite
        # Called at the end, also for a failed run: extra groups (e.g. "stability") written beside the data.
        self.extra_groups: dict[str, Callable[[], xr.Dataset | None]] = {}
        self.extra_attrs: dict[str, Any] = {}
        self.complete: bool | None = None
        self.reason: str | None = None
        self.kept_previous = False  # a failed run left the complete product it was to replace in place
        self._written = np.zeros(spec.init_times.size, dtype=np.int64)  # leads written per init
        self._buf: dict[str, np.ndarray] = {}
        self._buf_key: tuple[int, int, int] | None = None  # (init start, init stop, lead chunk)
        self._buf_leads = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> ProductWriter:
        if self.path.exists() and not self.overwrite:
            raise InputError(f"{self.path} already exists; choose another output path or pass --overwrite "
                             "(output.overwrite: true) to replace it")
        check_output_path(self.path)
        self._atomic = atomic_directory(self.path)
        self.tmp = self._atomic.__enter__()
        try:
            ds, self.variables, encoding = self.spec.template()
            self._chunk = self.spec.leads_per_chunk
            ds.to_zarr(self.tmp, mode="w", compute=False, consolidated=False, zarr_format=self.spec.zarr_format,
                       encoding=encoding)
            self._root = zarr.open_group(str(self.tmp), mode="r+", zarr_format=self.spec.zarr_format)
            self._arrays = {v.name: self._root[v.name] for v in self.variables}
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is not None and not self._written.any():
            # Nothing computed yet (a setup error): leave nothing rather than an empty product.
            self._atomic.__exit__(exc_type, exc, tb)
            return False
        try:
            self._flush()
            self.complete = exc is None and bool((self._written == self.spec.lead_times.size).all())
            if not self.complete:
                self.reason = (f"{type(exc).__name__}: {exc}" if exc is not None else
                               "the run ended before every lead time was written")
                if (self.path / COMPLETE_MARKER).exists():
                    # --overwrite of a complete product by a run that failed: the good one stays.
                    self.kept_previous = True
                    self._atomic.__exit__(exc_type, exc, tb)
                    return False
            self._finalise()
        except BaseException as err:
            self._atomic.__exit__(type(err), err, err.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)  # rename into place
        return False

    # -- writing ----------------------------------------------------------------------------------
    def write(self, inits: slice, lead_index: int, state: np.ndarray) -> None:
        """Write lead ``lead_index`` of initial times ``inits``: ``state`` ``(n, M, C, H, W)`` physical units
        (``M = 1`` for a deterministic product). Leads of one block of initial times come in order."""
        i0, i1 = inits.start or 0, inits.stop
        state = np.asarray(state, dtype=np.float32)
        if state.ndim != 5 or state.shape[0] != i1 - i0 or state.shape[2] != len(self.spec.channels):
            raise ValueError(f"state {state.shape} is not (inits={i1 - i0}, members, channels="
                             f"{len(self.spec.channels)}, H, W)")
        if self.spec.members is None:
            state = state[:, 0]  # (n, C, H, W)
        chunk = self._chunk
        key = (i0, i1, lead_index // chunk)
        if key != self._buf_key:
            self._flush()
            self._buf_key, self._buf_leads = key, 0
            self._buf = {}
        if lead_index % chunk != self._buf_leads or (self._written[i0:i1] != lead_index).any():
            raise ValueError(f"lead {lead_index} of inits {i0}:{i1} written out of order")
        for v in self.variables:
            data = self._select(v, state)  # (n, [M], [level], H, W)
            if v.name not in self._buf:
                self._buf[v.name] = np.full((data.shape[0], chunk, *data.shape[1:]), np.nan, np.float32)
            self._buf[v.name][:, self._buf_leads] = data
        self._buf_leads += 1
        self._written[i0:i1] = lead_index + 1
        if self._buf_leads == chunk:
            self._flush()

    def _select(self, v: OutputVariable, state: np.ndarray) -> np.ndarray:
        """The variable's part of ``state`` ``(n, [M], C, H, W)``; with levels ``(n, [M], level, H, W)``."""
        c_axis = state.ndim - 3
        if not v.has_level:
            return np.take(state, v.channels[0], axis=c_axis)
        idx = np.array([max(c, 0) for c in v.channels])
        out = np.take(state, idx, axis=c_axis)
        missing = np.array([c < 0 for c in v.channels])
        if missing.any():
            out[(slice(None),) * c_axis + (missing,)] = np.nan
        return out

    def _flush(self) -> None:
        if self._buf_key is None or not self._buf_leads:
            return
        i0, i1, c = self._buf_key
        l0 = c * self._chunk
        for name, buf in self._buf.items():
            self._arrays[name][i0:i1, l0:l0 + self._buf_leads] = buf[:, : self._buf_leads]
        self._buf_leads = 0
        self._buf = {}
        self._buf_key = None

    # -- the end ----------------------------------------------------------------------------------
    def _finalise(self) -> None:
        for name, make in self.extra_groups.items():
            group = make()
            if group is not None:
                group.to_zarr(self.tmp, group=name, mode="w", consolidated=False, zarr_format=self.spec.zarr_format)
        done = self._written.tolist()
        attrs = {
            **{k: _jsonable(v) for k, v in self.extra_attrs.items()},
            "complete": bool(self.complete),
            # Index along the lead axis up to which every initial time is written (-1: none).
            "last_lead_written": int(self._written.min()) - 1,
            "leads_written": done,
        }
        if not self.complete:
            attrs["incomplete_reason"] = self.reason
        root = zarr.open_group(str(self.tmp), mode="r+", zarr_format=self.spec.zarr_format)
        root.attrs.update(attrs)
        with warnings.catch_warnings():
            # Consolidated metadata is not in the zarr v3 spec yet; xarray and zarr-python read it.
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(str(self.tmp))
        if self.complete:
            (self.tmp / COMPLETE_MARKER).write_text(
                f"complete forecast product: {self.spec.init_times.size} initial time(s) x "
                f"{self.spec.lead_times.size} lead(s); see the store's attributes\n")

    @property
    def leads_written(self) -> np.ndarray:
        """Leads written so far per initial time ``(N,)``."""
        return self._written.copy()


def lead_steps(n_leads: int, include_initial: bool, every: int = 1) -> np.ndarray:
    """The model steps written ``(L,)``: 0 (optionally), then every ``every``-th step up to ``n_leads``."""
    steps = np.arange(0 if include_initial else 1, n_leads + 1)
    return steps[steps % every == 0]


def lead_timedeltas(n_leads: int, time_step: str, include_initial: bool, every: int = 1) -> np.ndarray:
    """The lead axis ``(L,)`` timedelta64[ns] of :func:`lead_steps`: 0 (optionally), ``every``, ... steps."""
    step = pd.Timedelta(time_step).to_timedelta64().astype("timedelta64[ns]")
    return lead_steps(n_leads, include_initial, every) * step
