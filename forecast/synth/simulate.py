"""Drive the shallow-water model through the calendar and map its state to ERA5 variables.

:class:`SynthSimulation` builds the static fields (land fraction, orography, drag) and the model
from a :class:`~forecast.synth.config.SynthConfig`, spins up, then yields the spectral state every
6 hours; :meth:`SynthSimulation.to_era5` synthesises a batch of those states on the equiangular
output grid as ``z``, ``u``, ``v``, ``vo`` (one pressure level) and ``msl``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from forecast.grids import Grid
from forecast.naturalearth import land_fraction
from forecast.schema import EARTH_RADIUS, GRAVITY
from forecast.synth.config import SynthConfig
from forecast.synth.forcing import (
    ScalarTransforms,
    Stirring,
    drag_rate,
    equilibrium_height,
    season,
    stirring_envelope,
    synthetic_orography,
)
from forecast.synth.fused import FusedStepper
from forecast.synth.model import ShallowWaterModel
from forecast.synth.spectral import SphericalHarmonics

__all__ = ["OMEGA", "OUTPUT_INTERVAL", "STEPPERS", "Snapshot", "SynthSimulation", "add_months"]

OMEGA = 7.292115e-5  # s-1, Earth's rotation rate
OUTPUT_INTERVAL = np.timedelta64(6, "h")
# Spectral smoothing of the static fields: exp(-k l (l + 1) / (T (T + 1))) is a heat kernel (positive
# in space, so no Gibbs ringing: no sea deeper than a few metres, no ghost ridges) that reduces the
# truncation degree 4-fold.
_SMOOTHING_K = np.log(4.0)
# How the model is stepped: "fused" (forecast.synth.fused, the default, ~4x faster) or "reference"
# (ShallowWaterModel.step, transform by transform); the two agree to rounding (tests/test_synth.py).
STEPPERS = ("fused", "reference")


def add_months(time: np.datetime64, months: int) -> np.datetime64:
    """``time`` moved by whole calendar months, keeping the day (clipped to the target month's last
    day) and the time of day; ``datetime64[s]``."""
    t = np.datetime64(time, "s")
    month = t.astype("datetime64[M]")
    day = np.timedelta64(1, "D")
    days_in, clock = divmod(t - month.astype("datetime64[s]"), day.astype("timedelta64[s]"))
    target = month + np.timedelta64(months, "M")
    last_day = (
        (target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")
    ) - day
    return target.astype("datetime64[s]") + min(int(days_in), int(last_day / day)) * day + clock


@dataclass(frozen=True)
class Snapshot:
    """The model at one valid time: spectral ``vort``, ``div`` (s-1), ``phi`` and ``phi - phi_eq``
    (m2 s-2), stacked as ``spec`` ``(4, lmax, mmax)`` complex128."""

    time: np.datetime64
    spec: torch.Tensor


class SynthSimulation:
    """The configured model with its static fields; iterate :meth:`run` for 6-hourly snapshots.

    ``stepper`` picks the implementation of the time step (:data:`STEPPERS`); both integrate the same
    equations with the same step and filters and differ by rounding only.
    """

    def __init__(self, config: SynthConfig, stepper: str = "fused") -> None:
        if stepper not in STEPPERS:
            raise ValueError(f"unknown stepper {stepper!r}; choose one of {STEPPERS}")
        self.config = config
        mc, fc, oc = config.model, config.forcing, config.output
        lmax = mc.truncation + 1
        self.sph = SphericalHarmonics(mc.nlat, mc.nlon, lmax, "legendre-gauss", EARTH_RADIUS)
        self.out = SphericalHarmonics(oc.nlat, oc.nlon, lmax, "equiangular", EARTH_RADIUS)
        degree = torch.arange(lmax, dtype=torch.float64)[:, None]
        self._smooth = torch.exp(
            -_SMOOTHING_K * degree * (degree + 1) / (mc.truncation * (mc.truncation + 1))
        )

        # Static fields are built on a grid twice as fine as the model's, then projected on T.
        fine = SphericalHarmonics(2 * mc.nlat, 2 * mc.nlon, lmax, "legendre-gauss", EARTH_RADIUS)
        lat_f, lon_f = fine.latitudes_deg(), fine.longitudes_deg()
        land_f = land_fraction(lat_f, lon_f, supersample=3)
        orog_f = synthetic_orography(lat_f, lon_f, land_f)
        self.orography_spec = self._project(fine, orog_f)  # m, (lmax, mmax)
        self.land = self.sph.to_grid(self._project(fine, land_f)).clamp(0.0, 1.0)  # (nlat, nlon)
        self._land_np = self.land.numpy()
        self.lat, self.lon = self.sph.latitudes_deg(), self.sph.longitudes_deg()

        orography = self.sph.to_grid(self.orography_spec) * (mc.mean_depth / mc.orography_reference_depth)
        drag = torch.from_numpy(drag_rate(self.land.numpy(), fc.drag_ocean_days, fc.drag_land_days))
        self.model = ShallowWaterModel(
            self.sph,
            dt=mc.dt_minutes * 60.0,
            mean_depth=mc.mean_depth,
            gravity=GRAVITY,
            omega=OMEGA,
            orography=orography,
            drag=drag,
            relaxation_time=fc.relaxation_days * 86400.0,
            hyperdiffusion_time=mc.hyperdiffusion_hours * 3600.0,
            hyperdiffusion_order=mc.hyperdiffusion_order,
            filter_nu=mc.filter_nu,
            filter_alpha=mc.filter_alpha,
        )
        self.steps_per_output = round(360.0 / mc.dt_minutes)
        self.stepper = FusedStepper(self.model) if stepper == "fused" else None
        # Scalar transforms of the forcings: the fused stepper's are torch-harmonics' without wrappers.
        self.transforms: ScalarTransforms = self.stepper if self.stepper is not None else self.sph

    def _project(self, fine: SphericalHarmonics, field: np.ndarray) -> torch.Tensor:
        return fine.to_spec(torch.from_numpy(field)) * self._smooth

    # -- time ---------------------------------------------------------------------------------------
    @property
    def start(self) -> np.datetime64:
        """First valid time of the simulation after its spin-up."""
        return np.datetime64(self.config.start, "s")

    @property
    def write_start(self) -> np.datetime64:
        """First valid time written (``config.write_start``, else :attr:`start`)."""
        return np.datetime64(self.config.write_start or self.config.start, "s")

    @property
    def end(self) -> np.datetime64:
        """First valid time *not* written: ``start`` plus the configured months."""
        return add_months(self.start, self.config.n_months)

    def valid_times(self) -> np.ndarray:
        """All 6-hourly valid times written, ``datetime64[s]``."""
        return np.arange(self.write_start, self.end, OUTPUT_INTERVAL).astype("datetime64[s]")

    # -- forcing --------------------------------------------------------------------------------------
    def phi_eq(self, time: np.datetime64) -> torch.Tensor:
        """Spectral equilibrium geopotential anomaly (m2 s-2) at ``time``, global mean zero."""
        fc = self.config.forcing
        h = equilibrium_height(self.lat, self.lon, self._land_np, season(time, fc.seasonal_lag_days), fc)
        spec = self.transforms.to_spec(torch.from_numpy(h) * GRAVITY)
        spec[0, 0] = 0.0
        return spec

    # -- integration ------------------------------------------------------------------------------------
    def initial_state(self) -> torch.Tensor:
        """Rest, flat surface, plus weak seeded vorticity noise that breaks the symmetry."""
        gen = torch.Generator().manual_seed(int(self.config.seed) + 7919)
        shape = (self.sph.lmax, self.sph.lmax)
        noise = torch.complex(
            torch.randn(shape, generator=gen, dtype=torch.float64),
            torch.randn(shape, generator=gen, dtype=torch.float64),
        )
        noise[:, 0] = noise[:, 0].real
        degree = torch.arange(self.sph.lmax)[:, None]
        vort = 1e-6 * noise * self.sph.valid * (degree >= 2)
        zeros = torch.zeros_like(vort)
        return torch.stack((vort, zeros, zeros))

    def run(self, on_window: Callable[[np.datetime64], None] | None = None) -> Iterator[Snapshot]:
        """Spin up, then yield a :class:`Snapshot` at every 6-hourly valid time in [write_start, end);
        the times from start to write_start are integrated the same way, only not yielded.

        ``on_window(time)`` is called after each 6-hour window is integrated, spin-up included
        (progress bars). Deterministic for a given seed, torch build and thread count (the archive
        writer runs it on one thread).
        """
        cfg = self.config
        windows = int(round(cfg.spin_up_days * 4))  # spin-up in whole 6-hour windows
        time = self.start - windows * OUTPUT_INTERVAL
        fc = cfg.forcing
        drift = fc.stirring_speed / (EARTH_RADIUS * np.cos(np.deg2rad(fc.stirring_latitude)))
        stirring = Stirring(self.sph, fc.stirring_degrees, fc.stirring_days, cfg.seed, drift, self.transforms)
        prev = now = self.initial_state()
        first = True
        end, first_written = self.end, self.write_start
        while time < end:
            phi_eq = self.phi_eq(time)
            if time >= first_written:
                yield Snapshot(time, torch.cat((now, (now[2] - phi_eq)[None])))
            if time + OUTPUT_INTERVAL >= end:
                break
            prev, now = self._advance(prev, now, phi_eq, stirring, time, first)
            first = False
            if not bool(torch.isfinite(torch.view_as_real(now)).all()):
                raise FloatingPointError(
                    f"the shallow-water model blew up before {time + OUTPUT_INTERVAL}; "
                    f"reduce model.dt_minutes (now {cfg.model.dt_minutes})"
                )
            if on_window is not None:
                on_window(time)
            time = time + OUTPUT_INTERVAL

    @torch.no_grad()
    def _advance(
        self,
        prev: torch.Tensor,
        now: torch.Tensor,
        phi_eq: torch.Tensor,
        stirring: Stirring,
        time: np.datetime64,
        first: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate one 6-hour window with forcings held at their values for ``time``."""
        fc = self.config.forcing
        forcing = None
        if fc.stirring_amplitude > 0:
            phase = season(time, fc.seasonal_lag_days)
            env = torch.from_numpy(stirring_envelope(self.lat, self._land_np, phase, fc))
            forcing = stirring.forcing(env, fc.stirring_amplitude)
            stirring.advance(OUTPUT_INTERVAL / np.timedelta64(1, "s"))
        if self.stepper is not None:
            return self.stepper.advance(prev, now, self.steps_per_output, phi_eq, forcing, first)
        for k in range(self.steps_per_output):
            prev, now = self.model.step(prev, now, phi_eq, forcing, first=first and k == 0)
        return prev, now

    # -- output -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def to_era5(self, spec: torch.Tensor) -> dict[str, np.ndarray]:
        """ERA5 variables on the output grid from stacked snapshots ``(ntime, 4, lmax, mmax)``.

        Returns float32 arrays ``(ntime, nlat, nlon)`` (north to south, from 0 east): ``z`` (m2 s-2),
        ``u``, ``v`` (m s-1), ``vo`` (s-1) and ``msl`` (Pa).
        """
        oc = self.config.output
        spec = spec.to(torch.complex64)  # the files hold float32: synthesise in single precision (2x faster)
        dyn = spec[:, 3] * oc.msl_eddy_density
        dyn[..., 0] = spec[:, 3, :, 0] * oc.msl_zonal_density  # m = 0: the zonal mean
        dyn[:, 0, 0] = 0.0  # msl anomalies have no global mean: the reference carries it
        grid = self.out.to_grid(torch.stack((spec[:, 0], spec[:, 2], dyn), dim=1))  # (T, 3, nlat, nlon)
        uv = self.out.winds(spec[:, :2])  # (T, 2, nlat, nlon)
        fields = {
            "z": grid[:, 1] + GRAVITY * oc.mean_height,
            "u": uv[:, 0],
            "v": uv[:, 1],
            "vo": grid[:, 0],
            "msl": oc.msl_reference + grid[:, 2],
        }
        return {k: v.numpy().astype(np.float32) for k, v in fields.items()}

    def invariants(self) -> dict[str, np.ndarray]:
        """Static fields on the output grid, float32 ``(nlat, nlon)``: ``lsm`` (land fraction of each
        cell from Natural Earth) and ``z`` (surface geopotential, m2 s-2, of the smoothed orography)."""
        grid = Grid("equiangular", self.out.nlat, self.out.nlon)
        lsm = land_fraction(grid.latitudes, grid.longitudes, supersample=5)
        with torch.no_grad():
            z = GRAVITY * self.out.to_grid(self.orography_spec)
        return {"lsm": lsm.astype(np.float32), "z": z.numpy().astype(np.float32)}
