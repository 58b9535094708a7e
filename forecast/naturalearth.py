"""Natural Earth 110m shapefiles shipped with the package: offline cartopy and a land-sea mask.

The files live in ``forecast/resources/naturalearth/shapefiles/natural_earth/{physical,cultural}``,
the layout cartopy expects under its ``pre_existing_data_dir``, so maps draw coastlines on a
machine without internet. :func:`land_fraction` rasterises the land polygons to the fractional
land-sea mask ERA5 calls ``lsm``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import shapefile
import shapely
from shapely.geometry import shape

from forecast.grids import latitude_bounds, longitude_bounds

__all__ = ["NATURALEARTH_DIR", "land_fraction", "land_geometries", "shapefile_path", "use_offline_cartopy"]

NATURALEARTH_DIR = Path(__file__).resolve().parent / "resources" / "naturalearth"
"""The folder holding ``shapefiles/natural_earth/...`` (cartopy's ``pre_existing_data_dir``)."""


def shapefile_path(name: str = "land", category: str = "physical", resolution: str = "110m") -> Path:
    """Path of a shipped shapefile, e.g. ``shapefile_path("coastline")``; raises if it is not shipped."""
    path = NATURALEARTH_DIR / "shapefiles" / "natural_earth" / category / f"ne_{resolution}_{name}.shp"
    if not path.exists():
        raise FileNotFoundError(f"Natural Earth file {path.name} is not shipped in {path.parent}")
    return path


def use_offline_cartopy() -> None:
    """Point cartopy at the shipped Natural Earth files and forbid it any download.

    A feature that is not shipped (another resolution, say) then fails with a clear error instead
    of a network timeout.
    """
    import cartopy
    from cartopy.io.shapereader import NEShpDownloader

    class _OfflineNEDownloader(NEShpDownloader):
        def acquire_resource(self, target_path, format_dict):
            raise RuntimeError(
                f"cartopy asked to download Natural Earth {format_dict.get('resolution')} "
                f"{format_dict.get('category')}/{format_dict.get('name')}; this machine is offline and "
                f"only the files in {NATURALEARTH_DIR / 'shapefiles'} are available"
            )

    cartopy.config["pre_existing_data_dir"] = NATURALEARTH_DIR
    template = NEShpDownloader.default_downloader()
    cartopy.config["downloaders"][("shapefiles", "natural_earth")] = _OfflineNEDownloader(
        target_path_template=template.target_path_template,
        pre_downloaded_path_template=template.pre_downloaded_path_template,
    )


@lru_cache(maxsize=4)
def land_geometries(resolution: str = "110m") -> tuple[shapely.Geometry, ...]:
    """Natural Earth land polygons (lon in [-180, 180], lat in degrees), Antarctica included.

    Read with pyshp; an invalid ring in the source data is repaired with ``make_valid``.
    """
    with shapefile.Reader(str(shapefile_path("land", "physical", resolution))) as reader:
        geoms = [shape(rec.__geo_interface__) for rec in reader.shapes()]
    return tuple(g if g.is_valid else shapely.make_valid(g) for g in geoms)


@lru_cache(maxsize=4)
def _land_union(resolution: str) -> shapely.Geometry:
    union = shapely.union_all(land_geometries(resolution))
    shapely.prepare(union)
    return union


def land_fraction(
    lat: np.ndarray, lon: np.ndarray, supersample: int = 5, resolution: str = "110m"
) -> np.ndarray:
    """Fraction of each grid cell covered by land, in [0, 1], shape ``(nlat, nlon)``, float64.

    ``lat`` (degrees north, either order; regular or Gaussian) and ``lon`` (degrees east, any
    convention, e.g. 0..360) are cell centres; cell edges follow :mod:`forecast.grids`. Each cell
    is sampled at ``supersample x supersample`` points evenly spaced in longitude and in
    sin(latitude), so every sample stands for an equal area and the fraction is area-weighted.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if supersample < 1:
        raise ValueError("supersample must be at least 1")
    offsets = (np.arange(supersample) + 0.5) / supersample  # (s,) in (0, 1)
    lat_b = np.deg2rad(latitude_bounds(lat))  # (nlat, 2)
    sin_lo, sin_hi = np.sin(lat_b[:, 1]), np.sin(lat_b[:, 0])
    sub_lat = np.rad2deg(np.arcsin(sin_lo[:, None] + offsets[None, :] * (sin_hi - sin_lo)[:, None]))
    lon_b = longitude_bounds(lon)  # (nlon, 2)
    sub_lon = lon_b[:, :1] + offsets[None, :] * (lon_b[:, 1] - lon_b[:, 0])[:, None]
    sub_lon = (sub_lon + 180.0) % 360.0 - 180.0  # the shapefile's -180..180 convention
    # (nlat, s, nlon, s) sample points -> inside flags -> mean over the samples of each cell.
    y = np.broadcast_to(sub_lat[:, :, None, None], (lat.size, supersample, lon.size, supersample))
    x = np.broadcast_to(sub_lon[None, None, :, :], y.shape)
    inside = shapely.contains_xy(_land_union(resolution), x.ravel(), y.ravel()).reshape(y.shape)
    return inside.mean(axis=(1, 3))
