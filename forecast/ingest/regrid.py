"""First-order conservative regridding between global latitude-longitude grids (xarray + dask, no torch).

The area of a latitude-longitude cell on a sphere of radius ``R`` is

    A = R^2 * (lon_east - lon_west) * (sin(lat_north) - sin(lat_south))

so in the coordinates ``(lon, s = sin(lat))`` area is plain Lebesgue measure and every cell of either
grid is a rectangle.  The overlap of a target cell ``i x k`` and a source cell ``j x l`` is therefore
the product of a 1-D overlap in ``s`` and a 1-D (periodic) overlap in longitude, and first-order
conservative remapping (the target value is the area-weighted mean of the source values it overlaps)
factorises exactly into two matrices::

    out = W_lat @ field @ W_lon.T
    W_lat[i, j] = |[s_i] n [s_j]| / |[s_i]|        W_lon[k, l] = |[lon_k] n [lon_l]| / |[lon_k]|

Because ``sum_i |[s_i] n [s_j]| = |[s_j]|`` (the target cells tile the sphere too), the area-weighted
global integral is conserved exactly, up to floating-point rounding, and rows sum to one, so constant
fields stay constant.  This is the scheme CDO's ``remapcon`` and xESMF's ``conservative`` give on
these grids, without a mesh library.  Cell bounds come from :func:`forecast.grids.latitude_bounds`
and :func:`forecast.grids.longitude_bounds`, so the weights agree with :func:`forecast.grids.area_weights`.
"""

from __future__ import annotations

import functools
from typing import Literal, TypeVar

import numpy as np
import xarray as xr

from forecast.errors import InputError
from forecast.grids import Grid, latitude_bounds, longitude_bounds
from forecast.schema import LAT, LON

__all__ = ["conservative_weights", "regrid"]

XarrayObj = TypeVar("XarrayObj", xr.DataArray, xr.Dataset)

# Overlaps below this fraction of a target cell are rounding noise from edges that coincide
# mathematically but were computed from different arrays; keeping them would spread NaNs to neighbours.
_TINY_WEIGHT = 1e-12
# Coordinates closer than this (degrees) are the same grid.
_SAME_COORD_ATOL = 1e-6

LAT_ATTRS = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}
LON_ATTRS = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"}


def _check_global(lat: np.ndarray, lon: np.ndarray, which: str) -> None:
    """Raise :class:`InputError` unless ``lat``/``lon`` (degrees) describe a global grid."""
    if lat.ndim != 1 or lon.ndim != 1 or lat.size < 2 or lon.size < 2:
        raise InputError(
            f"{which} grid must have 1-D {LAT} and {LON} with at least 2 points each, "
            f"got shapes {lat.shape} and {lon.shape}"
        )
    if not np.all(np.isfinite(lat)) or not np.all(np.isfinite(lon)):
        raise InputError(f"{which} grid has non-finite {LAT} or {LON} values")
    dlat = np.diff(lat)
    if not (np.all(dlat > 0) or np.all(dlat < 0)):
        raise InputError(f"{which} {LAT} must be strictly monotonic (north to south or south to north)")
    if lat.min() < -90.0 - _SAME_COORD_ATOL or lat.max() > 90.0 + _SAME_COORD_ATOL:
        raise InputError(f"{which} {LAT} leaves [-90, 90]: found [{lat.min():g}, {lat.max():g}]")
    # The outermost centre must lie within one local spacing of its pole; this accepts grids with
    # poles, WeatherBench's half-offset grids and Gaussian grids, and refuses regional boxes.
    north, south = np.sort(lat)[::-1][:2], np.sort(lat)[:2]
    if 90.0 - north[0] > (north[0] - north[1]) * 1.01 or south[0] + 90.0 > (south[1] - south[0]) * 1.01:
        raise InputError(
            f"{which} grid is not global: {LAT} covers [{lat.min():g}, {lat.max():g}] degrees, which stops "
            "short of the poles by more than one grid spacing; regridding needs global fields"
        )
    if not np.all(np.diff(lon) > 0):
        raise InputError(f"{which} {LON} must be strictly ascending")
    spacing = float(np.median(np.diff(lon)))
    span = float(lon[-1] - lon[0])
    if span >= 360.0 or 360.0 - span > spacing * 1.01:
        raise InputError(
            f"{which} grid is not global: {LON} covers [{lon[0]:g}, {lon[-1]:g}] degrees "
            f"(span {span:g} with spacing {spacing:g}); regridding needs 360 degrees of longitude"
        )


def _overlap(lo_dst: np.ndarray, hi_dst: np.ndarray, lo_src: np.ndarray, hi_src: np.ndarray) -> np.ndarray:
    """Lengths of the intersections of intervals ``[lo_dst[i], hi_dst[i]]`` and ``[lo_src[j], hi_src[j]]``."""
    return np.clip(
        np.minimum(hi_dst[:, None], hi_src[None, :]) - np.maximum(lo_dst[:, None], lo_src[None, :]),
        0.0,
        None,
    )


def _normalise_rows(overlap: np.ndarray) -> np.ndarray:
    width = overlap.sum(axis=1, keepdims=True)
    w = overlap / width
    w[w < _TINY_WEIGHT] = 0.0
    # Rows sum to 1 analytically; renormalising removes the 1e-16 drift so constants stay exact.
    return w / w.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=64)
def _cached_weights(
    src_lat: tuple[float, ...],
    src_lon: tuple[float, ...],
    dst_lat: tuple[float, ...],
    dst_lon: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray]:
    # Latitude: overlap in s = sin(lat); both grids tile [-1, 1] because their outer bounds are the poles.
    sb = np.sin(np.deg2rad(latitude_bounds(np.asarray(src_lat))))  # (n_src_lat, 2) as (north, south)
    db = np.sin(np.deg2rad(latitude_bounds(np.asarray(dst_lat))))  # (n_dst_lat, 2)
    w_lat = _normalise_rows(_overlap(db[:, 1], db[:, 0], sb[:, 1], sb[:, 0]))

    # Longitude: periodic, so compare each target cell with the source cells shifted by whole turns.
    # Bounds lie within a turn of [0, 360) on both grids, so shifts of -2..2 turns catch every overlap.
    sl = longitude_bounds(np.asarray(src_lon))  # (n_src_lon, 2) as (west, east)
    dl = longitude_bounds(np.asarray(dst_lon))  # (n_dst_lon, 2)
    over = sum(_overlap(dl[:, 0], dl[:, 1], sl[:, 0] + 360.0 * k, sl[:, 1] + 360.0 * k) for k in range(-2, 3))
    # Row sums equal the target widths exactly, since the source cells tile the circle.
    w_lon = _normalise_rows(over)

    w_lat.setflags(write=False)
    w_lon.setflags(write=False)
    return w_lat, w_lon


def conservative_weights(
    src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray, dst_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Separable first-order conservative remapping matrices between two global lat-lon grids.

    Args:
        src_lat: source latitudes in degrees, shape ``(n_src_lat,)``, north to south or south to north.
        src_lon: source longitudes in degrees, shape ``(n_src_lon,)``, strictly ascending, spanning 360.
        dst_lat: target latitudes in degrees, shape ``(n_dst_lat,)``, either order.
        dst_lon: target longitudes in degrees, shape ``(n_dst_lon,)``, strictly ascending, spanning 360.

    Returns:
        ``(W_lat, W_lon)`` of shapes ``(n_dst_lat, n_src_lat)`` and ``(n_dst_lon, n_src_lon)``, float64,
        non-negative with rows summing to 1, in the orders of the given coordinates; the regridded
        field is ``W_lat @ field @ W_lon.T`` for ``field`` of shape ``(n_src_lat, n_src_lon)``.
        ``W_lat[i, j]`` is the overlap of target cell ``i`` and source cell ``j`` measured in
        ``sin(latitude)`` divided by the target cell's extent in ``sin(latitude)``; ``W_lon[k, l]`` is
        the periodic longitude overlap divided by the target cell's width.  Because a cell's area is
        ``R^2 * dlon * d(sin lat)``, this product is the exact area fraction, and the remap conserves
        the area-weighted integral (see the module docstring).  The arrays are cached and read-only.

    Raises:
        InputError: (a ``ValueError``) if either grid is not global.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (src_lat, src_lon, dst_lat, dst_lon)]
    _check_global(arrays[0], arrays[1], "source")
    _check_global(arrays[2], arrays[3], "target")
    return _cached_weights(*(tuple(a.tolist()) for a in arrays))


def _apply_weights(field: np.ndarray, w_lat: np.ndarray, w_lon: np.ndarray) -> np.ndarray:
    """Regrid ``field`` ``(..., n_src_lat, n_src_lon)`` to float32 ``(..., n_dst_lat, n_dst_lon)``."""
    lead = field.shape[:-2]
    n_sl, n_sn = field.shape[-2:]
    n_dl, n_dn = w_lat.shape[0], w_lon.shape[0]
    f = np.asarray(field, dtype=np.float64).reshape(-1, n_sl, n_sn)

    def apply(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Contract the dimension whose product is cheaper first; both are single BLAS calls per slice.
        if n_dl * n_sn * (n_sl + n_dn) <= n_sl * n_dn * (n_sn + n_dl):
            y = np.matmul(a, x)  # (B, n_dl, n_sn)
            return (y.reshape(-1, n_sn) @ b.T).reshape(-1, n_dl, n_dn)
        y = (x.reshape(-1, n_sn) @ b.T).reshape(-1, n_sl, n_dn)  # (B, n_sl, n_dn)
        return np.matmul(a, y)

    out = apply(f, w_lat, w_lon)
    # Any non-finite source value reaches the (small) output, so checking there is cheaper than
    # scanning the input.  But 0 * NaN is NaN in a matrix product, which blanks whole rows and
    # columns of the output: redo with the bad cells zeroed and mark only the target cells overlapping one.
    if not np.isfinite(out).all():
        bad = ~np.isfinite(f)
        out = apply(np.where(bad, 0.0, f), w_lat, w_lon)
        footprint_lat, footprint_lon = (w_lat > 0).astype(np.float64), (w_lon > 0).astype(np.float64)
        touched = apply(bad.astype(np.float64), footprint_lat, footprint_lon)
        out[touched > 0] = np.nan
    return out.astype(np.float32).reshape(*lead, n_dl, n_dn)


def _target_coords(target: Grid) -> dict[str, xr.Variable]:
    return {
        LAT: xr.Variable(LAT, target.latitudes, LAT_ATTRS),
        LON: xr.Variable(LON, target.longitudes, LON_ATTRS),
    }


def _regrid_array(da: xr.DataArray, target: Grid) -> xr.DataArray:
    src_lat = np.asarray(da[LAT].values, dtype=np.float64)
    src_lon = np.asarray(da[LON].values, dtype=np.float64)
    dst_lat, dst_lon = target.latitudes, target.longitudes
    coords = _target_coords(target)

    same_lon = src_lon.shape == dst_lon.shape and np.allclose(src_lon, dst_lon, rtol=0, atol=_SAME_COORD_ATOL)
    if same_lon and src_lat.shape == dst_lat.shape:
        if np.allclose(src_lat, dst_lat, rtol=0, atol=_SAME_COORD_ATOL):
            return da.astype(np.float32).assign_coords(coords)
        if np.allclose(src_lat[::-1], dst_lat, rtol=0, atol=_SAME_COORD_ATOL):
            return da.isel({LAT: slice(None, None, -1)}).astype(np.float32).assign_coords(coords)

    w_lat, w_lon = conservative_weights(src_lat, src_lon, dst_lat, dst_lon)
    if da.chunks is not None and any(len(da.chunksizes[dim]) > 1 for dim in (LAT, LON)):
        # Each output cell needs its whole source footprint; merging here (rather than letting dask
        # rechunk inside apply_gufunc) keeps the chunks of the other dimensions as they were.
        da = da.chunk({LAT: -1, LON: -1})
    out = xr.apply_ufunc(
        _apply_weights,
        da,
        kwargs={"w_lat": w_lat, "w_lon": w_lon},
        input_core_dims=[[LAT, LON]],
        output_core_dims=[[LAT, LON]],
        exclude_dims={LAT, LON},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {LAT: dst_lat.size, LON: dst_lon.size}},
        keep_attrs=True,
    )
    out = out.assign_coords(coords)
    return out if out.dims == da.dims else out.transpose(*da.dims)


def regrid(
    obj: XarrayObj, target: Grid, method: Literal["conservative"] = "conservative"
) -> XarrayObj:
    """Regrid a global field to ``target`` by first-order conservative remapping.

    Args:
        obj: a DataArray with dimensions ``latitude`` and ``longitude`` (degrees; latitude ascending or
            descending, longitude ascending and spanning 360 degrees), or a Dataset whose variables
            with both dimensions are regridded (variables without them are kept as they are). Any
            other dimensions (``time``, ``level``, ...) and their chunks are kept; a ``latitude`` or
            ``longitude`` split into several dask chunks is merged into one.
        target: the model grid; the output has its latitudes (north to south) and longitudes.
        method: only ``"conservative"``.

    Returns:
        The same type, lazy when the input is dask-backed, float32 (computed in float64), with the
        target ``latitude``/``longitude`` coordinates (CF ``units``/``standard_name`` attributes), the
        original dimension order and the variables' attributes.  Coordinates that depend on latitude
        or longitude other than the dimensions themselves are dropped.  If the source grid already is
        the target grid (coordinates within 1e-6 degrees, either latitude order) the values are
        returned unchanged, cast to float32 and put north to south.

        NaN: a target cell that overlaps a NaN (or infinite) source cell with nonzero weight becomes
        NaN; cells that merely touch it along an edge do not.  (The ingestion pipeline refuses NaN
        input anyway.)

    Raises:
        InputError: (a ``ValueError``) if the source is not global, naming the coordinate and the range
            found, or if the dimensions are missing.
        ValueError: for an unknown ``method``.
    """
    if method != "conservative":
        raise ValueError(f"unknown regridding method {method!r}; only 'conservative' is available")
    if isinstance(obj, xr.DataArray):
        if LAT not in obj.dims or LON not in obj.dims:
            raise InputError(f"cannot regrid {obj.name!r} with dimensions {obj.dims}: needs {LAT} and {LON}")
        return _regrid_array(obj, target)
    if not isinstance(obj, xr.Dataset):
        raise TypeError(f"regrid takes an xarray DataArray or Dataset, not {type(obj).__name__}")
    if LAT not in obj.dims or LON not in obj.dims:
        raise InputError(f"cannot regrid a dataset with dimensions {tuple(obj.dims)}: needs {LAT} and {LON}")
    variables = {}
    for name, da in obj.data_vars.items():
        if (LAT in da.dims) != (LON in da.dims):
            raise InputError(
                f"cannot regrid variable {name!r} with dimensions {da.dims}: "
                f"needs both {LAT} and {LON} or neither"
            )
        variables[name] = _regrid_array(da, target) if LAT in da.dims else da
    # Coordinates on the source grid would clash with the target's, so only the others carry over.
    kept_coords = {name: c for name, c in obj.coords.items() if LAT not in c.dims and LON not in c.dims}
    out = xr.Dataset(variables, coords=kept_coords, attrs=obj.attrs)
    return out.assign_coords(_target_coords(target))
