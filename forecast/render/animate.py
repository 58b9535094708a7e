"""An animated GIF of a rollout: one map per lead time of one variable, fixed colours, offline coastlines."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image

from forecast.render.maps import Panel, map_figure
from forecast.render.styles import Style
from forecast.schema import INIT_TIME, LEAD_TIME

__all__ = ["animate_rollout"]


def _frame(fig, dpi: int) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def animate_rollout(field: xr.DataArray, style: Style, path: str | Path, view: str = "robinson", fps: float = 4.0,
                    max_frames: int = 40, dpi: int = 80, truth: xr.DataArray | None = None) -> Path:
    """Write a GIF of ``field`` ``(lead_time, latitude, longitude)`` (one initial time, one member).

    With ``truth`` (same dims) each frame shows forecast and truth side by side. At most ``max_frames``
    leads, evenly spread. Frames are palette images sharing the first frame's palette, so colours stay put.
    """
    n = field.sizes[LEAD_TIME]
    picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    init = field[INIT_TIME].values if INIT_TIME in field.coords else None
    frames = []
    for i in picks:
        lead = field[LEAD_TIME].values[i] / np.timedelta64(1, "h")
        f = field.isel({LEAD_TIME: i}).load()
        panels = [Panel(f, f"forecast +{lead:g} h")]
        if truth is not None:
            panels.append(Panel(truth.isel({LEAD_TIME: i}).load(), "truth"))
        when = f" from {np.datetime_as_string(init, unit='h')}" if init is not None and np.ndim(init) == 0 else ""
        fig = map_figure(panels, style, view, f"{field.name}{when}, lead {lead:g} h", gridlines=False)
        frames.append(_frame(fig, dpi))
    first = frames[0].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames = [first] + [f.quantize(palette=first) for f in frames[1:]]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
