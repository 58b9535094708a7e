"""WeatherBench2 metric definitions against hand-computed values and the `scores` package."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from forecast.evaluate.metrics import acc, bias, lat_weights, mae, rmse


def field(values, lat=(60.0, 0.0, -60.0), lon=(0.0, 180.0), init=None) -> xr.DataArray:
    values = np.asarray(values, dtype=np.float64)
    dims = ["latitude", "longitude"] if values.ndim == 2 else ["init_time", "latitude", "longitude"]
    coords = {"latitude": list(lat), "longitude": list(lon)}
    if values.ndim == 3:
        coords["init_time"] = np.arange(values.shape[0])
    return xr.DataArray(values, dims=dims, coords=coords)


def test_area_weights_by_hand():
    # Bounds 90/30/-30/-90: sin differences 0.5, 1, 0.5 -> normalised to mean 1: 0.75, 1.5, 0.75.
    np.testing.assert_allclose(lat_weights(field(np.zeros((3, 2))).latitude).values, [0.75, 1.5, 0.75])


def test_rmse_is_sqrt_of_init_mean_of_area_weighted_mse():
    truth = field(np.zeros((2, 3, 2)))
    fc = truth.copy()
    fc[0] = [[2, 2], [0, 0], [2, 2]]  # area-weighted MSE = (0.75*4*2 + 0.75*4*2) / 6 = 2
    fc[1] = 3.0  # MSE = 9
    assert float(rmse(fc, truth)) == pytest.approx(np.sqrt((2 + 9) / 2))
    assert float(bias(fc, truth)) == pytest.approx((1.0 + 3.0) / 2)  # mean error 0.75*2*4/6 = 1 at init 0
    assert float(mae(fc, truth)) == pytest.approx((1.0 + 3.0) / 2)


def test_rmse_with_region_mask():
    truth = field(np.zeros((3, 2)))
    fc = field([[1, 1], [5, 5], [1, 1]])
    tropics = xr.DataArray([[0, 0], [1, 1], [0, 0]], dims=["latitude", "longitude"], coords=truth.coords)
    assert float(rmse(fc, truth, mask=tropics, time_dim=None)) == pytest.approx(5.0)


def test_acc_perfect_zero_and_undefined():
    clim = field(np.zeros((3, 2)))
    truth = field([[1, -1], [2, -2], [1, -1]])
    assert float(acc(truth, truth, clim, time_dim=None)) == pytest.approx(1.0)
    assert float(acc(-truth, truth, clim, time_dim=None)) == pytest.approx(-1.0)
    orth = field([[1, 1], [2, 2], [1, 1]])  # sum(w f' o') = 0
    assert float(acc(orth, truth, clim, time_dim=None)) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(float(acc(clim, truth, clim, time_dim=None)))  # climatology has no anomaly


def test_rmse_matches_scores_package_with_the_same_weights():
    scores = pytest.importorskip("scores")
    rng = np.random.default_rng(0)
    lat = np.linspace(90, -90, 7)
    lon = np.arange(12) * 30.0
    fc = field(rng.normal(size=(5, 7, 12)), lat=lat, lon=lon)
    ob = field(rng.normal(size=(5, 7, 12)), lat=lat, lon=lon)
    w = lat_weights(fc.latitude)
    ref = scores.continuous.rmse(fc, ob, reduce_dims=["init_time", "latitude", "longitude"], weights=w)
    assert float(rmse(fc, ob)) == pytest.approx(float(ref), rel=1e-12)
