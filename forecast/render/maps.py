"""Cartopy maps drawn offline: forecast | truth | error side by side, ensemble mean | spread.

Fields are drawn cell by cell (``pcolormesh`` on the cell bounds of :mod:`forecast.grids`, so Gaussian
grids are drawn as they are) with the fixed per-variable colours of :mod:`forecast.render.styles`, and
the Natural Earth 110m coastlines shipped in the package. Views: ``robinson`` (global),
``north_polar`` / ``south_polar`` (polar stereographic poleward of 20 degrees) and ``orthographic``
(the globe seen from above 50N 10E).
"""

from __future__ import annotations

from collections.abc import Sequence

import cartopy.crs as ccrs
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from forecast.grids import latitude_bounds, longitude_bounds
from forecast.naturalearth import use_offline_cartopy
from forecast.render.styles import Style, pretty_units
from forecast.schema import LAT, LON

__all__ = ["PROJECTIONS", "Panel", "draw_panel", "map_figure", "projection"]

PROJECTIONS = ("robinson", "north_polar", "south_polar", "orthographic")


def projection(name: str) -> ccrs.Projection:
    if name == "robinson":
        return ccrs.Robinson()
    if name == "north_polar":
        return ccrs.NorthPolarStereo()
    if name == "south_polar":
        return ccrs.SouthPolarStereo()
    if name == "orthographic":
        return ccrs.Orthographic(central_longitude=10.0, central_latitude=50.0)
    raise ValueError(f"unknown projection {name!r}; use one of {PROJECTIONS}")


class Panel:
    """One map: a field ``(latitude, longitude)``, its title and how to colour it (``value``/``error``/``spread``)."""

    def __init__(self, field: xr.DataArray, title: str, kind: str = "value"):
        if kind not in ("value", "error", "spread"):
            raise ValueError(f"panel kind {kind!r} is not value, error or spread")
        self.field, self.title, self.kind = field, title, kind


def _edges(field: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    lat_b = latitude_bounds(field[LAT].values)
    lon_b = longitude_bounds(field[LON].values)
    return np.append(lon_b[:, 0], lon_b[-1, 1]), np.append(lat_b[:, 0], lat_b[-1, 1])


def draw_panel(ax, panel: Panel, style: Style, view: str):
    """Draw ``panel`` on a cartopy ``ax``; returns the mesh (for a colour bar)."""
    if panel.kind == "value":
        cmap, vmin, vmax = style.cmap, style.vmin, style.vmax
    elif panel.kind == "error":
        cmap, vmin, vmax = "RdBu_r", -style.error, style.error
    else:
        cmap, vmin, vmax = style.spread_cmap, 0.0, style.error
    lon_e, lat_e = _edges(panel.field)
    data = np.asarray(panel.field.transpose(LAT, LON).values, dtype=np.float64)
    mesh = ax.pcolormesh(lon_e, lat_e, data, cmap=cmap, vmin=vmin, vmax=vmax, transform=ccrs.PlateCarree(),
                         shading="flat", rasterized=True)
    if view == "north_polar":
        ax.set_extent([-180, 180, 20, 90], crs=ccrs.PlateCarree())
    elif view == "south_polar":
        ax.set_extent([-180, 180, -90, -20], crs=ccrs.PlateCarree())
    else:
        ax.set_global()
    ax.coastlines(resolution="110m", linewidth=0.6, color="black")
    ax.set_title(panel.title, fontsize=9)
    return mesh


def map_figure(panels: Sequence[Panel], style: Style, view: str = "robinson", suptitle: str = "") -> Figure:
    """A row of maps sharing one view; one colour bar per kind of panel (values share the fixed range)."""
    use_offline_cartopy()
    polar = view in ("north_polar", "south_polar", "orthographic")
    width = 4.2 if not polar else 3.6
    fig = Figure(figsize=(width * len(panels), 3.4 if not polar else 4.0), layout="constrained")
    proj = projection(view)
    meshes: dict[str, list] = {}
    axes = []
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1, projection=proj)
        meshes.setdefault(panel.kind, []).append((ax, draw_panel(ax, panel, style, view)))
        axes.append(ax)
    for kind, items in meshes.items():
        label = {"value": style.label, "error": f"error ({style.label})",
                 "spread": f"spread ({style.label})"}[kind]
        bar = fig.colorbar(items[-1][1], ax=[a for a, _ in items], orientation="horizontal", shrink=0.8, pad=0.03,
                           label=f"{label} [{pretty_units(style.units)}]", extend="both")
        bar.locator = MaxNLocator(5)
        bar.update_ticks()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
