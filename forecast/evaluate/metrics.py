"""Scores with WeatherBench2's definitions, as pure functions over xarray (numpy- or dask-backed).

Every function takes ``forecast`` and ``truth`` with dims ``(..., latitude, longitude)`` already
aligned on valid time (DataArrays or Datasets), reduces over space with area weights (cell areas
``sin(upper) - sin(lower)`` normalised to mean 1) and, where WB2 does, averages over ``init_time``
*after* the spatial reduction: RMSE is the square root of the init-time mean of the area-weighted MSE,
not the mean of RMSEs. ``mask`` selects a region: a 0/1 field on ``(latitude, longitude)``, or several
stacked along a ``region`` dimension (the result then has that dimension).

Deterministic: :func:`rmse`, :func:`bias`, :func:`mae`, :func:`acc` (uncentred, against a climatology).
Ensembles (members along ``member``): :func:`crps` (unbiased "fair" estimator), :func:`spread`
(``ddof=1``), :func:`spread_skill_ratio`, :func:`rank_histogram`; the deterministic scores of an
ensemble are those of its mean. :func:`zonal_energy_spectrum` is the power per zonal wavenumber.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from forecast.grids import area_weights
from forecast.schema import INIT_TIME, LAT, LON, MEMBER

__all__ = [
    "RANK",
    "WAVENUMBER",
    "acc",
    "bias",
    "crps",
    "crps_pointwise",
    "ensemble_mean",
    "ensemble_variance",
    "gridpoint_scores",
    "lat_weights",
    "mae",
    "mse",
    "rank_histogram",
    "rmse",
    "spatial_mean",
    "spread",
    "spread_skill_ratio",
    "zonal_energy_spectrum",
]

RANK = "rank"
WAVENUMBER = "zonal_wavenumber"


def lat_weights(lat: xr.DataArray) -> xr.DataArray:
    """Area weights along ``latitude`` normalised to mean 1."""
    return xr.DataArray(area_weights(np.asarray(lat)), dims=[LAT], coords={LAT: lat})


def spatial_mean(x: xr.DataArray | xr.Dataset, mask: xr.DataArray | None = None) -> xr.DataArray | xr.Dataset:
    """Area-weighted mean over latitude and longitude (optionally within 0/1 ``mask`` region(s)).

    One contraction (``xr.dot``) per field, so a stack of region masks costs one pass over the data.
    """
    w = lat_weights(x[LAT])
    w = w * (xr.ones_like(x[LON], dtype=np.float64) if mask is None else mask)
    w = w / w.sum([LAT, LON])
    if isinstance(x, xr.Dataset):
        return x.map(lambda v: xr.dot(v, w, dim=[LAT, LON]), keep_attrs=False)
    return xr.dot(x, w, dim=[LAT, LON])


def _time_mean(x, dim: str | None):
    return x.mean(dim) if dim and dim in x.dims else x


def ensemble_mean(forecast, member_dim: str = MEMBER):
    """The ensemble mean (``forecast`` itself when it has no member dimension)."""
    return forecast.mean(member_dim) if member_dim in forecast.dims else forecast


def mse(forecast, truth, mask=None):
    """Area-weighted mean squared error per remaining dim (e.g. per init_time and lead_time)."""
    return spatial_mean((forecast - truth) ** 2, mask)


def rmse(forecast, truth, mask=None, time_dim: str | None = INIT_TIME):
    """WB2 RMSE: ``sqrt(mean_init_time(area-weighted MSE))``."""
    return np.sqrt(_time_mean(mse(forecast, truth, mask), time_dim))


def bias(forecast, truth, mask=None, time_dim: str | None = INIT_TIME):
    """Area-weighted mean error, averaged over ``time_dim``."""
    return _time_mean(spatial_mean(forecast - truth, mask), time_dim)


def mae(forecast, truth, mask=None, time_dim: str | None = INIT_TIME):
    """Area-weighted mean absolute error, averaged over ``time_dim``."""
    return _time_mean(spatial_mean(abs(forecast - truth), mask), time_dim)


def acc(forecast, truth, climatology, mask=None, time_dim: str | None = INIT_TIME):
    """WB2 (uncentred) anomaly correlation: per init time
    ``sum(w f' o') / sqrt(sum(w f'^2) sum(w o'^2))`` with anomalies against ``climatology``, then averaged
    over ``time_dim``. Undefined (NaN) where either anomaly is identically zero, e.g. for the
    climatology forecast itself.
    """
    fa = forecast - climatology
    ta = truth - climatology
    num = spatial_mean(fa * ta, mask)
    den = np.sqrt(spatial_mean(fa**2, mask) * spatial_mean(ta**2, mask))
    return _time_mean(num / den.where(den > 0), time_dim)


def _sort_members(forecast, member_dim: str):
    return xr.apply_ufunc(np.sort, forecast, input_core_dims=[[member_dim]], output_core_dims=[[member_dim]],
                          kwargs={"axis": -1}, dask="parallelized", keep_attrs=False)


def crps_pointwise(forecast, truth, member_dim: str = MEMBER):
    """Fair (unbiased) CRPS at every point: ``mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 M (M - 1))``.

    The pair sum is taken from the sorted members, ``sum_ij |x_i - x_j| = 2 sum_k (2k - M - 1) x_(k)``,
    so it costs ``O(M log M)``, not ``O(M^2)``. A forecast without members (or with one) is a point
    forecast, whose CRPS is its absolute error.
    """
    skill = abs(forecast - truth)
    if member_dim not in forecast.dims:
        return skill
    m = forecast.sizes[member_dim]
    skill = skill.mean(member_dim)
    if m < 2:
        return skill
    k = xr.DataArray(2.0 * np.arange(1, m + 1) - m - 1, dims=[member_dim])
    pairs = (_sort_members(forecast, member_dim) * k).sum(member_dim)  # = sum_{i<j} |x_i - x_j|
    return skill - pairs / (m * (m - 1))


def crps(forecast, truth, mask=None, time_dim: str | None = INIT_TIME, member_dim: str = MEMBER):
    """Area- and init-time-mean fair CRPS (WB2's ``CRPS`` with its unbiased spread term); MAE for a point forecast."""
    return _time_mean(spatial_mean(crps_pointwise(forecast, truth, member_dim), mask), time_dim)


def ensemble_variance(forecast, mask=None, member_dim: str = MEMBER):
    """Area-weighted mean of the members' variance (``ddof=1``) per remaining dim: the spread's MSE."""
    return spatial_mean(forecast.var(member_dim, ddof=1), mask)


def spread(forecast, mask=None, time_dim: str | None = INIT_TIME, member_dim: str = MEMBER):
    """Ensemble spread ``sqrt(mean_init_time(area-weighted member variance, ddof=1)))``, the RMSE's counterpart."""
    return np.sqrt(_time_mean(ensemble_variance(forecast, mask, member_dim), time_dim))


def spread_skill_ratio(forecast, truth, mask=None, time_dim: str | None = INIT_TIME, member_dim: str = MEMBER):
    """:func:`spread` over the RMSE of the ensemble mean (WB2's ``SpreadSkillRatio``, no finite-size factor).

    For a perfectly reliable ensemble of ``M`` members its expectation is ``sqrt(M / (M + 1))``, not 1.
    """
    skill = rmse(ensemble_mean(forecast, member_dim), truth, mask, time_dim)
    return spread(forecast, mask, time_dim, member_dim) / skill


def rank_histogram(forecast, truth, mask=None, time_dim: str | None = INIT_TIME, member_dim: str = MEMBER):
    """Area-weighted frequency of the truth's rank among the ``M`` members, along ``rank`` = 0 .. M.

    Rank ``k`` means ``k`` members lie below the truth. A truth equal to some members shares its
    weight equally among the ranks it could take (as the ``scores`` package does), so a calibrated
    ensemble has a flat histogram ``1 / (M + 1)``. Frequencies sum to 1.
    """
    m = forecast.sizes[member_dim]
    below = (forecast < truth).sum(member_dim)
    ties = (forecast == truth).sum(member_dim)
    r = xr.DataArray(np.arange(m + 1), dims=[RANK], coords={RANK: np.arange(m + 1)})
    share = ((r >= below) & (r <= below + ties)) / (ties + 1.0)
    return _time_mean(spatial_mean(share, mask), time_dim)


def _zonal_power(a: np.ndarray) -> np.ndarray:
    n = a.shape[-1]
    power = np.abs(np.fft.rfft(a, axis=-1, norm="forward")) ** 2
    power[..., 1:] *= 2.0  # wavenumbers +k and -k
    if n % 2 == 0:
        power[..., -1] /= 2.0  # the Nyquist wavenumber has no partner
    return power


def zonal_energy_spectrum(x, lat_band: tuple[float, float] = (-90.0, 90.0), time_dim: str | None = INIT_TIME):
    """Power per zonal wavenumber ``k = 0 .. nlon/2`` (along ``zonal_wavenumber``), in units squared.

    At each latitude the longitude series is Fourier transformed, so that the powers sum to the zonal
    mean of ``x**2`` (Parseval); the spectra of the latitudes inside ``lat_band`` are then averaged with
    area weights, and over ``time_dim``.
    """
    n = x.sizes[LON]
    spec = xr.apply_ufunc(_zonal_power, x, input_core_dims=[[LON]], output_core_dims=[[WAVENUMBER]],
                          dask="parallelized", output_dtypes=[np.float64],
                          dask_gufunc_kwargs={"output_sizes": {WAVENUMBER: n // 2 + 1}})
    spec = spec.assign_coords({WAVENUMBER: np.arange(n // 2 + 1)})
    lat = x[LAT]
    w = lat_weights(lat).where((lat >= lat_band[0]) & (lat <= lat_band[1]), 0.0)
    if float(w.sum()) == 0:
        raise ValueError(f"no latitude lies in the spectrum band {lat_band}")
    if isinstance(spec, xr.Dataset):
        spec = spec.map(lambda v: xr.dot(v, w / w.sum(), dim=[LAT]))
    else:
        spec = xr.dot(spec, w / w.sum(), dim=[LAT])
    return _time_mean(spec, time_dim)


def gridpoint_scores(forecast, truth, time_dim: str = INIT_TIME, member_dim: str = MEMBER) -> xr.Dataset:
    """Skill at every grid point over ``time_dim`` (no spatial average): ``rmse`` (of the ensemble mean),
    ``bias`` (mean error) and fair ``crps`` (the absolute error of a point forecast), DataArrays in, one
    Dataset ``(..., latitude, longitude)`` out, in the field's units."""
    mean = ensemble_mean(forecast, member_dim)
    return xr.Dataset({"rmse": np.sqrt(((mean - truth) ** 2).mean(time_dim)),
                       "bias": (mean - truth).mean(time_dim),
                       "crps": crps_pointwise(forecast, truth, member_dim).mean(time_dim)})
