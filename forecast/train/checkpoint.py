"""Checkpoints: everything needed to resume a run exactly, written atomically, read with weights_only=True."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from forecast.errors import InputError
from forecast.storage import atomic_file

__all__ = ["load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)
    return path


def _check_integrity(path: Path) -> None:
    """Verify every member's CRC-32 in the checkpoint's zip container: torch.load does not, and a flipped bit
    in a tensor would otherwise load as silently wrong weights."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"checkpoint {path} is truncated or not a torch checkpoint ({type(exc).__name__}: {exc}); "
                         "copy or write it again") from exc
    if bad is not None:
        raise InputError(f"checkpoint {path} is damaged: its part {bad!r} fails the CRC check (a flipped bit or a bad "
                         "copy); copy or write it again")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely: its CRCs are verified first, and ``weights_only=True`` never executes code
    from the file (a pickled object other than tensors and plain containers is refused)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint {path} does not exist")
    _check_integrity(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign files raise several types
        raise InputError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc


def rng_state() -> dict[str, Any]:
    """Torch's CPU and CUDA generator states (the only RNGs training uses)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
