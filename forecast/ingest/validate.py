"""Checks that refuse bad input with a message naming the file, variable and time.

Pure functions over the opened sources: assembling one channel's time series from many files,
and checking its time axis (duplicates, gaps, non-uniform step) against the configured step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.errors import InputError
from forecast.ingest.readers import SourceFile
from forecast.schema import LEVEL, TIME, fmt_step, fmt_time

__all__ = ["assemble_variable", "check_time_axis", "find_unreadable", "fmt_step", "fmt_time"]


def _select_level(da: xr.DataArray, level: float | None, variable: str, path: Path) -> xr.DataArray:
    if LEVEL in da.dims:
        levels = [float(x) for x in da[LEVEL].values]
        if level is None:
            if len(levels) == 1:
                return da.isel({LEVEL: 0}, drop=True)
            raise InputError(f"{path}: variable {variable!r} has levels {levels} hPa; set `level:` for it")
        if not np.any(np.isclose(levels, level)):
            raise InputError(f"{path}: variable {variable!r} has no level {level:g} hPa (levels: {levels})")
        return da.sel({LEVEL: level}, method="nearest", drop=True)
    if level is not None:
        raise InputError(f"{path}: variable {variable!r} has no pressure levels, but level {level:g} was asked")
    return da


def assemble_variable(
    files: Sequence[SourceFile], variable: str, level: float | None
) -> tuple[xr.DataArray, dict[np.datetime64, Path]]:
    """One variable (at one level) from all files that hold it, concatenated and sorted along time.

    Returns the lazy array ``(time, latitude, longitude)`` and a map time -> file for messages.
    Raises :class:`InputError` if no file holds it or a time appears in two files.
    """
    holders = [f for f in files if variable in f.dataset.data_vars]
    if not holders:
        found = sorted({v for f in files for v in f.variables})
        raise InputError(f"variable {variable!r} is in none of the {len(files)} source files (found: {found})")
    pieces, origin = [], {}
    for f in holders:
        da = _select_level(f.dataset[variable], level, variable, f.path)
        if TIME not in da.dims:
            raise InputError(f"{f.path}: variable {variable!r} has no time axis")
        for t in da[TIME].values:
            if t in origin:
                where = f"{origin[t]} and {f.path}" if origin[t] != f.path else str(f.path)
                raise InputError(f"variable {variable!r}: time {fmt_time(t)} appears twice (in {where})")
            origin[t] = f.path
        pieces.append(da)
    pieces.sort(key=lambda d: d[TIME].values[0])
    da = pieces[0] if len(pieces) == 1 else xr.concat(pieces, dim=TIME, coords="minimal", compat="override",
                                                       join="override")
    return da.sortby(TIME), origin


def check_time_axis(
    times: np.ndarray, step: pd.Timedelta, variable: str, origin: dict[np.datetime64, Path]
) -> np.ndarray:
    """Validate sorted ``times`` against ``step``; return the times to keep (a subsample if finer).

    Sources finer than ``step`` (e.g. hourly for a 6-hourly store) are subsampled at the step's
    synoptic times (00/06/12/18 UTC for 6 h; none there is an error); anything else that is not
    exactly regular is refused: gaps are listed with the files on
    either side, and a step that does not divide the configured one is named.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    if times.size < 2:
        return times
    diffs = np.diff(times).astype("timedelta64[ns]")
    if np.any(diffs <= np.timedelta64(0, "ns")):
        i = int(np.argmax(diffs <= np.timedelta64(0, "ns")))
        raise InputError(f"variable {variable!r}: time {fmt_time(times[i + 1])} is duplicated "
                         f"(in {origin.get(times[i + 1], '?')})")
    step_ns = np.timedelta64(int(step.value), "ns")
    native = diffs.min()
    if step_ns % native != np.timedelta64(0, "ns"):
        raise InputError(
            f"variable {variable!r}: source step {fmt_step(native)} near {fmt_time(times[0])} "
            f"({origin.get(times[0], '?')}) does not divide the configured step {fmt_step(step)}"
        )
    off_grid = diffs % native != np.timedelta64(0, "ns")
    if np.any(off_grid):
        i = int(np.argmax(off_grid))
        raise InputError(
            f"variable {variable!r}: non-uniform time step: {fmt_time(times[i])} -> {fmt_time(times[i + 1])} "
            f"({fmt_step(diffs[i])}, file {origin.get(times[i + 1], '?')}) is not a multiple of "
            f"{fmt_step(native)}"
        )
    keep = times
    if native < step_ns:
        # Subsample at the step's synoptic times (multiples of the step since midnight: 00/06/12/18 UTC for
        # 6 h), never at the phase of whatever time the sources happen to start with.
        keep = times[times.astype(np.int64) % step_ns.astype(np.int64) == 0]
        if keep.size == 0:
            raise InputError(
                f"variable {variable!r}: the sources ({fmt_step(native)} steps from {fmt_time(times[0])}, "
                f"{origin.get(times[0], '?')}) hold no time at the synoptic hours of the {fmt_step(step)} step "
                f"(multiples of {fmt_step(step)} from 00 UTC); set time.resample: nearest or linear to use them")
    kd = np.diff(keep)
    if keep.size >= 2 and np.any(kd != step_ns):
        i = int(np.argmax(kd != step_ns))
        missing = np.arange(keep[i] + step_ns, keep[i + 1], step_ns)
        shown = ", ".join(fmt_time(t) for t in missing[:4]) + (" ..." if missing.size > 4 else "")
        raise InputError(
            f"variable {variable!r}: gap in time: {missing.size} step(s) of {fmt_step(step)} missing between "
            f"{fmt_time(keep[i])} ({origin.get(keep[i], '?')}) and {fmt_time(keep[i + 1])} "
            f"({origin.get(keep[i + 1], '?')}): {shown}"
        )
    return keep


def find_unreadable(paths: Sequence[Path], open_fn) -> list[tuple[Path, str]]:
    """Read every file in full to find the ones whose data (not just header) are damaged.

    Only called after a read failed, so the normal path never pays for it.
    """
    bad = []
    for path in paths:
        try:
            ds = open_fn(path)
            for da in ds.data_vars.values():
                da.values  # noqa: B018 - forcing the read is the point
        except Exception as exc:  # noqa: BLE001 - any failure marks the file as damaged
            bad.append((path, f"{type(exc).__name__}: {exc}"))
    return bad
