"""Read a training store written by ``forecast ingest`` into arrays the data loader can index quickly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.remote import is_url, open_zarr_url
from forecast.schema import CHANNEL, LAT, LON, TIME

__all__ = ["TrainingStore", "open_store", "open_training_store"]


@dataclass
class TrainingStore:
    """A training store's fields and metadata.

    ``state`` is ``(T, C, nlat, nlon)`` float32 (numpy in memory, or a lazy xarray-backed array),
    ``static`` is ``(S, nlat, nlon)``; ``mean``/``std``/``tendency_std`` are ``(C,)`` float64 in the
    channels' units (tendency per time step).
    """

    path: Path
    times: np.ndarray
    channels: list[str]
    units: list[str]
    static_names: list[str]
    state: np.ndarray
    static: np.ndarray
    latitudes: np.ndarray
    longitudes: np.ndarray
    grid_type: str
    time_step: str
    mean: np.ndarray
    std: np.ndarray
    tendency_std: np.ndarray
    attrs: dict

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.latitudes.size), int(self.longitudes.size)

    def index_of(self, time: np.datetime64) -> int:
        i = int(np.searchsorted(self.times, np.datetime64(time, "ns")))
        if i >= self.times.size or self.times[i] != np.datetime64(time, "ns"):
            raise InputError(f"{self.path}: time {time} is not in the store ({self.times[0]} .. {self.times[-1]})")
        return i


def open_store(path: str | Path) -> xr.Dataset:
    """A store written by ``forecast ingest`` (a path or a URL), lazily; refuses an incomplete one or one
    without channels."""
    if is_url(path):
        try:
            ds = open_zarr_url(str(path))
        except (FileNotFoundError, KeyError, ValueError, OSError) as exc:
            raise InputError(f"{path} is not a complete store ({type(exc).__name__}: {exc})") from exc
    else:
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise InputError(f"{path} is not a complete store (no zarr.json); run `forecast ingest` first")
        ds = xr.open_zarr(path)
    if not list(ds.attrs.get("channels", [])):
        raise InputError(f"{path}: no `channels` attribute; was it written by `forecast ingest`?")
    return ds


def open_training_store(path: str | Path, in_memory: bool = True) -> TrainingStore:
    """Open ``path``; with ``in_memory`` all fields are read once (fast random access for training)."""
    path = Path(path)
    ds = open_store(path)
    channels = list(ds.attrs["channels"])
    if "stats_mean" not in ds:
        raise InputError(f"{path}: has no normalisation statistics (ingested with `stats: null`)")
    missing = [c for c in channels if c not in ds]
    if missing:
        raise InputError(f"{path}: channels {missing} are listed but not stored")
    static_names = list(ds.attrs.get("static_channels", []))
    stacked = xr.concat([ds[c] for c in channels], dim=CHANNEL).transpose(TIME, CHANNEL, LAT, LON)
    state = stacked.values if in_memory else stacked.data
    static = (np.stack([ds[s].values for s in static_names]).astype(np.float32) if static_names
              else np.zeros((0, ds.sizes[LAT], ds.sizes[LON]), np.float32))
    order = [list(ds[CHANNEL].values).index(c) for c in channels]
    return TrainingStore(
        path=path,
        times=ds[TIME].values.astype("datetime64[ns]"),
        channels=channels,
        units=[str(ds[c].attrs.get("units", "1")) for c in channels],
        static_names=static_names,
        state=state,
        static=static,
        latitudes=ds[LAT].values,
        longitudes=ds[LON].values,
        grid_type=str(ds.attrs.get("grid_type", "equiangular")),
        time_step=str(ds.attrs.get("time_step", "6h")),
        mean=ds["stats_mean"].values[order].astype(np.float64),
        std=ds["stats_std"].values[order].astype(np.float64),
        tendency_std=ds["stats_tendency_std"].values[order].astype(np.float64),
        attrs=dict(ds.attrs),
    )
