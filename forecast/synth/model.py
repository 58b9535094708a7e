"""A forced-dissipative shallow-water model on the sphere, in vorticity-divergence form.

One layer of fluid of mean depth ``H`` over orography ``h_s`` stands for the atmosphere's
equivalent-barotropic mid-troposphere. The prognostic state is spectral, shape
``(3, lmax, mmax)`` complex: relative vorticity ``zeta`` (s-1), divergence ``delta`` (s-1) and
the free-surface geopotential anomaly ``phi = g eta`` (m2 s-2), the surface height being ``H + eta``
and the fluid depth ``H + eta - h_s``. The equations, with ``A = (zeta + f) u - r k x u``
(Coriolis, advection and Rayleigh drag ``r(x)`` in one flux) and ``K = |u|^2 / 2``:

    d zeta / dt  = -div A                                   + F_zeta     (stirring)
    d delta / dt =  k . curl A - lap(phi + K)
    d phi / dt   = -div((g H + phi - g h_s) u) - (phi - phi_eq) / tau    (Newtonian relaxation)

plus implicit scale-selective hyperdiffusion on all three. Time stepping is leapfrog with the
gravity-wave terms (``-lap phi`` and ``-g H delta``) treated by the trapezoidal rule (semi-implicit),
the relaxation lagged at ``n - 1`` and a Robert-Asselin-Williams filter against the computational
mode. Pure torch: no I/O, no calendar; forcings arrive as spectral tensors on each call.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from forecast.synth.spectral import SphericalHarmonics

__all__ = ["ShallowWaterModel", "williamson2_state"]

VORT, DIV, PHI = 0, 1, 2


class ShallowWaterModel(nn.Module):
    """Semi-implicit spectral shallow-water model on ``sph``'s grid.

    Parameters are SI: ``dt`` (s), ``mean_depth`` (m), ``gravity`` (m s-2), ``omega`` (s-1),
    ``orography`` the *dynamically effective* surface height ``(nlat, nlon)`` (m), ``drag`` the
    Rayleigh drag rate ``(nlat, nlon)`` (s-1), ``relaxation_time`` (s, ``None`` for none),
    ``hyperdiffusion_time`` the e-folding time of the largest retained degree (s, ``None`` for none)
    with ``hyperdiffusion_order`` ``p`` for a ``lap**p`` operator, and the filter's strength
    ``filter_nu`` and Williams' ``filter_alpha`` (1 gives the classical Robert-Asselin filter).
    """

    def __init__(
        self,
        sph: SphericalHarmonics,
        dt: float,
        mean_depth: float,
        gravity: float,
        omega: float,
        orography: torch.Tensor | None = None,
        drag: torch.Tensor | None = None,
        relaxation_time: float | None = None,
        hyperdiffusion_time: float | None = None,
        hyperdiffusion_order: int = 4,
        filter_nu: float = 0.1,
        filter_alpha: float = 0.53,
    ) -> None:
        super().__init__()
        self.sph = sph
        self.dt = float(dt)
        self.mean_depth = float(mean_depth)
        self.gravity = float(gravity)
        self.filter_nu = float(filter_nu)
        self.filter_alpha = float(filter_alpha)
        self.relaxation_rate = 0.0 if relaxation_time is None else 1.0 / float(relaxation_time)
        shape = (sph.nlat, sph.nlon)
        zeros = torch.zeros(shape, dtype=torch.float64)
        orography = zeros if orography is None else orography.to(torch.float64)
        drag = zeros if drag is None else drag.to(torch.float64)
        if orography.shape != shape or drag.shape != shape:
            raise ValueError(f"orography and drag must have the model grid's shape {shape}")
        if float((mean_depth - orography).min()) <= 0:
            raise ValueError("the orography pierces the fluid: reduce it or deepen the layer")
        self.register_buffer("coriolis", (2 * omega * torch.sin(sph.lat))[:, None].expand(shape).clone())
        self.register_buffer("orography_phi", gravity * orography)  # g h_s, m2 s-2
        self.register_buffer("drag", drag)
        if hyperdiffusion_time is None:
            rate = torch.zeros_like(sph.eig)
        else:
            top = float(sph.eig.max())
            rate = (sph.eig / top) ** hyperdiffusion_order / float(hyperdiffusion_time)
        self.register_buffer("diffusion_rate", rate)  # (lmax, mmax), s-1
        # -lap in spectral space, l (l + 1) / a**2: the gravity-wave coupling of delta and phi.
        self.register_buffer("neg_lap", sph.eig / sph.radius**2)

    # -- diagnostics ------------------------------------------------------------------------------
    def grid_state(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Grid fields of a state: ``vort``, ``div`` (s-1), ``phi`` (m2 s-2), ``u``, ``v`` (m s-1), each
        ``(nlat, nlon)`` (or with the state's leading batch dimensions)."""
        grid = self.sph.to_grid(state)
        uv = self.sph.winds(state[..., :2, :, :])
        return {
            "vort": grid[..., 0, :, :],
            "div": grid[..., 1, :, :],
            "phi": grid[..., 2, :, :],
            "u": uv[..., 0, :, :],
            "v": uv[..., 1, :, :],
        }

    def depth(self, phi: torch.Tensor) -> torch.Tensor:
        """Fluid depth ``H + phi / g - h_s`` (m) from the grid geopotential anomaly (m2 s-2)."""
        return self.mean_depth + (phi - self.orography_phi) / self.gravity

    def mass(self, state: torch.Tensor) -> torch.Tensor:
        """Total fluid volume (m3): conserved exactly without relaxation."""
        return self.sph.integrate(self.depth(self.sph.to_grid(state[..., PHI, :, :])))

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        """Total energy per unit density (m5 s-2): kinetic ``d |u|^2 / 2`` plus potential
        ``g ((H + eta)^2 - h_s^2) / 2``, conserved by the inviscid unforced equations."""
        f = self.grid_state(state)
        d = self.depth(f["phi"])
        surface = self.mean_depth + f["phi"] / self.gravity
        hs = self.orography_phi / self.gravity
        density = 0.5 * d * (f["u"] ** 2 + f["v"] ** 2) + 0.5 * self.gravity * (surface**2 - hs**2)
        return self.sph.integrate(density)

    # -- dynamics ---------------------------------------------------------------------------------
    def explicit_tendency(
        self,
        now: torch.Tensor,
        prev: torch.Tensor,
        phi_eq: torch.Tensor | None,
        vort_forcing: torch.Tensor | None,
    ) -> torch.Tensor:
        """Tendencies ``(3, lmax, mmax)`` of everything but the implicit gravity-wave terms and
        the hyperdiffusion; relaxation acts on ``prev`` (a damping term must lag in leapfrog)."""
        sph = self.sph
        grid = sph.to_grid(now)  # (3, nlat, nlon): zeta, delta, phi
        uv = sph.winds(now[:2])  # (2, nlat, nlon): u, v
        u, v = uv[0], uv[1]
        absvort = grid[VORT] + self.coriolis
        flux_a = torch.stack((absvort * u + self.drag * v, absvort * v - self.drag * u))
        # The gH delta part of the mass flux divergence is implicit; its remainder is explicit.
        flux_m = (grid[PHI] - self.orography_phi) * uv
        curl_div = sph.curl_div(torch.stack((flux_a, flux_m)))  # (2, 2, lmax, mmax)
        kinetic = sph.to_spec(0.5 * (u * u + v * v))
        tend = torch.empty_like(now)
        tend[VORT] = -curl_div[0, 1]
        tend[DIV] = curl_div[0, 0] + self.neg_lap * kinetic
        tend[PHI] = -curl_div[1, 1]
        if vort_forcing is not None:
            tend[VORT] += vort_forcing
        if phi_eq is not None and self.relaxation_rate > 0:
            tend[PHI] -= self.relaxation_rate * (prev[PHI] - phi_eq)
        return tend

    def step(
        self,
        prev: torch.Tensor,
        now: torch.Tensor,
        phi_eq: torch.Tensor | None = None,
        vort_forcing: torch.Tensor | None = None,
        first: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One leapfrog step: ``(prev, now)`` at ``n - 1, n`` -> ``(now filtered, next)`` at ``n, n + 1``.

        ``first=True`` makes a semi-implicit forward step of ``dt`` from ``now`` (pass ``prev = now``)
        to start the leapfrog. ``phi_eq`` (m2 s-2) and ``vort_forcing`` (s-2) are spectral
        ``(lmax, mmax)`` tensors held fixed over the step.
        """
        leap = self.dt if first else 2.0 * self.dt
        if first:
            prev = now
        tend = self.explicit_tendency(now, prev, phi_eq, vort_forcing)
        half = 0.5 * leap
        gh = self.gravity * self.mean_depth
        c2 = half * half * self.neg_lap * gh
        # Trapezoidal gravity waves: delta+ = delta- + leap N_d + half L (phi+ + phi-),
        # phi+ = phi- + leap N_p - half g H (delta+ + delta-); eliminate phi+ and solve for delta+.
        div_new = (
            (1.0 - c2) * prev[DIV]
            + leap * tend[DIV]
            + leap * self.neg_lap * prev[PHI]
            + leap * half * self.neg_lap * tend[PHI]
        ) / (1.0 + c2)
        phi_new = prev[PHI] + leap * tend[PHI] - half * gh * (div_new + prev[DIV])
        vort_new = prev[VORT] + leap * tend[VORT]
        new = torch.stack((vort_new, div_new, phi_new)) / (1.0 + leap * self.diffusion_rate)
        if first:
            return now, new
        # Robert-Asselin-Williams filter: damps the computational mode, keeps the mean of the three levels.
        d = 0.5 * self.filter_nu * (prev - 2.0 * now + new)
        return now + self.filter_alpha * d, new - (1.0 - self.filter_alpha) * d

    def integrate(self, state: torch.Tensor, nsteps: int, phi_eq: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``nsteps`` steps from a single ``state`` under steady forcing; returns the final state."""
        prev, now = self.step(state, state, phi_eq, first=True)
        for _ in range(nsteps - 1):
            prev, now = self.step(prev, now, phi_eq)
        return now


def williamson2_state(sph: SphericalHarmonics, omega: float, u0: float | None = None) -> torch.Tensor:
    """Williamson et al. (1992) test case 2: steady zonal geostrophic flow ``u = u0 cos(lat)``.

    Returns the spectral state ``(3, lmax, mmax)`` whose ``phi`` is the balancing free-surface
    anomaly ``-(a Omega u0 + u0^2 / 2) sin^2(lat)`` (with its global mean removed, so the layer
    keeps its mean depth). ``u0`` defaults to one revolution in 12 days (about 38.6 m s-1).
    """
    a = sph.radius
    u0 = 2 * math.pi * a / (12 * 86400.0) if u0 is None else u0
    lat = sph.lat[:, None].expand(sph.nlat, sph.nlon)
    u = u0 * torch.cos(lat)
    vortdiv = sph.vortdiv(torch.stack((u, torch.zeros_like(u))))
    phi = -(a * omega * u0 + 0.5 * u0**2) * torch.sin(lat) ** 2
    phi_spec = sph.to_spec(phi)
    phi_spec[0, 0] = 0.0
    return torch.cat((vortdiv, phi_spec[None]))
