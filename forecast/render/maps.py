"""Cartopy maps drawn offline: forecast | truth | error side by side, ensemble mean | spread.

Fields are drawn cell by cell (``pcolormesh`` on the cell bounds of :mod:`forecast.grids`, so Gaussian
grids are drawn as they are) in the display units and colours of :mod:`forecast.render.styles`, with
labelled contours over the shading (z500 every 8 dam, isobars every 4 hPa), labelled gridlines, and the
Natural Earth 110m coastlines shipped in the package. Views: ``robinson`` (global), ``north_polar`` /
``south_polar`` (polar stereographic poleward of 20 degrees, clipped to a circle), ``orthographic``
(the globe seen from above 50N 10E) and ``plate_carree`` (latitude-longitude, the cheapest to draw).
"""

from __future__ import annotations

from collections.abc import Sequence

import cartopy.crs as ccrs
import matplotlib.path as mpath
import numpy as np
import xarray as xr
from cartopy.util import add_cyclic_point
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from forecast.grids import latitude_bounds, longitude_bounds
from forecast.naturalearth import use_offline_cartopy
from forecast.render.styles import Style, pretty_units
from forecast.schema import LAT, LON

__all__ = ["PROJECTIONS", "Panel", "draw_panel", "map_figure", "projection"]

PROJECTIONS = ("robinson", "north_polar", "south_polar", "orthographic", "plate_carree")


def projection(name: str) -> ccrs.Projection:
    if name == "robinson":
        return ccrs.Robinson()
    if name == "north_polar":
        return ccrs.NorthPolarStereo()
    if name == "south_polar":
        return ccrs.SouthPolarStereo()
    if name == "orthographic":
        return ccrs.Orthographic(central_longitude=10.0, central_latitude=50.0)
    if name == "plate_carree":
        return ccrs.PlateCarree()
    raise ValueError(f"unknown projection {name!r}; use one of {PROJECTIONS}")


class Panel:
    """One map: a field ``(latitude, longitude)``, its title and how to colour it (``value``/``error``/``spread``)."""

    def __init__(self, field: xr.DataArray, title: str, kind: str = "value"):
        if kind not in ("value", "error", "spread", "skill"):
            raise ValueError(f"panel kind {kind!r} is not value, error, spread or skill")
        self.field, self.title, self.kind = field, title, kind


def _edges(field: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    lat_b = latitude_bounds(field[LAT].values)
    lon_b = longitude_bounds(field[LON].values)
    return np.append(lon_b[:, 0], lon_b[-1, 1]), np.append(lat_b[:, 0], lat_b[-1, 1])


def _circle(ax) -> None:
    """Clip a polar view to a circle (the usual look of a polar chart), not the square of its extent."""
    theta = np.linspace(0, 2 * np.pi, 120)
    ax.set_boundary(mpath.Path(np.column_stack([np.sin(theta), np.cos(theta)]) * 0.5 + 0.5), transform=ax.transAxes)


def _contours(ax, panel: Panel, data: np.ndarray, style: Style) -> None:
    """Black contours every ``style.display.contour`` (display units) over the shading, labelled, drawn on cell
    centres with the first longitude repeated at +360 so that lines close across the date line."""
    step = style.display.contour if style.display else None
    finite = data[np.isfinite(data)]
    if not step or finite.size == 0:
        return
    levels = np.arange(np.floor(finite.min() / step) * step, finite.max() + step, step)
    if levels.size < 2 or levels.size > 80:
        return
    cyclic, lon = add_cyclic_point(data, coord=panel.field[LON].values)
    lines = ax.contour(lon, panel.field[LAT].values, cyclic, levels=levels, colors="black", linewidths=0.6,
                       transform=ccrs.PlateCarree())
    ax.clabel(lines, levels[::2], fontsize=6, fmt="%g", inline=True)


def draw_panel(ax, panel: Panel, style: Style, view: str, gridlines: bool = True, labels: bool = True):
    """Draw ``panel`` on a cartopy ``ax`` in the style's display units (values shaded with contours over
    them, gridlines unless ``gridlines=False``, labelled if ``labels``); returns the mesh (for a colour bar)."""
    raw = np.asarray(panel.field.transpose(LAT, LON).values, dtype=np.float64)
    if panel.kind == "value":
        cmap, (vmin, vmax) = style.cmap, style.shown(np.array([style.vmin, style.vmax]))
        data = style.shown(raw)
    else:
        err = float(style.shown(np.array(style.error), difference=True))
        cmap, vmin, vmax = ("RdBu_r", -err, err) if panel.kind == "error" else (style.spread_cmap, 0.0, err)
        cmap = "YlOrRd" if panel.kind == "skill" else cmap
        data = style.shown(raw, difference=True)
    lon_e, lat_e = _edges(panel.field)
    mesh = ax.pcolormesh(lon_e, lat_e, data, cmap=cmap, vmin=vmin, vmax=vmax, transform=ccrs.PlateCarree(),
                         shading="flat", rasterized=True)
    if view == "north_polar":
        ax.set_extent([-180, 180, 20, 90], crs=ccrs.PlateCarree())
        _circle(ax)
    elif view == "south_polar":
        ax.set_extent([-180, 180, -90, -20], crs=ccrs.PlateCarree())
        _circle(ax)
    else:
        ax.set_global()
    if panel.kind == "value":
        _contours(ax, panel, data, style)
    ax.coastlines(resolution="110m", linewidth=0.6, color="0.2")
    ax.set_title(panel.title, fontsize=9)
    if not gridlines:  # labelled gridlines cost about as much as the rest of the map (animation frames skip them)
        return mesh
    polar = view in ("north_polar", "south_polar")
    lons, lats = np.arange(-180, 181, 60), (np.arange(-60, 61, 30) if not polar else np.array([30, 60]))
    # The lines as plain plotted lines: cartopy's gridliner costs about a second per panel in a constrained
    # layout, so it is asked only for the first panel's labels (its own lines invisible).
    line = {"color": "0.5", "alpha": 0.6, "linestyle": "--", "linewidth": 0.3, "transform": ccrs.PlateCarree()}
    for lon in lons:
        ax.plot(np.full(61, lon), np.linspace(-90, 90, 61), **line)
    for lat in lats:
        ax.plot(np.linspace(-180, 180, 121), np.full(121, lat), **line)
    if labels:
        grid = ax.gridlines(draw_labels=True, linewidth=0, xlocs=lons, ylocs=lats, x_inline=False, y_inline=polar)
        grid.n_steps = 30
        grid.top_labels = grid.right_labels = False
        grid.xlabel_style = grid.ylabel_style = {"size": 6, "color": "0.3"}
    return mesh


def map_figure(panels: Sequence[Panel], style: Style, view: str = "robinson", suptitle: str = "",
               range_note: str | None = None, gridlines: bool = True) -> Figure:
    """A row of maps sharing one view; one colour bar per kind of panel (value panels share their range).

    ``range_note`` is added under the colour bars (default: whether the range is fixed or from the data)."""
    use_offline_cartopy()
    polar = view in ("north_polar", "south_polar", "orthographic")
    width = 4.2 if not polar else 3.8
    fig = Figure(figsize=(width * len(panels), 3.9 if not polar else 4.7), layout="constrained")
    proj = projection(view)
    meshes: dict[str, list] = {}
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1, projection=proj)
        # Panels of a row share their view: labels on the first one say where every panel's lines are.
        meshes.setdefault(panel.kind, []).append((ax, draw_panel(ax, panel, style, view, gridlines, i == 0)))
    units = pretty_units(style.shown_units)
    for kind, items in meshes.items():
        label = {"value": style.label, "error": f"error ({style.label})", "spread": f"spread ({style.label})",
                 "skill": f"RMSE, CRPS ({style.label})"}[kind]
        bar = fig.colorbar(items[-1][1], ax=[a for a, _ in items], orientation="horizontal", shrink=0.8, pad=0.03,
                           label=f"{label} [{units}]", extend="both")
        bar.locator = MaxNLocator(6)
        bar.update_ticks()
    note = range_note if range_note is not None else (
        "fixed colour range (compares across maps)" if style.fixed else "colour range of this map's fields")
    contour = style.display.contour if style.display and style.display.contour else None
    if contour and "value" in meshes:
        note += f"; contours every {contour:g} {style.shown_units}"
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.supxlabel(note, fontsize=6, color="0.35")  # constrained layout keeps room for it under the colour bars
    return fig
