"""Atomic writes: a store or file appears under its final name only once it is complete.

Everything the pipeline writes (ingested stores, checkpoints, products, scores) goes through here, so a
killed or failed run never leaves something that looks finished, and never loses the good result it was
asked to replace:

* a new result is written into ``.NAME.partial-PID`` beside the final path, fsynced, and only then put
  in place: a file by one ``rename``; a directory by one atomic exchange of the two names (Linux
  ``renameat2(RENAME_EXCHANGE)``), or where that is missing by renaming the old one aside to
  ``.NAME.old-PID`` just before the new one takes its name;
* several files that belong together (``scores.nc`` and ``scores.csv``) are committed as one unit
  (:func:`atomic_files`): a journal written before the renames lets the next run finish them;
* every entry point first cleans what killed writers left (:func:`remove_stale_partials`): their
  ``.partial-*`` are removed, an ``.old-*`` is removed when the final name exists and put back when it
  does not (the writer died between its two renames), and an interrupted journal is rolled forward;
* :func:`check_output_path` refuses, before any work, an output path that cannot be written.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from forecast.errors import InputError

__all__ = ["DISK_ERRORS", "atomic_directory", "atomic_file", "atomic_files", "check_output_path", "fsync_tree",
           "remove_stale_partials"]

# Errors of the disk rather than of the data: reported as one line naming what was being written.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_writer(cand: Path) -> bool:
    """Whether ``cand`` (``.NAME.KIND-PID``) was left by a process that no longer runs."""
    try:
        pid = int(cand.name.rsplit("-", 1)[1])
    except ValueError:
        return False
    return pid != os.getpid() and not _pid_alive(pid)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _journal(path: Path) -> Path:
    return path.parent / f".{path.name}.commit-{os.getpid()}"


def _roll_forward(journal: Path) -> None:
    """Finish the renames an interrupted :func:`atomic_files` listed (its temporaries are complete)."""
    try:
        pairs = json.loads(journal.read_text())
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)  # a torn journal: the renames had not started
        return
    for tmp, final in pairs:
        if Path(tmp).exists():
            os.replace(tmp, final)
    _fsync_dir(journal.parent)
    journal.unlink(missing_ok=True)


def remove_stale_partials(path: Path) -> list[Path]:
    """Clean what killed writers of ``path`` left (see the module docstring); return what was removed."""
    removed = []
    for journal in path.parent.glob(".*.commit-*"):
        if _dead_writer(journal):
            _roll_forward(journal)
    for cand in path.parent.glob(f".{path.name}.old-*"):
        if not _dead_writer(cand):
            continue
        if path.exists() or path.is_symlink():
            _remove(cand)
            removed.append(cand)
        else:
            os.rename(cand, path)  # the writer died between its two renames: the old result is the good one
    for cand in path.parent.glob(f".{path.name}.partial-*"):
        if _dead_writer(cand):
            _remove(cand)
            removed.append(cand)
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush ``path`` (a file, or a directory with everything under it) to disk before it is renamed into
    place, so a power cut never leaves a complete-looking name over data still in the page cache."""
    if not path.is_dir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    for root, _, files in os.walk(path):
        for name in files:
            fsync_tree(Path(root) / name)
        _fsync_dir(Path(root))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step; ``False`` where the system cannot (not Linux, old kernel,
    a file system without it)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _replace(tmp: Path, path: Path) -> None:
    fsync_tree(tmp)
    if path.is_dir() and not path.is_symlink():
        # A directory cannot be replaced by one rename: swap the names, so the final name always points at
        # a complete store (old or new); the old one then sits under the temporary name and is removed.
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if _exchange(tmp, path):
            os.rename(tmp, old)
        else:
            os.rename(path, old)  # from here to the next line a kill leaves the old one aside: it is put back
            os.rename(tmp, path)
        _fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def _disk_error(exc: OSError, path: Path) -> InputError:
    return InputError(f"cannot write {path}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, '?')}); "
                      f"{'the previous one is left as it was' if path.exists() else 'nothing was written'}")


@contextlib.contextmanager
def _disk_errors_as_messages(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_ERRORS:
            raise _disk_error(exc, path) from exc
        raise


def _parent_dir(path: Path) -> None:
    """Create ``path``'s folder and check that it takes new entries (a refusal is an :class:`InputError`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(f"cannot write {path}: a parent of it is a file, not a folder") from exc
    except OSError as exc:
        raise _disk_error(exc, path) from exc
    probe = path.parent / f".{path.name}.partial-probe-{os.getpid()}"
    try:  # os.access says yes to root even where writes fail: try it
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise InputError(f"cannot write {path}: {path.parent} is not writable ({exc.strerror})") from exc


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary directory is removed and ``path`` is left as it was; a full disk or a
    refused write becomes an :class:`InputError` naming ``path``.
    """
    path = Path(path)
    _parent_dir(path)
    remove_stale_partials(path)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        with _disk_errors_as_messages(path):
            yield tmp
            _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on success it replaces ``path`` atomically."""
    with atomic_files([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_files(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Yield temporary names for files written as one unit: on success all replace their ``paths``.

    The renames are listed in a journal first, so a run killed among them is finished by the next writer
    in the folder: a reader never sees one file of this run beside another of the previous one for longer
    than that. On any exception nothing is replaced.
    """
    finals = [Path(p) for p in paths]
    for path in finals:
        _parent_dir(path)
        remove_stale_partials(path)
    tmps = [p.parent / f".{p.name}.partial-{os.getpid()}" for p in finals]
    try:
        with _disk_errors_as_messages(finals[0]):
            yield tmps
            for tmp in tmps:
                fsync_tree(tmp)
            if len(finals) == 1:
                os.replace(tmps[0], finals[0])
                _fsync_dir(finals[0].parent)
                return
            journal = _journal(finals[0])
            with open(finals[0].parent / f".{finals[0].name}.partial-commit-{os.getpid()}", "w") as fh:
                json.dump([[str(t), str(f)] for t, f in zip(tmps, finals, strict=True)], fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(fh.name, journal)  # the commit point: from here the unit is finished, by us or the next run
            _roll_forward(journal)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise


def check_output_path(path: str | Path, overwrite: bool = True, folder: bool = True) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: a parent that is a file, an
    existing file where a ``folder`` goes, an existing ``path`` when ``overwrite`` is off, a folder this
    process cannot write in. Raises :class:`InputError` naming the path."""
    path = Path(path)
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"cannot write {path}: {anc} is a file, not a folder")
    if folder and path.is_file():
        raise InputError(f"cannot write {path}: it is an existing file, not a folder; remove it or choose another path")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another output path or pass --overwrite")
    probe = anc / f".forecast-write-probe-{os.getpid()}"
    try:  # os.access says yes to root even where writes fail: try it
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise InputError(f"cannot write {path}: {anc} is not writable ({exc.strerror})") from exc
    return path
