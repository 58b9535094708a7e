"""Atomic writes: a store or file appears under its final name only once it is complete.

Everything the pipeline writes (ingested stores, checkpoints, products) goes through here, so a
killed run never leaves something that looks finished: it leaves a ``.NAME.partial-PID`` that the
next run removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_directory", "atomic_file", "remove_stale_partials"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete leftovers of killed writers of ``path`` (``.NAME.partial-PID`` whose PID is gone)."""
    removed = []
    for cand in path.parent.glob(f".{path.name}.partial-*"):
        try:
            pid = int(cand.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            if cand.is_dir():
                shutil.rmtree(cand, ignore_errors=True)
            else:
                cand.unlink(missing_ok=True)
            removed.append(cand)
    return removed


def _replace(tmp: Path, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        # A directory cannot be replaced in one rename: move the old one aside first, so the final
        # name always points at a complete store (old or new), never at a half-deleted one.
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it is renamed to ``path``.

    On any exception the temporary directory is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        yield tmp
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
