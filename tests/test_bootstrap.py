"""The block bootstrap of forecast.evaluate.bootstrap against analytic references: coverage of iid normal means,
Wilks's block length by hand and its growth with AR(1) correlation, resample structure, paired significance."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from forecast.evaluate.bootstrap import (
    block_length,
    bootstrap_samples,
    confidence_interval,
    lag1_autocorrelation,
    paired_difference,
    resample_counts,
    wilks_block_length,
)


def ar1(rho: float, shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Stationary AR(1) series with unit variance along the last axis."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((*shape, n))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    for t in range(1, n):
        x[..., t] = rho * x[..., t - 1] + np.sqrt(1 - rho**2) * e[..., t]
    return x


def as_stat(x: np.ndarray) -> xr.DataArray:
    return xr.DataArray(x, dims=["replicate", "init_time"])


def coverage(x: np.ndarray, truth: float, block=None, confidence: float = 0.9) -> float:
    samples = bootstrap_samples({"s": as_stat(x)}, lambda m: m["s"], block=block, n_resamples=1000, seed=3)
    ci = confidence_interval(samples, confidence)
    inside = (ci.sel(bound="lower") <= truth) & (truth <= ci.sel(bound="upper"))
    return float(inside.mean())


def test_wilks_block_length_by_hand_and_limits():
    # n = 100, r = 0.5: n' = 100/3, exponent (2/3)(1 - 1/3) = 4/9; L = (101 - L)^(4/9) has its root at L = 7.51.
    assert wilks_block_length(100, 0.5) == 8
    assert wilks_block_length(100, 0.0) == 1 and wilks_block_length(100, -0.4) == 1
    # r -> 1 (capped at 0.99): exponent (2/3)(1 - 0.01/1.99) = 0.663, root L = 18.6.
    assert wilks_block_length(100, 0.999) == 19
    x = np.sin(np.linspace(0, 20, 50))
    r = np.corrcoef(x[:-1] - x.mean(), x[1:] - x.mean())[0, 1]
    assert float(lag1_autocorrelation(x)) == pytest.approx(r, abs=0.05)


def test_block_length_grows_with_ar1_correlation():
    lengths = [np.median(block_length(ar1(rho, (200,), 60, seed=1))) for rho in (0.0, 0.3, 0.6, 0.9)]
    assert lengths[0] == 1
    assert lengths == sorted(lengths) and lengths[3] > lengths[2] > lengths[1] >= lengths[0]


def test_resamples_are_circular_blocks_of_the_cases():
    counts = resample_counts(10, 10, 50, seed=0)
    np.testing.assert_array_equal(counts, 1)  # one block of all cases: every resample is a rotation
    counts = resample_counts(12, 3, 400, seed=0)
    assert counts.shape == (400, 12) and (counts.sum(1) == 12).all()
    assert np.abs(counts.mean(0) - 1).max() < 0.15  # every case equally likely
    np.testing.assert_array_equal(counts, resample_counts(12, 3, 400, seed=0))  # same arguments, same resamples


def test_intervals_of_iid_normal_means_cover_at_the_nominal_rate():
    x = np.random.default_rng(0).standard_normal((400, 40))
    # The percentile interval of a mean of 40 is slightly narrow (the bootstrap variance is (n - 1)/n of the
    # truth's): 0.885 expected; 400 replicates give a standard error of 0.016.
    assert coverage(x, 0.0) == pytest.approx(0.885, abs=0.045)
    assert coverage(x, 0.0, confidence=0.5) == pytest.approx(0.5, abs=0.07)


def test_blocks_restore_coverage_for_correlated_series():
    x = ar1(0.7, (300,), 60, seed=2)
    naive, blocked = coverage(x, 0.0, block=1), coverage(x, 0.0)
    assert naive < 0.7  # resampling single cases ignores the correlation: intervals far too narrow
    assert blocked > naive + 0.1


def test_paired_difference_sees_what_overlapping_intervals_hide():
    rng = np.random.default_rng(5)
    common = 3.0 * rng.standard_normal((1, 30))  # case-to-case variation shared by both forecasts
    a = as_stat(common + 0.1 * rng.standard_normal((1, 30)))
    b = as_stat(common + 0.5 + 0.1 * rng.standard_normal((1, 30)))
    sa = bootstrap_samples({"s": a}, lambda m: m["s"], block=1)
    sb = bootstrap_samples({"s": b}, lambda m: m["s"], block=1)
    ia, ib = confidence_interval(sa).squeeze(), confidence_interval(sb).squeeze()
    assert float(ia.sel(bound="upper")) > float(ib.sel(bound="lower"))  # the intervals overlap ...
    d = paired_difference(sa, sb).squeeze()
    assert float(d["interval"].sel(bound="upper")) < 0 and float(d["p_value"]) < 0.01  # ... the pairs do not
    same = paired_difference(sa, sa).squeeze()
    assert float(same["p_value"]) == 1.0


def test_a_nonlinear_score_is_computed_from_resampled_means():
    mse = as_stat(np.array([[1.0, 4.0, 9.0, 16.0]]))
    samples = bootstrap_samples({"mse": mse}, lambda m: np.sqrt(m["mse"]), block=4, n_resamples=20)
    np.testing.assert_allclose(samples.values, np.sqrt(7.5))  # every resample is a rotation: same mean
    with_nan = as_stat(np.array([[1.0, np.nan, 3.0]]))
    assert float(bootstrap_samples({"s": with_nan}, lambda m: m["s"], block=3).mean()) == pytest.approx(2.0)
    assert np.isnan(bootstrap_samples({"s": as_stat(np.ones((1, 1)))}, lambda m: m["s"])).all()


def test_interval_quantiles_equal_numpys_skipping_nan():
    x = np.random.default_rng(1).standard_normal((50, 200))
    x[3, :150] = np.nan
    x[4] = np.nan
    ci = confidence_interval(xr.DataArray(x, dims=["series", "resample"]), 0.8)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanquantile(x, [0.1, 0.9], axis=-1)
    np.testing.assert_allclose(ci.values, ref, rtol=1e-12, equal_nan=True)
