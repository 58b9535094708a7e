"""Saving figures. Figures here are plain ``matplotlib.figure.Figure`` objects, not pyplot's: no global
backend state, nothing to close, safe in threads and tests.

PNGs are written as 256-colour palette images, a third of the bytes of matplotlib's RGBA files (the report
embeds every figure, base64: its size is theirs times 4/3). The palette is Pillow's maximum-coverage
quantisation: every pixel stays within about 17 of 255 of its colour in each channel (median cut, smaller
on average, moves a few pixels of a smooth colour bar to far-off hues), and without dithering flat fills stay
flat.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

__all__ = ["PALETTE_COLOURS", "save_figure"]

PALETTE_COLOURS = 256


def save_figure(fig: Figure, path: str | Path, dpi: int = 100, palette: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG, SVG, PDF: what the suffix says), creating its folder. ``palette``: a PNG
    as a :data:`PALETTE_COLOURS`-colour palette image (see the module docstring), else matplotlib's RGBA."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (palette and path.suffix.lower() == ".png"):
        fig.savefig(path, dpi=dpi)
        return path
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    # The figures are opaque (white background): RGB loses nothing; dithering would only add noise to flat fills.
    image = Image.open(buf).convert("RGB").quantize(PALETTE_COLOURS, method=Image.Quantize.MAXCOVERAGE,
                                                    dither=Image.Dither.NONE)
    image.save(path, format="PNG", optimize=True)
    return path
