"""The synthetic ERA5 archive: spectral maths, model invariants, forcings, land mask, CDS layout."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from forecast.config import ConfigError, load_config
from forecast.grids import Grid, area_weights
from forecast.naturalearth import NATURALEARTH_DIR, land_fraction, use_offline_cartopy
from forecast.schema import EARTH_RADIUS, GRAVITY
from forecast.synth.archive import grib_pack, write_archive
from forecast.synth.config import ForcingConfig, SynthConfig
from forecast.synth.forcing import equilibrium_height, season, solar_declination, synthetic_orography
from forecast.synth.fused import FusedStepper
from forecast.synth.model import ShallowWaterModel, williamson2_state
from forecast.synth.simulate import OMEGA, OUTPUT_INTERVAL, SynthSimulation, add_months
from forecast.synth.spectral import SphericalHarmonics

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Multi-threaded torch is much slower on these tiny transforms (write_archive does the same).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sph() -> SphericalHarmonics:
    return SphericalHarmonics(32, 64, 22, "legendre-gauss", EARTH_RADIUS)  # T21


def tiny_config(**kw: object) -> SynthConfig:
    """T10 on 16 x 32, written on a 10 deg grid: two months in about two seconds."""
    tree: dict[str, object] = {
        "months": 2,
        "spin_up_days": 10,
        "model": {"truncation": 10, "nlat": 16, "nlon": 32, "dt_minutes": 90},
        "output": {"nlat": 19, "nlon": 36},
    }
    tree.update(kw)
    return SynthConfig.model_validate(tree)


# -- spectral operators ----------------------------------------------------------------------------
def test_vector_transform_conventions(sph: SphericalHarmonics) -> None:
    """(u, v) = (east, north); solid-body rotation has vorticity 2 U sin(lat) / a and no divergence."""
    lat = sph.lat[:, None].expand(sph.nlat, sph.nlon)
    u = 20.0 * torch.cos(lat)
    uv = torch.stack((u, torch.zeros_like(u)))
    vd = sph.vortdiv(uv)
    grid = sph.to_grid(vd)
    np.testing.assert_allclose(grid[0], 2 * 20.0 * torch.sin(lat) / EARTH_RADIUS, atol=1e-12)
    np.testing.assert_allclose(grid[1], 0.0, atol=1e-12)
    np.testing.assert_allclose(sph.winds(vd), uv, atol=1e-9)
    # a southward flow v = -V cos(lat) spreads from the north: divergence 2 V sin(lat) / a
    v = -torch.cos(lat) * 5.0
    grid = sph.to_grid(sph.vortdiv(torch.stack((torch.zeros_like(v), v))))
    np.testing.assert_allclose(grid[1], 2 * 5.0 * torch.sin(lat) / EARTH_RADIUS, atol=1e-12)


def test_equiangular_synthesis_of_gaussian_coefficients(sph: SphericalHarmonics) -> None:
    """Coefficients from the model's Gaussian grid, synthesised on the 2.5 deg output grid (poles
    included), give the same functions: the two grids share one coefficient layout."""
    out = SphericalHarmonics(73, 144, sph.lmax, "equiangular", EARTH_RADIUS)
    np.testing.assert_allclose(out.latitudes_deg(), Grid("equiangular", 73, 144).latitudes, atol=1e-12)

    def scalar(s: SphericalHarmonics) -> torch.Tensor:
        lat, lon = s.lat[:, None], s.lon[None, :]
        return torch.sin(lat) ** 2 + torch.cos(lat) ** 3 * torch.sin(lat) * torch.cos(3 * lon - 0.4)

    np.testing.assert_allclose(out.to_grid(sph.to_spec(scalar(sph))), scalar(out), atol=1e-12)
    lat = sph.lat[:, None].expand(sph.nlat, sph.nlon)
    u = 30.0 * torch.cos(lat)
    winds = out.winds(sph.vortdiv(torch.stack((u, torch.zeros_like(u)))))
    np.testing.assert_allclose(winds[0], 30.0 * torch.cos(out.lat)[:, None].expand(73, 144), atol=1e-9)
    np.testing.assert_allclose(winds[1], 0.0, atol=1e-9)


# -- the model -------------------------------------------------------------------------------------
def test_williamson2_stays_steady(sph: SphericalHarmonics) -> None:
    """Williamson et al. test case 2: the balanced zonal flow is a steady solution (5 days)."""
    model = ShallowWaterModel(sph, dt=1200.0, mean_depth=2.94e4 / GRAVITY, gravity=GRAVITY, omega=OMEGA)
    s0 = williamson2_state(sph, OMEGA)
    s1 = model.integrate(s0, 5 * 72)
    g0, g1 = model.grid_state(s0), model.grid_state(s1)
    assert float(g0["u"].max()) == pytest.approx(38.6, abs=0.1)
    assert float((g1["phi"] - g0["phi"]).abs().max()) < 1e-6 * float(g0["phi"].abs().max())
    assert float((g1["u"] - g0["u"]).abs().max()) < 1e-5
    assert float(g1["v"].abs().max()) < 1e-5


def test_unforced_model_conserves_mass_and_energy(sph: SphericalHarmonics) -> None:
    """Inviscid, unforced flow over a mountain: mass exact, energy to a small fraction of its
    available part (kinetic + potential of the surface anomaly) over 200 steps."""
    lat, lon = sph.lat[:, None], sph.lon[None, :]
    mountain = 2000.0 * torch.exp(-(((lon - 1.0) / 0.3) ** 2) - ((lat - 0.6) / 0.3) ** 2)
    model = ShallowWaterModel(
        sph, dt=600.0, mean_depth=5000.0, gravity=GRAVITY, omega=OMEGA, orography=mountain, filter_nu=0.01
    )
    state = williamson2_state(sph, OMEGA, u0=20.0)
    bump = (
        120 * GRAVITY * torch.cos(lat) * torch.exp(-(((lon - math.pi) / 0.3) ** 2) - ((lat - 0.7) / 0.2) ** 2)
    )
    state[2] += sph.to_spec(bump)
    m0, e0 = model.mass(state), model.energy(state)
    g = model.grid_state(state)
    available = sph.integrate(
        0.5 * model.depth(g["phi"]) * (g["u"] ** 2 + g["v"] ** 2) + 0.5 * g["phi"] ** 2 / GRAVITY
    )
    final = model.integrate(state, 200)
    assert abs(float(model.mass(final) / m0) - 1.0) < 1e-13
    assert abs(float(model.energy(final) - e0)) < 1e-3 * float(available)
    assert float(model.grid_state(final)["v"].abs().max()) > 1.0  # the flow did evolve


def test_fused_step_is_the_reference_step_to_rounding() -> None:
    """FusedStepper makes ShallowWaterModel.step's step (default model, every forcing combination,
    the first forward step and the leapfrog step) to a few units in the last place."""
    sim = SynthSimulation(SynthConfig(months=1, spin_up_days=0), stepper="reference")
    model, fused = sim.model, FusedStepper(sim.model)
    phi_eq = sim.phi_eq(sim.start)
    stir = 1e-10 * sim.sph.truncate(torch.ones_like(phi_eq))
    prev, now = sim.initial_state(), sim.initial_state()
    prev, now = model.step(prev, now, phi_eq, stir, first=True)
    for _ in range(40):
        prev, now = model.step(prev, now, phi_eq, stir)
    for forcing in ((phi_eq, stir), (phi_eq, None), (None, stir), (None, None)):
        for first in (True, False):
            ref = model.step(prev, now, *forcing, first=first)
            got = fused(prev, now, *forcing, first=first)
            for a, b in zip(got, ref, strict=True):
                scale = b.abs().amax(dim=(-2, -1), keepdim=True)
                assert float(((a - b).abs() / scale).max()) < 1e-14
    got = fused.advance(prev, now, 8, phi_eq, stir)
    ref = (prev, now)
    for _ in range(8):
        ref = model.step(*ref, phi_eq, stir)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-13 * float(now.abs().max()))


# Rounding differences do not grow in this forced-dissipative flow over a month (measured: 7e-14 of
# each field's largest coefficient after 60 days on the tiny model, 6e-14 after 26 days on the
# default one); 1e-11 leaves a wide margin and still catches any real change to the numerics.
FUSED_TOLERANCE = 1e-11


def test_fused_run_matches_the_reference_run() -> None:
    """A month of the whole simulation (spin-up, calendar forcing, stirring) with either stepper."""
    cfg = tiny_config(months=1, spin_up_days=2)
    ref = list(SynthSimulation(cfg, stepper="reference").run())
    got = list(SynthSimulation(cfg, stepper="fused").run())
    assert [s.time for s in got] == [s.time for s in ref]
    for a, b in zip(got, ref, strict=True):
        scale = b.spec.abs().amax(dim=(-2, -1))
        assert float(((a.spec - b.spec).abs().amax(dim=(-2, -1)) / scale).max()) < FUSED_TOLERANCE
    with pytest.raises(ValueError, match="stepper"):
        SynthSimulation(cfg, stepper="fast")


# -- forcings --------------------------------------------------------------------------------------
def test_seasonal_cycle_of_the_forcing() -> None:
    """January and July equilibria mirror each other: the hemispheric asymmetry flips sign and the
    tropical maximum follows the sun; land is warm (high) in summer and cold in winter."""
    cfg = ForcingConfig()
    assert solar_declination(np.datetime64("2001-06-21T12")) == pytest.approx(23.44, abs=0.1)
    assert solar_declination(np.datetime64("2001-12-21T12")) == pytest.approx(-23.44, abs=0.1)
    lat = np.linspace(90, -90, 73)
    lon = np.arange(144) * 2.5
    sea = np.zeros((73, 144))
    jan = equilibrium_height(lat, lon, sea, season(np.datetime64("2001-01-15"), cfg.seasonal_lag_days), cfg)[
        :, 0
    ]
    jul = equilibrium_height(lat, lon, sea, season(np.datetime64("2001-07-15"), cfg.seasonal_lag_days), cfg)[
        :, 0
    ]
    w = area_weights(lat) * np.sign(lat)
    asym_jan = np.sum(jan * w)  # northern minus southern hemisphere mean
    asym_jul = np.sum(jul * w)
    assert asym_jan < -100 * np.sum(w[lat > 0]) and asym_jul > 100 * np.sum(w[lat > 0])
    assert lat[np.argmax(jan)] < 0 < lat[np.argmax(jul)]
    # the winter pole is colder (lower) than the summer pole, in both hemispheres
    assert jan[0] - jan.max() < jul[0] - jul.max() - 200
    assert jul[-1] - jul.max() < jan[-1] - jan.max() - 200
    land = np.ones((73, 144))
    i45 = np.argmin(np.abs(lat - 45))
    jul_land = equilibrium_height(
        lat, lon, land, season(np.datetime64("2001-07-15"), cfg.seasonal_lag_days), cfg
    )
    jan_land = equilibrium_height(
        lat, lon, land, season(np.datetime64("2001-01-15"), cfg.seasonal_lag_days), cfg
    )
    assert jul_land[i45, 0] - jul[i45] > 50 and jan_land[i45, 0] - jan[i45] < -50


def test_synthetic_orography_is_realistic() -> None:
    grid = Grid("equiangular", 73, 144)
    lat, lon = grid.latitudes, grid.longitudes
    land = land_fraction(lat, lon, supersample=3)
    h = synthetic_orography(lat, lon, land)
    at = lambda la, lo: h[np.argmin(np.abs(lat - la)), np.argmin(np.abs(lon - lo))]  # noqa: E731
    assert 4000 < h.max() < 6000
    assert at(32.5, 87.5) > 4000  # Tibet
    assert at(-80, 80) > 2500  # East Antarctica
    assert at(72.5, 320) > 1500  # Greenland
    assert at(0, 200) == 0.0  # mid Pacific
    assert np.all(h[land == 0] == 0.0)


# -- land-sea mask ---------------------------------------------------------------------------------
def test_land_fraction_of_the_globe() -> None:
    grid = Grid("equiangular", 73, 144)
    lat, lon = grid.latitudes, grid.longitudes
    lsm = land_fraction(lat, lon)
    assert lsm.shape == (73, 144) and lsm.min() >= 0.0 and lsm.max() <= 1.0
    assert float((lsm * area_weights(lat)[:, None]).mean()) == pytest.approx(0.29, abs=0.01)
    assert lsm[np.argmin(np.abs(lat - 22.5)), np.argmin(np.abs(lon - 15.0))] == 1.0  # Sahara
    assert lsm[np.argmin(np.abs(lat - 0.0)), np.argmin(np.abs(lon - 200.0))] == 0.0  # mid Pacific
    assert lsm[-1].mean() > 0.99 and lsm[0].mean() == 0.0  # Antarctica, Arctic Ocean
    assert 0.0 < lsm[np.argmin(np.abs(lat - 50.0)), np.argmin(np.abs(lon - 357.5))] < 1.0  # a coast
    # -180..180 longitudes describe the same cells
    np.testing.assert_array_equal(land_fraction(lat, lon - 180.0), np.roll(lsm, -72, axis=1))


def test_cartopy_reads_the_shipped_files_and_never_downloads() -> None:
    import cartopy.io.shapereader as shpreader

    use_offline_cartopy()
    path = Path(shpreader.natural_earth("110m", "physical", "coastline"))
    assert path.is_relative_to(NATURALEARTH_DIR)
    with pytest.raises(RuntimeError, match="offline"):
        shpreader.natural_earth("10m", "physical", "rivers_lake_centerlines")


# -- configuration ---------------------------------------------------------------------------------
def test_default_yaml_is_the_default_config() -> None:
    cfg = load_config(SynthConfig, REPO / "configs" / "synth" / "default.yaml")
    assert cfg == SynthConfig()
    assert cfg.n_months == 24 and cfg.start.isoformat() == "2000-01-01T00:00:00"


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  dt_minutes: 50\n")
    with pytest.raises(ConfigError, match="divide"):
        load_config(SynthConfig, bad)
    bad.write_text("start: 2000-01-01T03:00:00\n")
    with pytest.raises(ConfigError, match="00, 06, 12 or 18"):
        load_config(SynthConfig, bad)
    bad.write_text("model:\n  time_step: 10\n")
    with pytest.raises(ConfigError):
        load_config(SynthConfig, bad)


def test_add_months() -> None:
    t = np.datetime64("2000-01-31T18", "s")
    assert add_months(t, 1) == np.datetime64("2000-02-29T18")
    assert add_months(np.datetime64("2000-01-01T00"), 24) == np.datetime64("2002-01-01T00")


def test_grib_pack_quantises_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    x = (50000 + 3000 * rng.standard_normal((3, 10, 20))).astype(np.float32)
    q = grib_pack(x, 16)
    assert q.dtype == np.float32
    for k in range(3):
        step = 2.0 ** np.ceil(np.log2((x[k].max() - x[k].min()) / (2**16 - 1)))
        assert np.abs(q[k] - x[k]).max() <= 0.5 * step + 1e-3
        assert np.all(np.mod(q[k].astype(np.float64), step) == 0.0)


# -- the archive -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("synth")
    return out, write_archive(tiny_config(), out, progress=False)


def test_archive_files_are_monthly_and_six_hourly(archive: tuple[Path, list[Path]]) -> None:
    out, files = archive
    names = sorted(p.relative_to(out).as_posix() for p in files)
    assert names == [
        "invariant/era5_synth_invariant.nc",
        "pressure_levels/era5_synth_pl_200001.nc",
        "pressure_levels/era5_synth_pl_200002.nc",
        "single_levels/era5_synth_sl_200001.nc",
        "single_levels/era5_synth_sl_200002.nc",
    ]
    assert not list(out.rglob("*.partial-*"))
    for key, days in (("200001", 31), ("200002", 29)):
        with xr.open_dataset(out / "pressure_levels" / f"era5_synth_pl_{key}.nc") as ds:
            t = ds.valid_time.values
            assert t.size == 4 * days
            assert str(t[0])[:10] == f"{key[:4]}-{key[4:]}-01"
            assert np.all(np.diff(t) == np.timedelta64(6, "h"))


def test_archive_has_the_cds_layout(archive: tuple[Path, list[Path]]) -> None:
    out, _ = archive
    grid = Grid("equiangular", 19, 36)
    with xr.open_dataset(out / "pressure_levels" / "era5_synth_pl_200001.nc") as pl:
        assert list(pl.data_vars) == ["z", "u", "v", "vo"]
        assert set(pl.coords) == {"valid_time", "pressure_level", "latitude", "longitude", "expver", "number"}
        for name in pl.data_vars:
            var = pl[name]
            assert var.dims == ("valid_time", "pressure_level", "latitude", "longitude")
            assert var.dtype == np.float32
            assert var.attrs["GRIB_shortName"] == name and var.attrs["GRIB_typeOfLevel"] == "isobaricInhPa"
            assert var.attrs["GRIB_gridType"] == "regular_ll" and var.attrs["GRIB_Ny"] == 19
            assert var.encoding["zlib"] and var.encoding["shuffle"] and var.encoding["complevel"] == 4
        assert pl.z.attrs["units"] == "m**2 s**-2" and pl.z.attrs["GRIB_paramId"] == 129
        assert pl.u.attrs["units"] == "m s**-1" and pl.u.attrs["standard_name"] == "eastward_wind"
        assert pl.vo.attrs["units"] == "s**-1" and pl.vo.attrs["GRIB_paramId"] == 138
        assert pl.pressure_level.dtype == np.float64 and pl.pressure_level.values.tolist() == [500.0]
        assert pl.pressure_level.attrs["units"] == "hPa"
        np.testing.assert_array_equal(pl.latitude, grid.latitudes)
        np.testing.assert_array_equal(pl.longitude, grid.longitudes)
        assert (
            pl.latitude.attrs["units"] == "degrees_north"
            and pl.latitude.attrs["stored_direction"] == "decreasing"
        )
        assert pl.expver.dims == ("valid_time",) and set(pl.expver.values.tolist()) == {"0001"}
        assert pl.number.dims == () and int(pl.number) == 0
        assert pl.attrs["Conventions"] == "CF-1.7"
        assert "Synthetic" in pl.attrs["title"] and "NOT ERA5" in pl.attrs["title"]
        assert "forecast" in pl.attrs["source"] and "mean_depth" in pl.attrs["source"]
    with xr.open_dataset(out / "single_levels" / "era5_synth_sl_200001.nc") as sl:
        assert list(sl.data_vars) == ["msl"] and sl.msl.dims == ("valid_time", "latitude", "longitude")
        assert sl.msl.attrs["units"] == "Pa" and sl.msl.attrs["GRIB_typeOfLevel"] == "surface"
        assert "pressure_level" not in sl.dims
    with xr.open_dataset(out / "invariant" / "era5_synth_invariant.nc") as inv:
        assert sorted(inv.data_vars) == ["lsm", "z"]
        assert inv.lsm.dims == ("valid_time", "latitude", "longitude") and inv.sizes["valid_time"] == 1
        assert inv.lsm.attrs["GRIB_paramId"] == 172 and inv.z.attrs["GRIB_typeOfLevel"] == "surface"
        assert 0.0 <= float(inv.lsm.min()) and float(inv.lsm.max()) == 1.0
        assert 1000 * GRAVITY < float(inv.z.max()) < 6000 * GRAVITY
    raw = netCDF4.Dataset(out / "pressure_levels" / "era5_synth_pl_200001.nc")
    try:
        assert raw.data_model == "NETCDF4"
        assert raw["valid_time"].dtype == np.int64 and raw["valid_time"].units.startswith(
            "hours since 2000-01-01"
        )
        assert raw["expver"].dtype is str
    finally:
        raw.close()


def test_archive_values_are_physical(archive: tuple[Path, list[Path]]) -> None:
    out, _ = archive
    with (
        xr.open_dataset(out / "pressure_levels" / "era5_synth_pl_200002.nc") as pl,
        xr.open_dataset(out / "single_levels" / "era5_synth_sl_200002.nc") as sl,
    ):
        for var in list(pl.data_vars.values()) + [sl.msl]:
            assert not bool(var.isnull().any())
        z = pl.z.values / GRAVITY
        assert 4500 < z.min() and z.max() < 6100
        assert z[:, 0, 9].mean() > z[:, 0, 0].mean() + 300  # equator above the winter pole
        assert 5 < float(np.abs(pl.u).max()) < 100 and float(np.abs(pl.v).max()) < 80
        assert 1e-6 < float(pl.vo.std()) and float(np.abs(pl.vo).max()) < 5e-4
        assert 95000 < float(sl.msl.min()) and float(sl.msl.max()) < 107000
        assert float(sl.msl.mean()) == pytest.approx(101325, abs=500)


def test_same_seed_same_archive_other_seed_other_weather(
    archive: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    out, files = archive
    again = write_archive(tiny_config(), tmp_path / "again", progress=False)
    for a, b in zip(files, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    other = write_archive(tiny_config(seed=1, months=1), tmp_path / "other", progress=False)
    with xr.open_dataset(files[1]) as x, xr.open_dataset(other[1]) as y:
        assert float(np.abs(x.v - y.v).max()) > 1.0


@pytest.mark.slow
def test_default_resolution_climate(tmp_path: Path) -> None:
    """Default model and output grid, one January after a month of spin-up: jets, eddies, ranges."""
    cfg = SynthConfig(months=1, spin_up_days=30)
    sim = SynthSimulation(cfg)
    snaps = list(sim.run())
    fields = sim.to_era5(torch.stack([s.spec for s in snaps]))
    lat = Grid("equiangular", 73, 144).latitudes
    u_zm = fields["u"].mean(axis=(0, 2))
    assert 15 < u_zm[lat > 20].max() < 45 and 10 < u_zm[lat < -20].max() < 45
    assert 46000 < fields["z"].min() and fields["z"].max() < 60000  # ERA5 z500 spans ~47000-59500
    assert 94000 < fields["msl"].min() and fields["msl"].max() < 108000  # ERA5: ~935-1065 hPa
    assert 5e-5 < np.abs(fields["vo"]).max() < 5e-4
    v_std = fields["v"].std(axis=0).mean(axis=-1)
    assert v_std[np.argmin(np.abs(lat - 45))] > 5  # transient eddies in the NH storm track


def test_manifest_marks_a_complete_archive_and_stale_months_go(tmp_path: Path) -> None:
    out = tmp_path / "a"
    first = write_archive(tiny_config(), out, progress=False)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert [f["path"] for f in manifest["files"]] == [str(p.relative_to(out)) for p in first]
    assert "seed: 0" in manifest["config"]
    shorter = write_archive(tiny_config(months=1), out, progress=False)
    assert sorted(out.glob("*/era5_synth_*.nc")) == sorted(shorter)


# -- continuation runs (reference climate, issue 9) ------------------------------------------------------
def test_shipped_climate_truth_configs() -> None:
    """climate-truth continues default.yaml (seed, forcing, start) and writes the ten years after the
    training years; climate-truth-b differs from it in the seed only."""
    synth = REPO / "configs" / "synth"
    default = load_config(SynthConfig, synth / "default.yaml")
    truth = load_config(SynthConfig, synth / "climate-truth.yaml")
    other = load_config(SynthConfig, synth / "climate-truth-b.yaml")
    assert truth.model_dump(exclude={"years", "write_start"}) == default.model_dump(exclude={"years", "write_start"})
    assert other.model_dump(exclude={"seed"}) == truth.model_dump(exclude={"seed"}) and other.seed != truth.seed
    # the calendar, on the tiny model (the grid does not change it)
    times = SynthSimulation(tiny_config(**truth.model_dump(exclude={"model", "output"}))).valid_times()
    assert times[0] == np.datetime64("2002-01-01T00:00") and times[-1] == np.datetime64("2011-12-31T18:00")
    assert times.size == 4 * 3652 and np.all(np.diff(times) == OUTPUT_INTERVAL)


def test_config_rejects_write_start_outside_the_run() -> None:
    with pytest.raises(ValueError, match="simulated period"):
        tiny_config(write_start="1999-12-31T18:00")
    with pytest.raises(ValueError, match="simulated period"):
        tiny_config(write_start="2000-03-01T00:00")  # two months from 2000-01-01: the end
    with pytest.raises(ValueError, match="00, 06, 12 or 18"):
        tiny_config(write_start="2000-01-05T03:00")


def _values(path: Path, name: str) -> xr.DataArray:
    with xr.open_dataset(path) as ds:
        return ds[name].load()


def test_continuation_run_continues_the_archive_and_another_seed_does_not(tmp_path: Path) -> None:
    """Two configs as the shipped ones are laid out (base: chain): an archive of January, its
    continuation written from 20 January to the end of February, and the same with another seed. The
    continuation's times start at write_start, its overlap with the first archive is identical (the
    model ran the same way from start), the other seed's weather differs on the same times."""
    (tmp_path / "base.yaml").write_text(
        "months: 1\nspin_up_days: 2\nmodel: {truncation: 10, nlat: 16, nlon: 32, dt_minutes: 90}\n"
        "output: {nlat: 19, nlon: 36}\n"
    )
    (tmp_path / "cont.yaml").write_text("base: base.yaml\nmonths: 2\nwrite_start: 2000-01-20T00:00\n")
    (tmp_path / "cont-b.yaml").write_text("base: cont.yaml\nseed: 1\n")
    runs = {
        name: write_archive(load_config(SynthConfig, tmp_path / f"{name}.yaml"), tmp_path / name, progress=False)
        for name in ("base", "cont", "cont-b")
    }
    names = [p.relative_to(tmp_path / "cont").as_posix() for p in runs["cont"]]
    assert names == [
        "invariant/era5_synth_invariant.nc",
        "pressure_levels/era5_synth_pl_200001.nc",
        "single_levels/era5_synth_sl_200001.nc",
        "pressure_levels/era5_synth_pl_200002.nc",
        "single_levels/era5_synth_sl_200002.nc",
    ]
    def january(run: str, level: str = "pl") -> Path:
        return tmp_path / run / f"{'pressure' if level == 'pl' else 'single'}_levels" / f"era5_synth_{level}_200001.nc"

    jan, jan_cont, jan_b = (january(n) for n in runs)
    cont_times = _values(jan_cont, "z").valid_time.values
    assert cont_times[0] == np.datetime64("2000-01-20T00:00") and cont_times.size == 4 * 12
    with xr.open_dataset(tmp_path / "cont" / "pressure_levels" / "era5_synth_pl_200002.nc") as feb:
        assert feb.valid_time.values[-1] == np.datetime64("2000-02-29T18:00")
    for name in ("z", "u", "v", "vo"):
        a, b = _values(jan, name).sel(valid_time=cont_times), _values(jan_cont, name)
        np.testing.assert_array_equal(a.values, b.values)  # bit for bit
        np.testing.assert_array_equal(_values(jan_b, name).valid_time.values, cont_times)
    a = _values(january("base", "sl"), "msl").sel(valid_time=cont_times)
    np.testing.assert_array_equal(a.values, _values(january("cont", "sl"), "msl").values)
    assert float(np.abs(_values(jan_b, "v") - _values(jan_cont, "v")).max()) > 1.0
    np.testing.assert_array_equal(  # the same invariant fields, stamped with the first time written
        _values(tmp_path / "base" / "invariant" / "era5_synth_invariant.nc", "lsm").values,
        _values(tmp_path / "cont-b" / "invariant" / "era5_synth_invariant.nc", "lsm").values,
    )
