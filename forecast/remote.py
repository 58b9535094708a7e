"""Data at URLs: ``gs://``, ``s3://``, ``https://``, ``file://``, ``memory://`` ... through fsspec.

Sources (WeatherBench2 and ARCO-ERA5 zarr archives live in object stores), truth stores and outputs may be
URLs. Access is anonymous by default (the public archives need no account): ``s3`` gets ``anon: true``
and ``gs`` ``token: anon`` unless the user's ``storage_options`` (or fsspec's own configuration, e.g. the
``FSSPEC_S3_ANON`` environment variable) say otherwise. Reading stays lazy: xarray opens a zarr store's
metadata, and dask later fetches only the chunks a selection needs.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import fsspec
import fsspec.config
import xarray as xr

from forecast.errors import InputError

__all__ = ["ANONYMOUS", "expand_url", "fs_for", "is_url", "metadata_digest", "open_zarr_url", "staged_upload",
           "storage_options_for", "upload_files", "upload_tree"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# What "anonymous" is called for each protocol whose default would look for credentials.
ANONYMOUS: dict[str, dict[str, Any]] = {"s3": {"anon": True}, "s3a": {"anon": True}, "gs": {"token": "anon"},
                                        "gcs": {"token": "anon"}, "az": {"anon": True}, "abfs": {"anon": True}}

# The files holding a zarr store's metadata in one read: consolidated v2, then v3 (with consolidated
# metadata inside), then the plain v2 group.
_METADATA_FILES = (".zmetadata", "zarr.json", ".zgroup")


def is_url(path: str | Path) -> bool:
    """Whether ``path`` names a location by URL (``scheme://...``) rather than a local path."""
    return isinstance(path, str) and bool(_SCHEME.match(path))


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower()


def storage_options_for(url: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """fsspec options for ``url``: anonymous access, then fsspec's configuration, then ``given``."""
    protocol = _protocol(url)
    return {**ANONYMOUS.get(protocol, {}), **fsspec.config.conf.get(protocol, {}), **(given or {})}


def fs_for(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem serving ``url`` and the path of ``url`` on it."""
    try:
        return fsspec.core.url_to_fs(url, **storage_options_for(url, storage_options))
    except (ImportError, ValueError) as exc:  # an unknown protocol or its package (s3fs, gcsfs) missing
        raise InputError(f"{url}: cannot be opened ({exc}); for gs:// install gcsfs, for s3:// s3fs") from exc


def expand_url(pattern: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """A URL pattern -> sorted URLs; globbing (``*``, ``?``, ``[..]``) where the filesystem can list.

    A pattern without wildcards is returned as it is (opening it reports a missing store); one that
    matches nothing, or a filesystem that cannot list, is an :class:`InputError`.
    """
    if not glob.has_magic(pattern.split("://", 1)[1]):
        return [pattern]
    fs, path = fs_for(pattern, storage_options)
    try:
        matches = fs.glob(path)
    except NotImplementedError as exc:
        raise InputError(f"source pattern {pattern!r}: {_protocol(pattern)}:// cannot list files; "
                         "name each store") from exc
    except OSError as exc:
        raise InputError(f"source pattern {pattern!r}: listing failed ({type(exc).__name__}: {exc})") from exc
    if not matches:
        raise InputError(f"source pattern {pattern!r} matches nothing")
    return sorted(fs.unstrip_protocol(m) for m in matches)


def open_zarr_url(url: str, storage_options: dict[str, Any] | None = None, **kwargs: Any) -> xr.Dataset:
    """``xr.open_zarr`` of a store at ``url`` (any zarr format), lazily, with :func:`storage_options_for`."""
    kwargs.setdefault("consolidated", None)
    return xr.open_zarr(url, storage_options=storage_options_for(url, storage_options), **kwargs)


def metadata_digest(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """SHA-256 of the store's metadata file: it changes when arrays are added, grown or re-encoded, which is
    how a remote archive changes, so it identifies the version read (listing every chunk would not scale)."""
    fs, path = fs_for(url, storage_options)
    for name in _METADATA_FILES:
        try:
            return hashlib.sha256(fs.cat_file(f"{path.rstrip('/')}/{name}")).hexdigest()
        except (FileNotFoundError, KeyError):
            continue
    raise InputError(f"{url}: no zarr metadata ({', '.join(_METADATA_FILES)}) found; is it a zarr store?")


def upload_tree(local: Path, url: str, last: Sequence[str] = (), overwrite: bool = False,
                storage_options: dict[str, Any] | None = None) -> None:
    """Copy the folder ``local`` to ``url``, the files named in ``last`` (relative paths) after all others.

    An object store has no rename, so a result cannot appear there in one step as it does on a disk. What
    it does offer: each object is written whole (a reader never sees half a file). So a result whose
    readers check a marker (a product's root ``zarr.json`` with ``complete: true`` and its ``COMPLETE``
    file) is uploaded with those last, and one being replaced (``overwrite``) is deleted first, so a reader
    meanwhile finds no result rather than a mix of old and new. An existing ``url`` without ``overwrite``
    is an :class:`InputError`.
    """
    fs, root = fs_for(url, storage_options)
    root = root.rstrip("/")
    if fs.exists(root):
        if not overwrite:
            raise InputError(f"{url} already exists; choose another output path or pass --overwrite")
        for name in last:  # the old result stops looking complete before anything of it goes
            if fs.exists(f"{root}/{name}"):
                fs.rm_file(f"{root}/{name}")
        fs.rm(root, recursive=True)
    files = sorted((p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()),
                   key=lambda rel: (rel in last, list(last).index(rel) if rel in last else 0, rel))
    for rel in files:
        fs.put_file(str(local / rel), f"{root}/{rel}")


def upload_files(files: Sequence[Path], url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Put local ``files`` into the folder ``url``, in the order given, each replacing the object of its name
    (whole: a reader sees the old object or the new one); returns their URLs."""
    fs, root = fs_for(url, storage_options)
    out = []
    for f in files:
        fs.put_file(str(f), f"{root.rstrip('/')}/{f.name}")
        out.append(f"{url.rstrip('/')}/{f.name}")
    return out


@contextlib.contextmanager
def staged_upload(url: str, last: Sequence[str] = (), overwrite: bool = False,
                  storage_options: dict[str, Any] | None = None) -> Iterator[Path]:
    """A local path (in a temporary folder, not yet existing) to write a result folder to; when the block
    succeeds the folder is uploaded to ``url`` (:func:`upload_tree`). ``url`` is checked before the block
    runs, so a refused output costs no work."""
    fs, root = fs_for(url, storage_options)
    if not overwrite and fs.exists(root.rstrip("/")):
        raise InputError(f"{url} already exists; choose another output path or pass --overwrite")
    with tempfile.TemporaryDirectory(prefix="forecast-upload-") as tmp:
        local = Path(tmp) / (root.rstrip("/").rsplit("/", 1)[-1] or "result")
        yield local
        upload_tree(local, url, last, overwrite, storage_options)
