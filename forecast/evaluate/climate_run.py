"""``forecast climate``: a long run's climate against the truth's, streamed in blocks of times, stored tidily.

A *run* is a forecast product with one initial time and a long lead axis (valid time = initial time + lead
time, lead 0 left out; members pooled) or a training store (a second truth-like run: the noise floor). Each
run is compared with the truth store on the valid times both hold: the fields are read ``block_steps`` times
at a time and folded into a :class:`~forecast.evaluate.climate.ClimateAccumulator`, run and truth alike, so
memory holds one block whatever the run's length. The result has one entry per source along ``source``
(``model``, and ``reference`` when one is given), the truth's statistics on that source's times beside it as
``truth_*``; it is written as ``climate.nc`` and a long table ``climate.csv``, each atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast import __version__
from forecast.config import ConfigError, dump_config, load_config, validate_config
from forecast.errors import InputError
from forecast.evaluate.align import _check_grid, _check_units, _select_variables, canonical_product, open_truth
from forecast.evaluate.climate import (
    DAYS_PER_YEAR,
    VARIABLE,
    WINDOW,
    ClimateAccumulator,
    bias_scores,
    histogram_percentiles,
    linear_trend,
    seasonal_scores,
    spectrum_scores,
    stability_verdict,
    variability_scores,
    window_means,
)
from forecast.evaluate.config import ClimateConfig
from forecast.evaluate.score import forecast_label
from forecast.evaluate.spectrum import SphericalSpectrum
from forecast.products.io import open_product
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON, MEMBER, TIME, VALID_TIME
from forecast.storage import atomic_files

__all__ = ["ClimateResult", "Run", "climate_summary", "climate_table", "compare", "load_climate_config", "open_run",
           "read_climate", "run_climate", "write_climate"]

SOURCE = "source"
# Scalar scores per (source, variable) in the table, with their units ({u}: the variable's).
SCALARS: dict[str, str] = {
    "bias_rmse": "{u}", "mean_bias": "{u}", "seasonal_rmse": "{u}", "annual_amplitude": "{u}",
    "truth_annual_amplitude": "{u}", "amplitude_ratio": "1", "annual_phase": "deg", "truth_annual_phase": "deg",
    "phase_difference": "deg", "std_ratio": "1", "spectrum_max_log2_ratio": "1",
    **{f"{who}trend_global_{k}{what}": unit for who in ("", "truth_") for k in ("mean", "std")
       for what, unit in (("", "{u} per decade"), ("_p", "1"), ("_significant", "1"))},
    "percentile_low": "{u}", "truth_percentile_low": "{u}", "percentile_high": "{u}", "truth_percentile_high": "{u}",
    "stable_mean": "1", "stable_std": "1", "stable_spectrum": "1", "stable": "1",
}


@dataclass
class Run:
    """One run's fields ``(time, [member], latitude, longitude)`` on its valid times, lazily."""

    name: str
    path: str
    data: xr.Dataset

    @property
    def times(self) -> np.ndarray:
        return self.data[TIME].values.astype("datetime64[ns]")


def _product_run(path: Path, allow_incomplete: bool) -> xr.Dataset:
    ds = canonical_product(open_product(path, allow_incomplete=allow_incomplete))
    if ds.sizes[INIT_TIME] != 1:
        raise InputError(f"{path} has {ds.sizes[INIT_TIME]} initial times; a climate run is one long rollout "
                         "from one initial time")
    ds = ds.isel({INIT_TIME: 0}, drop=True)
    last = int(ds.attrs.get("last_lead_written", ds.sizes[LEAD_TIME] - 1))
    ds = ds.isel({LEAD_TIME: slice(0, last + 1)})
    ds = ds.isel({LEAD_TIME: np.flatnonzero(ds[LEAD_TIME].values > np.timedelta64(0, "ns"))})
    valid = ds[VALID_TIME].values.astype("datetime64[ns]")
    return ds.drop_vars([VALID_TIME, LEAD_TIME]).rename({LEAD_TIME: TIME}).assign_coords({TIME: valid})


def open_run(path: str | Path, allow_incomplete: bool = False) -> Run:
    """A forecast product (one initial time) or a training store as a :class:`Run`, lazily."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    try:
        raw = xr.open_zarr(path)
    except Exception as exc:  # any reader failure: not a zarr store xarray can read
        raise InputError(f"{path} is not a readable zarr store ({type(exc).__name__}: {exc})".replace("\n", " ")) \
            from exc
    if "channels" in raw.attrs and TIME in raw.dims and INIT_TIME not in raw.dims:
        truth = open_truth(path)
        return Run(path.stem, str(path), truth[list(truth.attrs["channels"])])
    data = _product_run(path, allow_incomplete)
    return Run(forecast_label(data, path), str(path), data)


def _checked(run: Run, truth: xr.Dataset, variables: list[str] | None) -> list[str]:
    """The variables compared; refuses another grid, missing variables or other units, naming both files."""
    try:
        _check_grid(run.data, truth)
        chosen = _select_variables(run.data, truth, variables)
        _check_units(run.data, truth, chosen)
    except InputError as exc:
        raise InputError(f"{run.path} against the truth {truth.attrs.get('path')}: {exc}") from exc
    return chosen


def _span(t: np.ndarray) -> str:
    return f"{pd.Timestamp(t[0]):%Y-%m-%dT%H:%M} .. {pd.Timestamp(t[-1]):%Y-%m-%dT%H:%M}" if t.size else "no times"


def _common_times(run: Run, truth: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid times both hold ``(T,)`` and their positions in run and truth."""
    t_run, t_truth = run.times, truth[TIME].values.astype("datetime64[ns]")
    common = np.intersect1d(t_run, t_truth)
    if not common.size:
        raise InputError(f"{run.path} ({_span(t_run)}) and the truth {truth.attrs.get('path')} ({_span(t_truth)}) "
                         "have no valid time in common")
    return common, np.searchsorted(t_run, common), np.searchsorted(t_truth, common)


def _read(data: xr.Dataset, path: str, variables: list[str], positions: np.ndarray) -> np.ndarray:
    """Fields ``(t, M, C, H, W)`` float64 at time ``positions``; refuses NaN/Inf, naming variable and time."""
    parts = []
    for v in variables:
        a = data[v].isel({TIME: positions})
        a = a.transpose(TIME, MEMBER, LAT, LON) if MEMBER in a.dims else a.expand_dims(MEMBER, 1)
        values = np.asarray(a.values, np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            t = pd.Timestamp(data[TIME].values[positions[np.argwhere(bad)[0][0]]])
            raise InputError(f"{path}: variable {v!r} is not finite at {t:%Y-%m-%dT%H:%M}")
        parts.append(values)
    return np.stack(parts, 2)


def _edges(sample: np.ndarray, bins: int, sigmas: float) -> np.ndarray:
    """Histogram edges ``(C, bins + 1)``: mean +- ``sigmas`` std of ``sample`` ``(t, M, C, H, W)`` per channel."""
    mean, std = sample.mean((0, 1, 3, 4)), sample.std((0, 1, 3, 4))
    std = np.where(std > 0, std, np.maximum(np.abs(mean), 1.0))
    return mean[:, None] + sigmas * std[:, None] * np.linspace(-1.0, 1.0, bins + 1)[None, :]


class _Streamer:
    """Streams runs through accumulators block by block, with one progress bar for all passes."""

    def __init__(self, config: ClimateConfig, variables: list[str], lat: np.ndarray, lon: np.ndarray, bar=None):
        self.config, self.variables, self.bar = config, variables, bar
        self.lat, self.lon = lat, lon
        self.spectrum = SphericalSpectrum(lat, lon)
        self.edges: np.ndarray | None = None

    def climate(self, data: xr.Dataset, path: str, positions: np.ndarray, times: np.ndarray) -> xr.Dataset:
        c = self.config
        acc: ClimateAccumulator | None = None
        for i in range(0, positions.size, c.block_steps):
            x = _read(data, path, self.variables, positions[i: i + c.block_steps])
            if self.edges is None:
                self.edges = _edges(x, c.histogram_bins, c.histogram_sigmas)
            if acc is None:
                acc = ClimateAccumulator(self.variables, self.lat, self.lon, self.edges, self.spectrum,
                                         c.spectrum_every)
            acc.update(x, times[i: i + c.block_steps])
            if self.bar is not None:
                self.bar.update()
        assert acc is not None
        return acc.result()


def _years(times: np.ndarray) -> np.ndarray:
    return (times - np.datetime64("2000-01-01", "ns")) / np.timedelta64(1, "D") / DAYS_PER_YEAR


def _drift(run: xr.Dataset, truth: xr.Dataset, days: float, alpha: float) -> tuple[xr.Dataset, xr.Dataset,
                                                                                    xr.Dataset]:
    """Window means of global mean and std of run and truth ``(window, variable)``; their trends per decade, the
    trends' p-values and whether they are significant at level ``alpha``."""
    wins = [xr.Dataset({k: window_means(c[k], days) for k in ("global_mean", "global_std")}) for c in (run, truth)]
    trends = xr.Dataset()
    for prefix, w in (("", wins[0]), ("truth_", wins[1])):
        years = _years(w["window_start"].values + np.timedelta64(int(days * 43200e9), "ns"))
        for k in ("global_mean", "global_std"):
            fits = [linear_trend(w[k].sel({VARIABLE: v}).values, years) for v in w[VARIABLE].values]
            trends[f"{prefix}trend_{k}"] = (VARIABLE, [f[0] for f in fits])
            trends[f"{prefix}trend_{k}_p"] = (VARIABLE, [f[1] for f in fits])
            trends[f"{prefix}trend_{k}_significant"] = trends[f"{prefix}trend_{k}_p"] < alpha
    return wins[0], wins[1], trends.assign_coords({VARIABLE: run[VARIABLE].values})


def _distribution(run: xr.Dataset, truth: xr.Dataset, q: tuple[float, float]) -> xr.Dataset:
    out = xr.Dataset({"histogram": run["histogram"], "truth_histogram": truth["histogram"],
                      "bin_edges": run["bin_edges"]})
    for prefix, c in (("", run), ("truth_", truth)):
        p = np.stack([histogram_percentiles(h, e, q) for h, e in zip(c["histogram"].values, c["bin_edges"].values,
                                                                     strict=True)])
        out[f"{prefix}percentile_low"] = (VARIABLE, p[:, 0])
        out[f"{prefix}percentile_high"] = (VARIABLE, p[:, 1])
    return out


def compare(run: xr.Dataset, truth: xr.Dataset, config: ClimateConfig) -> xr.Dataset:
    """Every climate score of ``run`` against ``truth`` (climates on the same times), one dataset."""
    spectra = spectrum_scores(run, truth, config.stability.spectrum_min_degree)
    run_w, truth_w, trends = _drift(run, truth, config.window_days, config.trend_alpha)
    verdict = stability_verdict(run_w, truth_w, spectra, config.stability)
    windows = xr.Dataset({
        "window_global_mean": run_w["global_mean"], "window_global_std": run_w["global_std"],
        "truth_window_global_mean": truth_w["global_mean"], "truth_window_global_std": truth_w["global_std"],
    }).reset_coords(drop=True).assign(window_start=(WINDOW, run_w["window_start"].values))
    parts = [bias_scores(run, truth), seasonal_scores(run, truth), variability_scores(run, truth), spectra, windows,
             trends, _distribution(run, truth, config.percentiles), verdict]
    out = xr.merge([p.reset_coords(drop=True) for p in parts], compat="override", join="outer")
    out.attrs.update({"n_times": int(run.sizes[TIME]), "samples": int(run.attrs["samples"]),
                      "first_time": f"{pd.Timestamp(run[TIME].values[0]):%Y-%m-%dT%H:%M}",
                      "last_time": f"{pd.Timestamp(run[TIME].values[-1]):%Y-%m-%dT%H:%M}"})
    return out


def load_climate_config(path: str | Path | None, overrides: list[str]) -> ClimateConfig:
    """``path`` (YAML; ``None``: the defaults) with ``overrides``; a validation error as one line."""
    try:
        if path is not None:
            return load_config(ClimateConfig, path, overrides)
        return validate_config(ClimateConfig, {}, overrides, source="the climate options")
    except ConfigError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "errors.pydantic.dev" not in ln]
        raise ConfigError(" ".join(lines)) from exc


@dataclass
class ClimateResult:
    climate: xr.Dataset
    netcdf: Path
    csv: Path
    seconds: float


def _sources(config: ClimateConfig, product: str | Path, reference: str | Path | None,
             label: str | None) -> list[tuple[str, Run]]:
    run = open_run(product, config.allow_incomplete)
    if label:
        run.name = label
    out = [("model", run)]
    if reference:
        out.append(("reference", open_run(reference, config.allow_incomplete)))
    return out


def run_climate(config: ClimateConfig, product: str | Path, truth: str | Path | None = None,
                reference: str | Path | None = None, out_dir: str | Path | None = None, label: str | None = None,
                progress: bool = True) -> ClimateResult:
    """``forecast climate``: open the runs and the truth, stream each pair, write ``climate.nc`` / ``.csv``."""
    t0 = time.perf_counter()
    truth_path = truth or config.truth
    if truth_path is None:
        raise InputError("no truth store: pass --truth STORE (or set `truth:` in the config)")
    tr = open_truth(truth_path)
    sources = _sources(config, product, reference or config.reference, label)
    variables = _checked(sources[0][1], tr, config.variables)
    for _, run in sources[1:]:
        _checked(run, tr, variables)
    plans = [(role, run, *_common_times(run, tr)) for role, run in sources]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(2 * -(-p[2].size // config.block_steps) for p in plans), desc="climate", unit="block")
    streamer = _Streamer(config, variables, tr[LAT].values, tr[LON].values, bar)
    results, truths = [], {}
    try:
        for role, run, times, pos_run, pos_truth in plans:
            key = times.tobytes()
            if key not in truths:  # the truth on these times (once when model and reference share them)
                truths[key] = streamer.climate(tr, str(truth_path), pos_truth, times)
            elif bar is not None:
                bar.update(-(-times.size // config.block_steps))
            climate = streamer.climate(run.data, run.path, pos_run, times)
            results.append(compare(climate, truths[key], config).assign_attrs(role=role))
    finally:
        if bar is not None:
            bar.close()
    ds = xr.concat(results, dim=SOURCE, join="outer", combine_attrs="drop")
    ds = ds.assign_coords({SOURCE: [r for r, _ in sources], "source_name": (SOURCE, [r.name for _, r in sources]),
                           "source_path": (SOURCE, [r.path for _, r in sources]),
                           "units": (VARIABLE, [str(tr[v].attrs.get("units", "")) for v in variables])})
    for k in ("n_times", "first_time", "last_time"):
        ds[k] = (SOURCE, [r.attrs[k] for r in results])
    verdict = {role: bool(ds["stable"].sel({SOURCE: role}).all()) for role, _ in sources}
    ds.attrs = {"forecast": sources[0][1].name, "product": str(product), "truth": str(truth_path),
                "reference": str(reference or config.reference or ""), "forecast_version": __version__,
                "verdict": "pass" if verdict["model"] else "fail",
                "verdict_reference": "" if len(sources) == 1 else ("pass" if verdict["reference"] else "fail"),
                "climate_config": dump_config(config)}
    nc, csv = write_climate(ds, out_dir or config.run_dir(sources[0][1].name))
    return ClimateResult(ds, nc, csv, time.perf_counter() - t0)


def climate_table(ds: xr.Dataset) -> pd.DataFrame:
    """The scalar scores as a long table: ``source, name, variable, metric, units, value`` (booleans as 0/1)."""
    rows = []
    for role, name in zip(ds[SOURCE].values, ds["source_name"].values, strict=True):
        for var, units in zip(ds[VARIABLE].values, ds["units"].values, strict=True):
            for metric, unit in SCALARS.items():
                if metric in ds:
                    value = float(ds[metric].sel({SOURCE: role, VARIABLE: var}).values)
                    rows.append((role, name, var, metric, unit.format(u=units), value))
    return pd.DataFrame(rows, columns=[SOURCE, "name", VARIABLE, "metric", "units", "value"])


SUMMARY = ("bias_rmse", "mean_bias", "seasonal_rmse", "std_ratio", "spectrum_max_log2_ratio", "trend_global_mean",
           "trend_global_mean_p", "percentile_low", "percentile_high", "stable")


def climate_summary(ds: xr.Dataset) -> str:
    """A printable table of the main scores per source and variable, and the verdict."""
    table = climate_table(ds)
    wide = table[table["metric"].isin(SUMMARY)].pivot_table(index=[SOURCE, VARIABLE], columns="metric",
                                                             values="value", sort=False, dropna=False)
    verdict = f"stability verdict: model {ds.attrs['verdict']}"
    if ds.attrs.get("verdict_reference"):
        verdict += f", reference {ds.attrs['verdict_reference']}"
    return wide[[m for m in SUMMARY if m in wide]].to_string(float_format=lambda v: f"{v:.4g}") + "\n" + verdict


def write_climate(ds: xr.Dataset, out_dir: str | Path) -> tuple[Path, Path]:
    """``climate.nc`` (everything; booleans as int8) and ``climate.csv`` in ``out_dir``, as one unit
    (:func:`forecast.storage.atomic_files`): both replace the previous pair or neither does."""
    out_dir = Path(out_dir)
    nc, csv = out_dir / "climate.nc", out_dir / "climate.csv"
    stored = ds.map(lambda v: v.astype(np.int8) if v.dtype == bool else v)
    stored.attrs = ds.attrs
    with atomic_files([nc, csv]) as (tmp_nc, tmp_csv):
        climate_table(ds).to_csv(tmp_csv, index=False, float_format="%.6g")
        stored.to_netcdf(tmp_nc, engine="netcdf4")
    return nc, csv


def read_climate(path: str | Path) -> xr.Dataset:
    """A ``climate.nc`` (or the folder holding it, or the ``climate.csv`` beside it) written by
    :func:`write_climate`, in memory."""
    path = Path(path)
    if path.is_dir():
        path = path / "climate.nc"
    elif path.name == "climate.csv":  # the table beside it: read the whole result
        path = path.with_name("climate.nc")
    if not path.exists():
        raise InputError(f"no climate results at {path}; run `forecast climate` first")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            out = ds.load()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a climate file of `forecast climate` ({exc})") from None
    if SOURCE not in out.dims or "bias" not in out:
        raise InputError(f"{path} is not a climate file of `forecast climate`")
    return out


SIDE_BY_SIDE = ("bias_rmse", "mean_bias", "seasonal_rmse", "std_ratio", "spectrum_max_log2_ratio", "stable")


def compare_climates(paths: list[str | Path]) -> pd.DataFrame:
    """Several ``forecast climate`` results side by side: one row per run (and one for the noise floor,
    the reference run of the first result that has one) and variable, with ``bias_rmse_vs_floor``, the
    time-mean global RMSE over the noise floor's (issue 9 asks for <= 2)."""
    frames = []
    for path in paths:
        table = climate_table(read_climate(path))
        table = table[table["metric"].isin(SIDE_BY_SIDE)]
        wide = table.pivot_table(index=[SOURCE, "name", VARIABLE], columns="metric", values="value", sort=False)
        frames.append(wide.reset_index())
    if not frames:
        raise InputError("no climate results to compare")
    rows = pd.concat(frames, ignore_index=True)
    floor_rows = rows[rows[SOURCE] == "reference"]
    models = rows[rows[SOURCE] == "model"]
    if not floor_rows.empty:
        first = floor_rows[floor_rows["name"] == floor_rows["name"].iloc[0]].drop_duplicates(VARIABLE)
        floor = first.set_index(VARIABLE)["bias_rmse"]
        models = pd.concat([models, first.assign(name=f"noise floor ({first['name'].iloc[0]})")], ignore_index=True)
        models["bias_rmse_vs_floor"] = models["bias_rmse"] / models[VARIABLE].map(floor)
    return models.drop(columns=[SOURCE]).reset_index(drop=True)
