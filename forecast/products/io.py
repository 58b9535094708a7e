"""Reading forecast products back, and the optional netCDF export.

``open_product`` refuses an incomplete product unless asked (``allow_incomplete=True``), so a
partial run is never scored by mistake, and gives a product in the project's naming one array per channel
(without the CF ``level`` axis it is stored with); ``open_stability`` reads the stability report group.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.products.layout import channel_view
from forecast.remote import is_url, open_zarr_url
from forecast.storage import atomic_file

__all__ = ["STABILITY_GROUP", "export_netcdf", "open_product", "open_stability"]

log = logging.getLogger(__name__)

STABILITY_GROUP = "stability"


def open_product(path: str | Path, allow_incomplete: bool = False, channels: bool = True) -> xr.Dataset:
    """The product at ``path`` (or a URL) as a lazy dataset (times decoded, ``lead_time`` as timedelta64).

    ``channels``: a product in the project's naming as one ``(init_time, lead_time[, member], latitude,
    longitude)`` array per channel (:func:`forecast.products.layout.channel_view`), as every stage reads it;
    ``False``: as stored, pressure-level channels on the CF ``level`` axis. WeatherBench2 products come as stored.
    """
    if is_url(path):
        try:
            ds = open_zarr_url(str(path))
        except (FileNotFoundError, KeyError, OSError) as exc:  # also while an upload is under way
            raise InputError(f"no (complete) forecast product at {path}") from exc
    else:
        ds = _open_local_product(Path(path))
    complete = ds.attrs.get("complete")
    if complete is not True and complete != 1:
        msg = f"{path} is an incomplete forecast product: {ds.attrs.get('incomplete_reason', 'no completion flag')}"
        if not allow_incomplete:
            raise InputError(msg + " (open it with allow_incomplete=True to read the leads that were written)")
        log.warning(msg)
    return channel_view(ds) if channels else ds


def _open_local_product(path: Path) -> xr.Dataset:
    if not path.exists():
        partial = sorted(path.parent.glob(f".{path.name}.partial-*"))
        hint = f" (only an unfinished {partial[0].name} from a killed run)" if partial else ""
        raise InputError(f"no forecast product at {path}{hint}")
    return xr.open_zarr(path)


def open_stability(path: str | Path) -> xr.Dataset:
    """The stability report stored with a product (global mean/std by lead, power spectra vs the data)."""
    try:
        return xr.open_zarr(path, group=STABILITY_GROUP)
    except (FileNotFoundError, KeyError, OSError) as exc:
        raise InputError(f"{path} holds no stability report (group {STABILITY_GROUP!r})") from exc


def _netcdf_attrs(attrs: dict) -> dict:
    """netCDF has no boolean or nested attributes: booleans become 0/1 (byte), None is dropped."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            out[k] = np.int8(v)
        elif isinstance(v, list) and v and isinstance(v[0], int):
            out[k] = np.asarray(v, dtype=np.int64)
        elif v is not None:
            out[k] = v
    return out


def export_netcdf(product: str | Path, target: str | Path) -> Path:
    """Copy a product (and its stability group) to one netCDF4 file, chunk by chunk, atomically."""
    src = xr.open_zarr(product)
    src.attrs = _netcdf_attrs(src.attrs)
    for v in src.variables.values():
        v.attrs = _netcdf_attrs(v.attrs)
    with atomic_file(target) as tmp:
        src.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
        try:
            stab = xr.open_zarr(product, group=STABILITY_GROUP)
        except (FileNotFoundError, KeyError, OSError):
            stab = None
        if stab is not None:
            stab.attrs = _netcdf_attrs(stab.attrs)
            stab.to_netcdf(tmp, mode="a", group=STABILITY_GROUP, engine="netcdf4")
    return Path(target)
