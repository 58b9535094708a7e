"""Climate statistics of long runs and the scores comparing a run's climate with the truth's (issue 9).

:class:`ClimateAccumulator` consumes a run block after block of times (``(t, M, C, H, W)``, members pooled)
and keeps running sums only, so a ten-year 6-hourly product streams in bounded memory: time sums and sums
of squares per grid point, monthly sums (12 calendar months), the time-summed spherical-harmonic power
spectrum (:mod:`forecast.evaluate.spectrum`), area-weighted histograms on fixed bins, and the
area-weighted global mean and global (spatial) std at every time, averaged over members. Its
:meth:`~ClimateAccumulator.result` is a *climate* dataset. The functions below compare two climates on the
same times (a run and the truth) and are pure: bias, seasonal cycle (annual harmonic), variability,
spectra, drift (window means, a linear trend with a t-test whose sample size accounts for lag-1
autocorrelation) and distributions, and :func:`stability_verdict`. Weights are the cell areas of
:func:`forecast.grids.area_weights`; every statistic is in the variable's units unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from forecast.evaluate.config import StabilityCriteria
from forecast.evaluate.spectrum import SphericalSpectrum
from forecast.grids import area_weights
from forecast.schema import LAT, LON, TIME

__all__ = [
    "ClimateAccumulator", "annual_harmonic", "bias_scores", "climate_of", "histogram_percentiles", "linear_trend",
    "seasonal_scores", "spectrum_scores", "stability_verdict", "variability_scores", "window_means",
]

VARIABLE, MONTH, DEGREE, BIN, WINDOW = "variable", "month", "degree", "bin", "window"
DAYS_PER_YEAR = 365.2425


def _grid_weights(lat: np.ndarray, nlon: int) -> np.ndarray:
    """Cell-area weights ``(H, W)`` summing to 1."""
    w = np.repeat(area_weights(lat)[:, None], nlon, axis=1)
    return w / w.sum()


class ClimateAccumulator:
    """Running sums of one run over time (see the module docstring).

    ``edges`` ``(C, B + 1)`` are equally spaced histogram bin edges per channel (values outside fall in the end
    bins);
    spectra are taken of every ``spectrum_every``-th time.
    """

    def __init__(self, variables: Sequence[str], lat: np.ndarray, lon: np.ndarray, edges: np.ndarray,
                 spectrum: SphericalSpectrum | None = None, spectrum_every: int = 1):
        self.variables, self.lat, self.lon = list(variables), np.asarray(lat), np.asarray(lon)
        c, h, w = len(self.variables), self.lat.size, self.lon.size
        self.weights = _grid_weights(self.lat, w)
        self.edges = np.asarray(edges, np.float64)
        self.spectrum = spectrum or SphericalSpectrum(self.lat, self.lon)
        self.spectrum_every = spectrum_every
        self.n = 0  # samples per grid point (times x members)
        self.shift: np.ndarray | None = None  # (C, H, W): sums are of x - shift, against cancellation
        self.sum, self.sumsq = np.zeros((c, h, w)), np.zeros((c, h, w))
        self.month_sum, self.month_n = np.zeros((12, c, h, w)), np.zeros(12)
        self.spec_sum, self.spec_n = np.zeros((c, self.spectrum.lmax)), 0
        self.hist = np.zeros((c, self.edges.shape[1] - 1))
        self._times: list[np.ndarray] = []
        self._gmean: list[np.ndarray] = []
        self._gstd: list[np.ndarray] = []

    @property
    def n_times(self) -> int:
        return sum(t.size for t in self._times)

    def update(self, x: np.ndarray, times: np.ndarray) -> None:
        """Add fields ``x`` ``(t, M, C, H, W)`` (float, the variables' units) at valid ``times`` ``(t,)``."""
        x = np.asarray(x, np.float64)
        t, m = x.shape[:2]
        if self.shift is None:
            self.shift = x.mean((0, 1))
        first = self.n_times
        d = x - self.shift
        self.sum += d.sum((0, 1))
        self.sumsq += (d**2).sum((0, 1))
        self.n += t * m
        month = pd.DatetimeIndex(times).month.to_numpy() - 1
        for k in np.unique(month):
            self.month_sum[k] += d[month == k].sum((0, 1))
            self.month_n[k] += (month == k).sum() * m
        gm = (x * self.weights).sum((-2, -1))  # (t, M, C)
        gs = np.sqrt((((x - gm[..., None, None]) ** 2) * self.weights).sum((-2, -1)))
        self._times.append(np.asarray(times, "datetime64[ns]"))
        self._gmean.append(gm.mean(1))
        self._gstd.append(gs.mean(1))
        pick = (first + np.arange(t)) % self.spectrum_every == 0
        if pick.any():
            self.spec_sum += self.spectrum(x[pick]).sum((0, 1))
            self.spec_n += int(pick.sum()) * m
        self._add_histogram(x)

    def _add_histogram(self, x: np.ndarray) -> None:
        w = np.broadcast_to(self.weights, x.shape[-2:])
        for c in range(x.shape[2]):
            e = self.edges[c]  # equally spaced
            nb = e.size - 1
            idx = np.clip(((x[:, :, c] - e[0]) * (nb / (e[-1] - e[0]))).astype(np.int64), 0, nb - 1)
            self.hist[c] += np.bincount(idx.reshape(-1), np.broadcast_to(w, idx.shape).reshape(-1), minlength=nb)

    def result(self) -> xr.Dataset:
        """The climate: ``time_mean``, ``temporal_std`` ``(variable, lat, lon)``; ``monthly_mean`` ``(month,
        variable, lat, lon)`` (NaN for months without data); ``zonal_mean`` ``(variable, lat)``;
        ``power_spectrum`` ``(variable, degree)``; ``global_mean``, ``global_std`` ``(time, variable)``;
        ``histogram`` ``(variable, bin)`` (area-weighted fractions) with ``bin_edges`` ``(variable, bin_edge)``."""
        if self.n == 0:
            raise ValueError("no times were accumulated")
        mean_d = self.sum / self.n
        var = np.maximum(self.sumsq / self.n - mean_d**2, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            monthly = self.shift + self.month_sum / self.month_n[:, None, None, None]
        time_mean = self.shift + mean_d
        grid, spec = (VARIABLE, LAT, LON), self.spec_sum / max(self.spec_n, 1)
        return xr.Dataset(
            {"time_mean": (grid, time_mean), "temporal_std": (grid, np.sqrt(var)),
             "monthly_mean": ((MONTH, *grid), monthly), "month_samples": (MONTH, self.month_n),
             "zonal_mean": ((VARIABLE, LAT), time_mean.mean(-1)),
             "power_spectrum": ((VARIABLE, DEGREE), spec if self.spec_n else np.full_like(spec, np.nan)),
             "global_mean": ((TIME, VARIABLE), np.concatenate(self._gmean)),
             "global_std": ((TIME, VARIABLE), np.concatenate(self._gstd)),
             "histogram": ((VARIABLE, BIN), self.hist / self.hist.sum(-1, keepdims=True)),
             "bin_edges": ((VARIABLE, "bin_edge"), self.edges)},
            coords={VARIABLE: np.array(self.variables, dtype=object), LAT: self.lat, LON: self.lon,
                    MONTH: np.arange(1, 13), DEGREE: np.arange(self.spectrum.lmax),
                    TIME: np.concatenate(self._times)},
            attrs={"samples": self.n, "spectrum_samples": self.spec_n},
        )


def climate_of(x: np.ndarray, times: np.ndarray, variables: Sequence[str], lat: np.ndarray, lon: np.ndarray,
               edges: np.ndarray, block: int = 120, spectrum_every: int = 1) -> xr.Dataset:
    """The climate of fields ``x`` ``(T, M, C, H, W)`` held in memory (tests, small runs), in blocks of times."""
    acc = ClimateAccumulator(variables, lat, lon, edges, spectrum_every=spectrum_every)
    for i in range(0, len(times), block):
        acc.update(x[i: i + block], times[i: i + block])
    return acc.result()


def _global(field: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean over latitude and longitude."""
    w = xr.DataArray(_grid_weights(field[LAT].values, field.sizes[LON]), dims=(LAT, LON))
    return (field * w).sum((LAT, LON))


def bias_scores(run: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Time means of both and the bias map ``(variable, lat, lon)``; its area-weighted RMSE and mean ``(variable,)``."""
    b = run["time_mean"] - truth["time_mean"]
    return xr.Dataset({"time_mean": run["time_mean"], "truth_time_mean": truth["time_mean"], "bias": b,
                       "bias_rmse": np.sqrt(_global(b**2)), "mean_bias": _global(b)})


def annual_harmonic(monthly: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Amplitude (the variable's units) and phase (degrees, 0-360: the time of the maximum, 30 degrees a month
    from the start of January) of the annual harmonic of monthly means ``(month, ...)``; NaN unless all 12 months
    are there. Monthly averaging damps the amplitude by ``sinc(1/12)`` (1 %), alike for run and truth."""
    theta = 2 * np.pi * (monthly[MONTH].values - 0.5) / 12.0  # month centres
    a1 = (monthly * xr.DataArray(np.exp(-1j * theta), dims=MONTH)).sum(MONTH, skipna=False) / 6.0
    return np.abs(a1), (-xr.apply_ufunc(np.angle, a1, kwargs={"deg": True})) % 360.0


def _wrap(deg: xr.DataArray) -> xr.DataArray:
    return (deg + 180.0) % 360.0 - 180.0


def seasonal_scores(run: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Seasonal cycle: RMSE of the monthly climatology against the truth's (area-weighted, over the months both
    have), the annual harmonic of each (maps of amplitude and phase; global-mean series and its amplitude and
    phase), the amplitude ratio (run / truth) and phase difference (run - truth, degrees, in [-180, 180))."""
    both = (run["month_samples"] > 0) & (truth["month_samples"] > 0)
    d = (run["monthly_mean"] - truth["monthly_mean"]).where(both)
    out = xr.Dataset({"seasonal_rmse": np.sqrt(_global(d**2).mean(MONTH))})
    for prefix, c in (("", run), ("truth_", truth)):
        amp, phase = annual_harmonic(c["monthly_mean"])
        series = _global(c["monthly_mean"])
        g_amp, g_phase = annual_harmonic(series)
        out[f"{prefix}annual_amplitude_map"] = amp
        out[f"{prefix}annual_phase_map"] = phase
        out[f"{prefix}global_monthly_mean"] = series
        out[f"{prefix}annual_amplitude"] = g_amp
        out[f"{prefix}annual_phase"] = g_phase
    out["amplitude_ratio"] = out["annual_amplitude"] / out["truth_annual_amplitude"]
    out["phase_difference"] = _wrap(out["annual_phase"] - out["truth_annual_phase"])
    return out


def variability_scores(run: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Ratio of the temporal std (run / truth): maps, and global ``sqrt(mean variance run / mean variance truth)``
    (area-weighted means of the variances); the time-mean zonal means of both ``(variable, lat)``."""
    return xr.Dataset({
        "std_ratio_map": run["temporal_std"] / truth["temporal_std"],
        "std_ratio": np.sqrt(_global(run["temporal_std"] ** 2) / _global(truth["temporal_std"] ** 2)),
        "zonal_mean": run["zonal_mean"], "truth_zonal_mean": truth["zonal_mean"],
    })


def spectrum_scores(run: xr.Dataset, truth: xr.Dataset, min_degree: int = 1) -> xr.Dataset:
    """Time-mean power spectra of both ``(variable, degree)`` (units squared), their ratio, and the largest
    ``|log2(ratio)|`` from ``min_degree`` (1: a factor 2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = run["power_spectrum"] / truth["power_spectrum"]
    worst = np.abs(np.log2(ratio.isel({DEGREE: slice(min_degree, None)}))).max(DEGREE)
    return xr.Dataset({"power_spectrum": run["power_spectrum"], "truth_power_spectrum": truth["power_spectrum"],
                       "spectrum_ratio": ratio, "spectrum_max_log2_ratio": worst})


def window_means(series: xr.DataArray, days: float = 30.0) -> xr.DataArray:
    """Means of ``series`` ``(time, ...)`` over consecutive windows of ``days`` from its first time, ``(window,
    ...)`` with the windows' start times as ``window_start``; a last window holding under half the samples of a
    full one is dropped."""
    t = series[TIME].values
    k = ((t - t[0]) // np.timedelta64(int(days * 86400e9), "ns")).astype(int)
    counts = np.bincount(k)
    keep = np.flatnonzero(counts >= 0.5 * counts.max())
    out = series.groupby(xr.DataArray(k, dims=TIME, name=WINDOW)).mean(TIME).sel({WINDOW: keep})
    starts = t[0] + keep * np.timedelta64(int(days * 86400e9), "ns")
    return out.assign_coords({WINDOW: np.arange(keep.size), "window_start": (WINDOW, starts)})


def linear_trend(values: np.ndarray, years: np.ndarray, seasonal: bool | None = None) -> tuple[float, float, float]:
    """Least-squares trend of ``values`` ``(n,)`` at ``years`` ``(n,)`` (fractional years): ``(slope per decade,
    two-sided p-value, effective sample size)``.

    With ``seasonal`` (default: when the series spans a year or more) an annual harmonic is fitted alongside,
    so the seasonal cycle does not pass for a trend. The t-test uses ``n_eff = n (1 - r1) / (1 + r1)`` with
    ``r1`` the lag-1 autocorrelation of the residuals (0 if negative), and ``n_eff - p`` degrees of freedom.
    """
    y, t = np.asarray(values, np.float64), np.asarray(years, np.float64)
    ok = np.isfinite(y)
    y, t = y[ok], t[ok]
    seasonal = (t.max() - t.min() >= 1.0) if seasonal is None and t.size else bool(seasonal)
    cols = [np.ones_like(t), t - t.mean()]
    if seasonal:
        cols += [np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)]
    x = np.stack(cols, 1)
    p = x.shape[1]
    if y.size < p + 2:
        return np.nan, np.nan, float(y.size)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    r1 = float(np.nan_to_num(np.corrcoef(resid[:-1], resid[1:])[0, 1])) if resid.std() > 0 else 0.0
    n_eff = max(y.size * (1 - max(r1, 0.0)) / (1 + max(r1, 0.0)), p + 1.0)
    # Santer et al. (2000): the residual variance over n_eff - p degrees of freedom.
    se = np.sqrt((resid @ resid) / (n_eff - p) * np.linalg.inv(x.T @ x)[1, 1])
    if se == 0:
        return float(beta[1]) * 10.0, 0.0 if beta[1] != 0 else 1.0, n_eff
    t_stat = beta[1] / se
    return float(beta[1]) * 10.0, float(2 * stats.t.sf(abs(t_stat), n_eff - p)), n_eff


def histogram_percentiles(hist: np.ndarray, edges: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Percentiles ``q`` (0-100) of the distribution binned as ``hist`` ``(B,)`` on ``edges`` ``(B + 1,)``,
    interpolating linearly within a bin (exact to a bin width)."""
    cdf = np.concatenate([[0.0], np.cumsum(hist)]) / max(float(np.sum(hist)), 1e-300)
    return np.interp(np.asarray(q, np.float64) / 100.0, cdf, edges)


def stability_verdict(run_windows: xr.Dataset, truth_windows: xr.Dataset, spectra: xr.Dataset,
                      criteria: StabilityCriteria) -> xr.Dataset:
    """Issue 9's verdict per variable (see :class:`~forecast.evaluate.config.StabilityCriteria`): ``stable_mean``,
    ``stable_std``, ``stable_spectrum`` and ``stable`` (all three), booleans ``(variable,)``, with the allowed
    ranges ``{global_mean,global_std}_{low,high}``. Windows datasets hold ``global_mean``, ``global_std``
    ``(window, variable)``."""
    out = xr.Dataset()
    for name in ("global_mean", "global_std"):
        lo, hi = truth_windows[name].min(WINDOW), truth_windows[name].max(WINDOW)
        # A conserved global mean spans only float rounding: the floor keeps that from being the margin.
        floor = criteria.range_floor * truth_windows["global_std"].mean(WINDOW)
        pad = np.maximum(criteria.range_margin * (hi - lo), floor)
        low, high = lo - pad, hi + pad
        inside = ((run_windows[name] >= low) & (run_windows[name] <= high)).all(WINDOW)
        out[f"{name}_low"], out[f"{name}_high"] = low, high
        out[f"stable_{name.split('_')[1]}"] = inside & run_windows[name].notnull().all(WINDOW)
    ratio = spectra["spectrum_ratio"].isel({DEGREE: slice(criteria.spectrum_min_degree, None)})
    f = criteria.spectrum_factor
    out["stable_spectrum"] = ((ratio >= 1.0 / f) & (ratio <= f)).all(DEGREE)
    out["stable"] = out["stable_mean"] & out["stable_std"] & out["stable_spectrum"]
    return out
