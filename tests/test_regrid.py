"""Conservative regridding: maths invariants against references worked out independently of the weights."""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from scipy.special import sph_harm_y

from forecast.grids import Grid, area_weights
from forecast.ingest.regrid import conservative_weights, regrid

ERA5_25 = Grid("equiangular", 73, 144)  # 2.5 deg, poles included
GAUSS = Grid("legendre-gauss", 32, 64)


def _wb_lat() -> np.ndarray:
    # WeatherBench 5.625 deg: 32 latitudes without poles, delivered south to north.
    return -90.0 + 5.625 * (np.arange(32) + 0.5)


# name -> (latitudes, longitudes); orders as the files deliver them
SOURCES = {
    "era5-2.5deg-73x144": (ERA5_25.latitudes, ERA5_25.longitudes),
    "3deg-61x120": (np.linspace(90.0, -90.0, 61), np.arange(120) * 3.0),
    "gauss-32x64": (GAUSS.latitudes, GAUSS.longitudes),
    "wb-5.625deg-32x64": (_wb_lat(), np.arange(64) * 5.625),
}
TARGETS = [
    Grid("equiangular", 19, 36),  # coarser, 10 deg
    Grid("equiangular", 33, 64),  # 5.625 deg with poles
    Grid("equiangular", 181, 360),  # finer, 1 deg
    Grid("legendre-gauss", 32, 64),
    Grid("legendre-gauss", 96, 192),
]


def _field(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, lead: dict | None = None) -> xr.DataArray:
    lead = lead or {}
    return xr.DataArray(
        values,
        dims=(*lead, "latitude", "longitude"),
        coords={**lead, "latitude": lat, "longitude": lon},
        name="t",
        attrs={"units": "K", "long_name": "Temperature"},
    )


def _mesh(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")


def _global_mean(values: np.ndarray, lat: np.ndarray) -> float:
    w = area_weights(lat)[:, None]
    return float((w * values).sum() / (w.sum() * values.shape[-1]))


def _equiangular_bounds_with_poles(n: int) -> np.ndarray:
    # By hand: centres 90 - k d, edges half a spacing either side, clipped at the poles; north first.
    d = 180.0 / (n - 1)
    centres = 90.0 - d * np.arange(n)
    return np.clip(np.stack([centres + d / 2, centres - d / 2], axis=-1), -90.0, 90.0)


# --- weights ----------------------------------------------------------------------------------------


def test_weights_by_hand_with_longitude_wrap() -> None:
    # Source lat cells [90,45], [45,-45], [-45,-90]; the 2-point Gaussian grid splits at the equator.
    # Source lon cells are 90 wide centred on 0, 90, 180, 270; target cells 180 wide centred on 0, 180,
    # so target cell 0 = [-90, 90] takes half of cell 0 and a quarter of cells 1 and 3 (across 0/360).
    w_lat, w_lon = conservative_weights(
        np.array([90.0, 0.0, -90.0]), np.array([0.0, 90.0, 180.0, 270.0]),
        Grid("legendre-gauss", 2, 4).latitudes, np.array([0.0, 180.0]),
    )
    r = np.sqrt(0.5)
    np.testing.assert_allclose(w_lat, [[1 - r, r, 0.0], [0.0, r, 1 - r]], atol=1e-14)
    np.testing.assert_allclose(w_lon, [[0.5, 0.25, 0.0, 0.25], [0.0, 0.25, 0.5, 0.25]], atol=1e-14)


@pytest.mark.parametrize("src", SOURCES)
@pytest.mark.parametrize("target", TARGETS, ids=Grid.describe)
def test_weights_rows_sum_to_one_and_columns_conserve_area(src: str, target: Grid) -> None:
    lat, lon = SOURCES[src]
    w_lat, w_lon = conservative_weights(lat, lon, target.latitudes, target.longitudes)
    assert w_lat.shape == (target.nlat, lat.size) and w_lon.shape == (target.nlon, lon.size)
    assert (w_lat >= 0).all() and (w_lon >= 0).all()
    np.testing.assert_allclose(w_lat.sum(1), 1.0, atol=1e-13)
    np.testing.assert_allclose(w_lon.sum(1), 1.0, atol=1e-13)
    # sum_i A_i W_ij = A_j is conservation itself; cell areas here are the WeatherBench2 formula.
    a_dst, a_src = area_weights(target.latitudes), area_weights(lat)
    np.testing.assert_allclose(a_dst @ w_lat / a_dst.sum(), a_src / a_src.sum(), atol=1e-13)
    np.testing.assert_allclose(w_lon.sum(0), target.nlon / lon.size, rtol=1e-12)


# --- invariants -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ascending", [False, True], ids=["north-first", "south-first"])
@pytest.mark.parametrize("src", SOURCES)
@pytest.mark.parametrize("target", TARGETS, ids=Grid.describe)
def test_constant_field_stays_constant(src: str, target: Grid, ascending: bool) -> None:
    lat, lon = SOURCES[src]
    lat = np.sort(lat) if ascending else np.sort(lat)[::-1]
    out = regrid(_field(np.full((lat.size, lon.size), 287.5, np.float32), lat, lon), target)
    assert out.dtype == np.float32 and out.shape == (target.nlat, target.nlon)
    np.testing.assert_allclose(out.values, 287.5, rtol=2e-7)


def _analytic_fields(lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
    phi, lam = _mesh(lat, lon)
    colat = np.pi / 2 - phi
    rng = np.random.default_rng(42)
    return {
        "Y20+2": 0.5 * (3 * np.sin(phi) ** 2 - 1) + 2.0,
        "Y32+2": np.real(sph_harm_y(3, 2, colat, lam)) * 3.0 + 2.0,
        "random": rng.uniform(0.0, 1.0, size=phi.shape) + 1.0,
    }


@pytest.mark.parametrize("ascending", [False, True], ids=["north-first", "south-first"])
@pytest.mark.parametrize(
    "target", [GAUSS, Grid("equiangular", 33, 64), Grid("equiangular", 181, 360)], ids=Grid.describe
)
def test_global_mean_is_conserved(target: Grid, ascending: bool) -> None:
    lat, lon = ERA5_25.latitudes, ERA5_25.longitudes
    if ascending:
        lat = lat[::-1]
    for name, values in _analytic_fields(lat, lon).items():
        out = regrid(_field(values, lat, lon), target)
        expected = _global_mean(values, lat)
        np.testing.assert_allclose(_global_mean(out.values.astype(np.float64), target.latitudes), expected,
                                   rtol=1e-6, err_msg=name)


def test_matches_exact_cell_average_when_cells_nest() -> None:
    # Source: exact cell averages of f = sin(lat) (1 + cos(lon)) on 2.5 deg; target 7.5 deg cells are unions
    # of whole source cells (edges at 90, 86.25, 78.75, ...; -3.75, 3.75, ...), so conservative remapping
    # must return the exact target cell averages. Averaging over d(sin lat) dlon factorises:
    # mean of sin(lat) is the midpoint of the sin bounds, mean of cos(lon) over [a, b] is
    # (sin b - sin a) / (b - a).
    def cell_mean(lat_bounds: np.ndarray, lon: np.ndarray) -> np.ndarray:
        s = np.sin(np.deg2rad(lat_bounds))
        a, b = np.deg2rad(lon - 180.0 / lon.size), np.deg2rad(lon + 180.0 / lon.size)
        return (0.5 * (s[:, 0] + s[:, 1]))[:, None] * (1.0 + (np.sin(b) - np.sin(a)) / (b - a))[None, :]

    target = Grid("equiangular", 25, 48)
    src = cell_mean(_equiangular_bounds_with_poles(73), ERA5_25.longitudes)
    out = regrid(_field(src, ERA5_25.latitudes, ERA5_25.longitudes), target)
    expected = cell_mean(_equiangular_bounds_with_poles(25), target.longitudes)
    np.testing.assert_allclose(out.values, expected, atol=3e-7)


def test_sin_latitude_point_values_match_cell_means() -> None:
    # Point values of sin(lat) on ERA5's 0.25 deg grid; the Gaussian target cell mean over d(sin lat) is the
    # midpoint of its sin bounds, and a Gaussian cell's sin-extent is its quadrature weight (independent of
    # grids.py). Point values differ from source cell means by sin(lat) h^2 / 8 ~ 2e-6, and a source cell of
    # sin-extent d split by a target edge adds up to d^2 / (8 D) ~ 2.5e-5 cos(lat) (D: the target extent);
    # nearest-neighbour or bilinear sampling would be off by ~ 4e-3 here.
    src = Grid("equiangular", 721, 1440)
    phi, _ = _mesh(src.latitudes, src.longitudes)
    out = regrid(_field(np.sin(phi), src.latitudes, src.longitudes), GAUSS)
    x, w = np.polynomial.legendre.leggauss(GAUSS.nlat)
    upper = 1.0 - np.concatenate([[0.0], np.cumsum(w[::-1])])  # sin of the northern edges, north first
    expected = 0.5 * (upper[:-1] + upper[1:])
    np.testing.assert_allclose(out.values, np.broadcast_to(expected[:, None], out.shape), atol=3e-5)


def test_error_against_cell_averages_shrinks_with_resolution() -> None:
    # f = (s - s^3) cos(2 lon) + s with s = sin(lat) (Y_3^2-like); the exact cell average factorises.
    x, w = np.polynomial.legendre.leggauss(GAUSS.nlat)
    s_edges = 1.0 - np.concatenate([[0.0], np.cumsum(w[::-1])])
    s_n, s_s = s_edges[:-1], s_edges[1:]
    prim_s = lambda s: s**2 / 2 - s**4 / 4  # noqa: E731
    mean_s = (prim_s(s_n) - prim_s(s_s)) / (s_n - s_s)
    a = np.deg2rad(GAUSS.longitudes - 180.0 / GAUSS.nlon)
    b = np.deg2rad(GAUSS.longitudes + 180.0 / GAUSS.nlon)
    mean_cos2 = (np.sin(2 * b) - np.sin(2 * a)) / (2 * (b - a))
    expected = mean_s[:, None] * mean_cos2[None, :] + (0.5 * (s_n + s_s))[:, None]

    errors = []
    for n in (73, 145, 289):
        src = Grid("equiangular", n, 2 * (n - 1))
        phi, lam = _mesh(src.latitudes, src.longitudes)
        s = np.sin(phi)
        out = regrid(_field((s - s**3) * np.cos(2 * lam) + s, src.latitudes, src.longitudes), GAUSS)
        errors.append(np.abs(out.values - expected).max())
    assert errors[0] < 5e-3
    # Second order for smooth point values; how source cells split at target edges changes the constant from
    # one resolution to the next (1.25 deg splits them in halves, 0.625 deg nests), so compare over 4x.
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < errors[0] / 8, errors


def test_commutes_with_longitude_roll() -> None:
    target = Grid("equiangular", 37, 72)  # 5 deg; a 10 deg roll is 4 source and 2 target cells
    values = np.random.default_rng(0).standard_normal((73, 144))
    lat, lon = ERA5_25.latitudes, ERA5_25.longitudes
    rolled_first = regrid(_field(np.roll(values, 4, axis=-1), lat, lon), target).values
    rolled_after = np.roll(regrid(_field(values, lat, lon), target).values, 2, axis=-1)
    np.testing.assert_allclose(rolled_first, rolled_after, atol=1e-6)


def test_latitude_order_does_not_matter() -> None:
    values = np.random.default_rng(1).standard_normal((2, 73, 144))
    lat, lon = ERA5_25.latitudes, ERA5_25.longitudes
    north_first = regrid(_field(values, lat, lon, {"time": [0, 1]}), GAUSS)
    south_first = regrid(_field(values[:, ::-1], lat[::-1], lon, {"time": [0, 1]}), GAUSS)
    np.testing.assert_allclose(north_first.values, south_first.values, atol=1e-6)
    np.testing.assert_array_equal(south_first.latitude.values, GAUSS.latitudes)


# --- xarray / dask behaviour ------------------------------------------------------------------------


def test_output_dims_coords_dtype_and_attrs() -> None:
    lat, lon = SOURCES["wb-5.625deg-32x64"]
    da = _field(np.ones((2, 3, 32, 64)), lat, lon, {"time": [0, 1], "level": [500, 700, 850]})
    da = da.transpose("latitude", "time", "longitude", "level")  # unusual order is kept
    out = regrid(da, GAUSS)
    assert out.dims == ("latitude", "time", "longitude", "level")
    assert out.dtype == np.float32 and out.name == "t"
    assert out.attrs == {"units": "K", "long_name": "Temperature"}
    np.testing.assert_array_equal(out.latitude.values, GAUSS.latitudes)
    np.testing.assert_array_equal(out.longitude.values, GAUSS.longitudes)
    assert out.latitude.attrs["units"] == "degrees_north"
    assert out.latitude.attrs["standard_name"] == "latitude"
    assert out.longitude.attrs["units"] == "degrees_east"
    assert out.longitude.attrs["standard_name"] == "longitude"
    np.testing.assert_array_equal(out.level.values, [500, 700, 850])


def _no_compute(*args, **kwargs):
    raise AssertionError("regrid computed eagerly")


def test_lazy_with_dask_and_equal_to_numpy_path() -> None:
    values = np.random.default_rng(2).standard_normal((6, 73, 144)).astype(np.float32)
    da = _field(values, ERA5_25.latitudes, ERA5_25.longitudes, {"time": np.arange(6)})
    with dask.config.set(scheduler=_no_compute):
        lazy = regrid(da.chunk({"time": 2}), GAUSS)
        split_grid = regrid(da.chunk({"time": 3, "latitude": 20, "longitude": 50}), GAUSS)
    assert isinstance(lazy.data, dsa.Array)
    assert lazy.chunks == ((2, 2, 2), (32,), (64,))
    assert split_grid.chunks == ((3, 3), (32,), (64,))
    eager = regrid(da, GAUSS)
    assert isinstance(eager.data, np.ndarray)
    np.testing.assert_array_equal(lazy.compute().values, eager.values)
    np.testing.assert_array_equal(split_grid.compute().values, eager.values)


def test_dataset_with_several_variables() -> None:
    lat, lon = ERA5_25.latitudes[::-1], ERA5_25.longitudes
    rng = np.random.default_rng(3)
    ds = xr.Dataset(
        {
            "t2m": (("time", "latitude", "longitude"), rng.standard_normal((2, 73, 144)), {"units": "K"}),
            "z": (("time", "level", "latitude", "longitude"), rng.standard_normal((2, 2, 73, 144)),
                  {"units": "m**2 s**-2"}),
            "lsm": (("latitude", "longitude"), rng.uniform(size=(73, 144)).astype(np.float32),
                    {"units": "1"}),
            "flag": (("time",), np.array([1, 0])),
        },
        coords={"time": [0, 1], "level": [500, 850], "latitude": lat, "longitude": lon},
        attrs={"source": "test"},
    ).chunk({"time": 1})
    out = regrid(ds, GAUSS)
    assert set(out.data_vars) == {"t2m", "z", "lsm", "flag"}
    assert out.attrs == {"source": "test"}
    assert dict(out.sizes) == {"time": 2, "level": 2, "latitude": 32, "longitude": 64}
    for name in ("t2m", "z", "lsm"):
        assert out[name].dtype == np.float32
        assert out[name].attrs == ds[name].attrs
        np.testing.assert_array_equal(out[name].values, regrid(ds[name].compute(), GAUSS).values)
    assert out["z"].dims == ("time", "level", "latitude", "longitude")
    np.testing.assert_array_equal(out["flag"].values, [1, 0])
    np.testing.assert_array_equal(out.latitude.values, GAUSS.latitudes)


def test_nan_reaches_only_the_target_cells_it_overlaps() -> None:
    # 2.5 deg -> 5 deg. Source (lat 65, lon 50) = [66.25, 63.75] x [48.75, 51.25] lies inside target cell
    # (65, 50) = [67.5, 62.5] x [47.5, 52.5]; source (lat 65, lon 52.5) straddles the lon edge at 52.5,
    # so it reaches target columns 50 and 55.
    target = Grid("equiangular", 37, 72)
    values = np.ones((2, 73, 144))
    values[0, 10, 20] = np.nan
    values[1, 10, 21] = np.nan
    out = regrid(_field(values, ERA5_25.latitudes, ERA5_25.longitudes, {"time": [0, 1]}), target).values
    expected = np.zeros(out.shape, bool)
    expected[0, 5, 10] = True
    expected[1, 5, [10, 11]] = True
    np.testing.assert_array_equal(np.isnan(out), expected)
    np.testing.assert_allclose(out[~expected], 1.0, rtol=2e-7)


@pytest.mark.parametrize(
    ("lat", "lon", "coord"),
    [
        (np.linspace(60.0, 20.0, 17), np.arange(144) * 2.5, "latitude"),  # a regional box
        (np.linspace(90.0, -60.0, 61), np.arange(144) * 2.5, "latitude"),  # missing the south
        (np.linspace(90.0, -90.0, 73), np.arange(37) * 2.5, "longitude"),  # 0 to 90 east
    ],
)
def test_non_global_source_is_refused(lat: np.ndarray, lon: np.ndarray, coord: str) -> None:
    da = _field(np.zeros((lat.size, lon.size)), lat, lon)
    with pytest.raises(ValueError, match=f"not global: {coord} covers") as info:
        regrid(da, GAUSS)
    assert f"{min(lat[0], lat[-1]):g}" in str(info.value) or f"{lon[-1]:g}" in str(info.value)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="bilinear"):
        regrid(_field(np.zeros((73, 144)), ERA5_25.latitudes, ERA5_25.longitudes), GAUSS, "bilinear")  # type: ignore[arg-type]


def test_identity_when_grids_match() -> None:
    values = np.random.default_rng(4).standard_normal((2, 73, 144))  # float64 in, float32 out
    da = _field(values, ERA5_25.latitudes, ERA5_25.longitudes, {"time": [0, 1]})
    out = regrid(da, ERA5_25)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.values, values.astype(np.float32))
    # South-first input on the same grid is only reordered.
    south_first = _field(values[:, ::-1], ERA5_25.latitudes[::-1], ERA5_25.longitudes, {"time": [0, 1]})
    flipped = regrid(south_first, ERA5_25)
    np.testing.assert_array_equal(flipped.values, values.astype(np.float32))
    np.testing.assert_array_equal(flipped.latitude.values, ERA5_25.latitudes)
    assert flipped.latitude.attrs["units"] == "degrees_north"
