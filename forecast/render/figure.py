"""Saving figures. Figures here are plain ``matplotlib.figure.Figure`` objects, not pyplot's: no global
backend state, nothing to close, safe in threads and tests."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["save_figure"]


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (PNG, SVG, PDF: what the suffix says), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
