"""How sure a score is: a block bootstrap over initial times, confidence intervals and paired significance.

A WeatherBench2 score is a function of *means over initial times* of per-initial-time statistics (RMSE
is the root of the mean area-weighted MSE, spread/skill a ratio of two means). Its sampling uncertainty
comes from the finite set of initial times, and successive initial times are not independent: a
forecast that is bad on Monday is often bad on Tuesday. So the bootstrap resamples initial times in
**blocks** (the circular block bootstrap of Politis and Romano, 1992), computes the means of every
statistic on each resample and applies the score's formula to them.

Block length (:func:`block_length`), after Wilks (1997, J. Climate 10, 65-82, eq. 20): from the lag-1
autocorrelation ``r`` of a statistic's series of ``n`` values, its effective sample size is
``n' = n (1 - r) / (1 + r)``, and the block length ``L`` solves ``L = (n - L + 1) ** ((2/3) (1 - n'/n))``.
Uncorrelated series (``r <= 0``) get ``L = 1`` (the ordinary bootstrap); ``L`` grows with ``r`` towards
``n ** (2/3)``. The series is taken in order of initial time, as if evenly spaced.

Pairing. The resamples depend only on ``(seed, n, L, n_resamples)``: two forecasts scored on the same
initial times with the same block length see exactly the same resampled cases, in this process or in
another one, so :func:`paired_difference` of their samples is a paired test (the difference of two
forecasts' scores on shared cases varies much less than either score).

Only numpy and xarray here: the bootstrap serves ``forecast evaluate``, ``forecast compare`` and any
tidy skill table without model code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import xarray as xr

from forecast.schema import INIT_TIME

__all__ = [
    "BOUND",
    "RESAMPLE",
    "block_length",
    "block_lengths",
    "bootstrap_samples",
    "confidence_interval",
    "lag1_autocorrelation",
    "paired_difference",
    "resample_counts",
    "wilks_block_length",
]

RESAMPLE = "resample"
BOUND = "bound"


def lag1_autocorrelation(x: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation along the last axis (``NaN`` values left out of the sums); 0 for fewer than 3 finite
    values or a constant series. Shape: ``x.shape[:-1]``."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, x, 0.0).sum(-1) / np.maximum(n, 1)
        a = np.where(ok, x - mean[..., None], 0.0)
        var = (a**2).sum(-1)
        cov = (a[..., 1:] * a[..., :-1]).sum(-1)
        r = cov / var
    return np.where((n >= 3) & (var > 0) & np.isfinite(r), r, 0.0)


def wilks_block_length(n: int, r: np.ndarray | float) -> np.ndarray:
    """Wilks's (1997) block length for ``n`` cases of lag-1 autocorrelation ``r`` (clipped to ``[0, 0.99]``): the
    root of ``L = (n - L + 1) ** ((2/3) (1 - n'/n))`` with ``n' = n (1 - r) / (1 + r)``, rounded up, in ``[1, n]``."""
    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, 0.99)
    power = (2.0 / 3.0) * (1.0 - (1.0 - r) / (1.0 + r))
    length = np.ones_like(r)
    for _ in range(60):  # fixed-point iteration: a contraction, since the right side's slope is below 1 here
        length = np.maximum(n - length + 1.0, 1.0) ** power
    return np.clip(np.ceil(length - 1e-9), 1, max(n, 1)).astype(int)


def block_length(x: np.ndarray) -> np.ndarray:
    """:func:`wilks_block_length` of the series along the last axis of ``x`` (from their
    :func:`lag1_autocorrelation`). Integer array of shape ``x.shape[:-1]``."""
    x = np.asarray(x, dtype=np.float64)
    return wilks_block_length(x.shape[-1], lag1_autocorrelation(x))


def block_lengths(statistics: Iterable[xr.DataArray], dim: str = INIT_TIME) -> xr.DataArray:
    """The largest :func:`block_length` over several statistics' series along ``dim``: one per remaining point
    (e.g. per region, variable and lead), so that every score and difference there shares one resampling."""
    out = None
    for stat in statistics:
        arr = stat.transpose(..., dim)
        lengths = xr.DataArray(block_length(arr.values), dims=arr.dims[:-1],
                               coords={k: v for k, v in arr.coords.items() if dim not in v.dims and k != dim})
        out = lengths if out is None else np.maximum(out, lengths)
    if out is None:
        raise ValueError("block_lengths needs at least one statistic")
    return out.astype(int)


def resample_counts(n: int, block: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` cases occurs in each of ``n_resamples`` circular block-bootstrap resamples.

    Each resample joins ``ceil(n / block)`` blocks of ``block`` consecutive cases starting at uniformly
    drawn positions (wrapping from the last case to the first) and keeps the first ``n`` cases.
    Shape ``(n_resamples, n)``; every row sums to ``n``. Depends only on the arguments (see pairing).
    """
    block = int(min(max(block, 1), n))
    rng = np.random.default_rng([seed, n, block, n_resamples])
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(n_resamples, blocks))
    cases = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_resamples, -1)[:, :n]
    counts = np.zeros((n_resamples, n), dtype=np.int64)
    np.add.at(counts, (np.arange(n_resamples)[:, None], cases), 1)
    return counts


def _resampled_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """NaN-skipping means of ``values`` ``(series, n)`` under each resample: ``(series, n_resamples)``."""
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, values, 0.0) @ counts.T) / (ok.astype(np.float64) @ counts.T)


def bootstrap_samples(statistics: Mapping[str, xr.DataArray],
                      combine: Callable[[dict[str, xr.DataArray]], xr.DataArray], dim: str = INIT_TIME,
                      block: int | xr.DataArray | None = None, n_resamples: int = 1000, seed: int = 0) -> xr.DataArray:
    """Bootstrap distribution of a score: ``combine`` applied to the resampled means of ``statistics``.

    ``statistics``: per-case statistics sharing their dims, one of them ``dim`` (e.g. the area-weighted MSE
    ``(init_time, region, variable, lead_time)``); ``combine`` turns their means into the score, e.g.
    ``lambda m: np.sqrt(m["mse"])`` for the RMSE. Means skip NaN cases. ``block``: one block length, or one
    per remaining point (a DataArray, e.g. from :func:`block_lengths`); default :func:`block_lengths` of the
    statistics. Returns the score's ``n_resamples`` values along ``resample`` (the last dim), NaN everywhere
    when there are fewer than 2 cases.
    """
    arrays = {k: v.transpose(..., dim) for k, v in statistics.items()}
    first = next(iter(arrays.values()))
    other = first.dims[:-1]
    n = first.sizes[dim]
    coords = {k: v for k, v in first.coords.items() if dim not in v.dims and k != dim}
    if block is None:
        block = block_lengths(arrays.values(), dim)
    lengths = (block.transpose(*other).values if isinstance(block, xr.DataArray)
               else np.full([first.sizes[d] for d in other], int(block)))
    flat = lengths.reshape(-1)
    means = {k: np.full((flat.size, n_resamples), np.nan) for k in arrays}
    if n >= 2:
        values = {k: v.values.reshape(-1, n).astype(np.float64) for k, v in arrays.items()}
        for length in np.unique(flat):
            rows = flat == length
            counts = resample_counts(n, int(length), n_resamples, seed)
            for k in arrays:
                means[k][rows] = _resampled_means(values[k][rows], counts)
    shape = [*lengths.shape, n_resamples]
    dims = [*other, RESAMPLE]
    resampled = {k: xr.DataArray(m.reshape(shape), dims=dims, coords=coords) for k, m in means.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        return combine(resampled).transpose(..., RESAMPLE)


def _nan_quantiles(x: np.ndarray, qs: list[float]) -> np.ndarray:
    """Quantiles ``qs`` along the last axis skipping NaN, linear interpolation (numpy's default), vectorised:
    ``np.nanquantile`` loops over rows in Python. Shape ``(len(qs), *x.shape[:-1])``."""
    x = np.sort(x, axis=-1)  # NaN sort last
    k = np.isfinite(x).sum(-1)
    out = []
    for q in qs:
        pos = q * np.maximum(k - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
        a = np.take_along_axis(x, lo[..., None], -1)[..., 0]
        b = np.take_along_axis(x, hi[..., None], -1)[..., 0]
        out.append(np.where(k > 0, a + (pos - lo) * (b - a), np.nan))
    return np.stack(out)


def confidence_interval(samples: xr.DataArray, confidence: float = 0.9) -> xr.DataArray:
    """Percentile interval of bootstrap ``samples``: ``bound`` = ``lower``, ``upper`` (first dim), holding the central
    ``confidence`` fraction of the resamples (NaN resamples left out)."""
    alpha = (1.0 - confidence) / 2.0
    samples = samples.transpose(..., RESAMPLE)
    with np.errstate(invalid="ignore"):
        values = _nan_quantiles(samples.values, [alpha, 1.0 - alpha])
    coords = {k: v for k, v in samples.coords.items() if RESAMPLE not in v.dims}
    return xr.DataArray(values, dims=[BOUND, *samples.dims[:-1]], coords={**coords, BOUND: ["lower", "upper"]},
                        attrs={"confidence": confidence})


def paired_difference(samples: xr.DataArray, reference: xr.DataArray, confidence: float = 0.9) -> xr.Dataset:
    """Paired significance of ``score - reference score`` from bootstrap samples drawn on the same resamples.

    Returns ``interval`` (``bound`` x ...: the percentile interval of the difference) and ``p_value``: the
    two-sided bootstrap p-value of "no difference", ``min(1, 2 min(P(d <= 0), P(d >= 0)))`` with the
    ``(k + 1) / (R + 1)`` correction, so it is never 0. The difference is significant at level
    ``1 - confidence`` where ``p_value < 1 - confidence``. NaN where either score is undefined.
    """
    d = samples - reference
    ok = np.isfinite(d)
    r = ok.sum(RESAMPLE)
    below = ((d <= 0) & ok).sum(RESAMPLE)
    above = ((d >= 0) & ok).sum(RESAMPLE)
    p = np.minimum(1.0, 2.0 * (np.minimum(below, above) + 1.0) / (r + 1.0))
    return xr.Dataset({"interval": confidence_interval(d, confidence), "p_value": p.where(r > 0)})
