"""The time step of :class:`~forecast.synth.model.ShallowWaterModel` in few, large operations.

:meth:`ShallowWaterModel.step` is the readable reference: it calls torch-harmonics' scalar and vector
transforms one by one (eight a step, one of them unused, each a dozen small einsums, copies and an
autograd-aware FFT wrapper), so at T31 it spends most of its time in per-operation overhead.
:class:`FusedStepper` computes the same step from the same Legendre matrices (torch-harmonics' own
buffers), with the spectral factors of the operators folded in once, on a state kept in the layout
the matrix products want, ``(m, field, re/im, l)`` real:

* synthesis: a constant +-1 matrix sorts the real and imaginary parts of ``(zeta, delta, phi)`` into
  the columns each Legendre block needs, one batched matmul over ``m`` gives the Fourier coefficients
  of ``zeta``, ``phi``, ``u``, ``v`` (scalar and wind-scaled vector blocks side by side), one matmul
  with the real inverse-DFT matrix the four grid fields ``(lon, field, lat)`` (at 96 longitudes and 32
  orders a dense DFT costs less than an FFT and the transposes around it);
* analysis: one DFT matmul of the five nonlinear products, the same sorting and one batched matmul give
  the three tendencies (curl and divergence of the momentum flux, divergence of the mass flux, Laplacian
  of the kinetic energy, signs and ``l (l + 1)`` factors included) directly in the state's layout;
* the semi-implicit update, hyperdiffusion and Robert-Asselin-Williams filter use per-coefficient
  factors precomputed for the two leap lengths; forcings held over a window are converted once;
* the scalar transforms of the forcings (:meth:`FusedStepper.to_spec`, :meth:`FusedStepper.to_grid`)
  run torch-harmonics' own operations without its module and autograd wrappers (bit-identical).

Same equations, time step, filters and float64: only the rounding differs (sums grouped differently),
by a few units in the last place per step; ``tests/test_synth.py`` checks runs against the reference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from forecast.synth.model import DIV, PHI, VORT, ShallowWaterModel

__all__ = ["FusedStepper"]

# Synthesis: inputs (zeta, delta, phi) = 0, 1, 2; blocks P (scalar), D0 and D1 (vector, times the wind
# factor -a / (l (l + 1))); outputs (zeta, phi, u, v), from
# zeta = P zeta, phi = P phi, u = D0 zeta + i D1 delta, v = i D1 zeta - D0 delta.
# Each entry: (output field, part): [(block, input field, input part, sign)], part 0 real, 1 imaginary.
_SYNTHESIS = {
    (0, 0): [(0, 0, 0, 1)], (0, 1): [(0, 0, 1, 1)],
    (1, 0): [(0, 2, 0, 1)], (1, 1): [(0, 2, 1, 1)],
    (2, 0): [(1, 0, 0, 1), (2, 1, 1, -1)], (2, 1): [(1, 0, 1, 1), (2, 1, 0, 1)],
    (3, 0): [(2, 0, 1, -1), (1, 1, 0, -1)], (3, 1): [(2, 0, 0, 1), (1, 1, 1, -1)],
}
# Analysis: inputs (A_east, A_north, M_east, M_north, K) = 0..4; blocks W0, W1 (vector analysis times
# -l (l + 1) / a) and Wk (scalar analysis times l (l + 1) / a**2); outputs the tendencies
# vort = -i W1 A_e + W0 A_n, div = W0 A_e + i W1 A_n + Wk K, phi = -i W1 M_e + W0 M_n.
_ANALYSIS = {
    (VORT, 0): [(1, 0, 1, 1), (0, 1, 0, 1)], (VORT, 1): [(1, 0, 0, -1), (0, 1, 1, 1)],
    (DIV, 0): [(0, 0, 0, 1), (1, 1, 1, -1), (2, 4, 0, 1)],
    (DIV, 1): [(0, 0, 1, 1), (1, 1, 0, 1), (2, 4, 1, 1)],
    (PHI, 0): [(1, 2, 1, 1), (0, 3, 0, 1)], (PHI, 1): [(1, 2, 0, -1), (0, 3, 1, 1)],
}


def _sorter(table: dict[tuple[int, int], list[tuple[int, int, int, int]]], rows: tuple[str, ...],
            columns: tuple[str, ...], inputs: int) -> torch.Tensor:
    """+-1 matrix mapping input (field, part) columns to the columns each block multiplies, with its rows
    in the order ``rows`` names (``field``, ``part``, ``block``) and its columns in the order ``columns``
    names (``field``, ``part``)."""
    out = torch.zeros(3, max(f for f, _ in table) + 1, 2, inputs, 2, dtype=torch.float64)
    for (field, part), terms in table.items():
        for block, in_field, in_part, sign in terms:
            out[block, field, part, in_field, in_part] = sign
    dims = {"block": 0, "field": 1, "part": 2}
    order = [dims[r] for r in rows] + [{"field": 3, "part": 4}[c] for c in columns]
    return out.permute(*order).reshape(-1, 2 * inputs).contiguous()


def _fourier(nlon: int, mmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real DFT matrices of ``torch.fft.rfft`` / ``irfft`` with ``norm="forward"`` for the first ``mmax``
    orders: analysis ``(mmax x (re, im), nlon)`` and synthesis ``(nlon, mmax x (re, im))``."""
    m = torch.arange(mmax, dtype=torch.int64)[:, None]
    n = torch.arange(nlon, dtype=torch.int64)[None, :]
    angle = (2 * math.pi / nlon) * ((m * n) % nlon).to(torch.float64)  # exact argument reduction
    cos, sin = torch.cos(angle), torch.sin(angle)
    analysis = torch.stack((cos, -sin), dim=1).reshape(2 * mmax, nlon) / nlon
    weight = torch.where(m > 0, 2.0, 1.0)  # the conjugate half of the spectrum (mmax <= nlon / 2)
    synthesis = torch.stack((weight * cos, -weight * sin), dim=1).reshape(2 * mmax, nlon).T
    return analysis.contiguous(), synthesis.contiguous()


class FusedStepper(nn.Module):
    """:meth:`ShallowWaterModel.step` of ``model`` with fused transforms: same call, same result to rounding.

    :meth:`advance` runs several steps under fixed forcings and is what the archive uses; calling the
    module makes one step as :meth:`ShallowWaterModel.step` does. Internally a state is packed as
    ``(mmax, 3 fields, 2 parts, lmax)`` real (:meth:`pack`), grid fields are ``(nlon, field, nlat)``.
    """

    def __init__(self, model: ShallowWaterModel) -> None:
        super().__init__()
        sph = model.sph
        if 2 * sph.lmax > sph.nlon:
            raise ValueError("the fused step needs nlon >= 2 lmax (no Nyquist order)")
        self.model = model
        self.nlon, self.nlat, self.lmax = sph.nlon, sph.nlat, sph.lmax
        degree_factor = sph.eig[:, 0]  # l (l + 1), by degree
        wind = (-sph.radius * sph.inv_eig[:, 0])[None, None, :]  # vorticity/divergence -> wind potentials
        pct, dpct = sph.isht.pct, sph.ivsht.dpct  # (m, lat, l), (2, m, lat, l)
        blocks = torch.stack((pct, dpct[0] * wind, dpct[1] * wind), dim=1)  # (m, block, lat, l)
        self.register_buffer("synthesis", blocks.transpose(2, 3).reshape(sph.lmax, -1, sph.nlat).contiguous())
        vec = sph.vsht.weights * (-degree_factor / sph.radius)[None, None, :, None]  # (2, m, l, lat)
        lap = sph.sht.weights * (degree_factor / sph.radius**2)[None, :, None]  # (m, l, lat)
        blocks = torch.stack((vec[0], vec[1], lap), dim=1)  # (m, block, l, lat)
        self.register_buffer("analysis", blocks.transpose(2, 3).reshape(sph.lmax, -1, sph.lmax).contiguous())
        # Sorting: synthesis rows (part, output field, block), analysis rows (output field, part, block).
        self.register_buffer("sort_synthesis", _sorter(_SYNTHESIS, ("part", "field", "block"), ("field", "part"), 3))
        self.register_buffer("sort_analysis", _sorter(_ANALYSIS, ("field", "part", "block"), ("part", "field"), 5))
        dft, idft = _fourier(sph.nlon, sph.lmax)
        self.register_buffer("dft", dft)  # (m x part, lon)
        self.register_buffer("idft", idft)  # (lon, m x part)
        # Grid fields in (lon, lat) order.
        self.register_buffer("coriolis", model.coriolis.T.contiguous())
        self.register_buffer("orography_phi", model.orography_phi.T.contiguous())
        self.register_buffer("drag", model.drag.T.contiguous())
        self._factors = {leap: self._update_factors(leap) for leap in (model.dt, 2.0 * model.dt)}

    def _update_factors(self, leap: float) -> dict[str, torch.Tensor | float]:
        m = self.model
        half = 0.5 * leap
        gh = m.gravity * m.mean_depth
        c2 = half * half * m.neg_lap * gh

        def coeff(x: torch.Tensor) -> torch.Tensor:  # (l, m) -> (m, 1, l), broadcast over (re, im)
            return x.T[:, None, :].contiguous()

        return {
            "div_prev": coeff((1.0 - c2) / (1.0 + c2)),
            "div_tend": coeff(leap / (1.0 + c2)),
            "div_phi": coeff(leap * m.neg_lap / (1.0 + c2)),
            "div_tphi": coeff(leap * half * m.neg_lap / (1.0 + c2)),
            "damp": coeff(1.0 / (1.0 + leap * m.diffusion_rate))[:, None],  # (m, 1, 1, l)
            "leap": leap,
            "half_gh": half * gh,
        }

    # -- scalar transforms of the forcings, as torch-harmonics computes them ---------------------------
    def to_spec(self, field: torch.Tensor) -> torch.Tensor:
        """:meth:`SphericalHarmonics.to_spec`, bit for bit: grid ``(..., nlat, nlon)`` -> ``(..., lmax, mmax)``."""
        x = torch.fft.rfft(field, dim=-1, norm="forward")[..., : self.lmax].transpose(-1, -2)
        w = self.model.sph.sht.weights
        re = torch.einsum("...mk,mlk->...lm", x.real.contiguous(), w)
        im = torch.einsum("...mk,mlk->...lm", x.imag.contiguous(), w)
        return torch.complex(re.contiguous(), im.contiguous())

    def to_grid(self, spec: torch.Tensor) -> torch.Tensor:
        """:meth:`SphericalHarmonics.to_grid`, bit for bit: ``(..., lmax, mmax)`` -> grid ``(..., nlat, nlon)``."""
        x = spec.transpose(-1, -2)
        pct = self.model.sph.isht.pct
        re = torch.einsum("...ml,mkl->...km", x.real.contiguous(), pct)
        im = torch.einsum("...ml,mkl->...km", x.imag.contiguous(), pct)
        im[..., 0] = 0.0  # the imaginary part of m = 0 is not a real field's
        return torch.fft.irfft(torch.complex(re.contiguous(), im.contiguous()), n=self.nlon, dim=-1, norm="forward")

    # -- layout -------------------------------------------------------------------------------------
    @staticmethod
    def pack(spec: torch.Tensor) -> torch.Tensor:
        """Spectral fields ``(..., lmax, mmax)`` complex -> ``(mmax, ..., 2, lmax)`` real (the stepper's layout)."""
        x = torch.view_as_real(spec)
        nd = x.ndim
        return x.permute(nd - 2, *range(nd - 3), nd - 1, nd - 3).contiguous()

    @staticmethod
    def unpack(state: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`pack`."""
        nd = state.ndim
        return torch.view_as_complex(state.permute(*range(1, nd - 2), nd - 1, 0, nd - 2).contiguous())

    # -- the step -------------------------------------------------------------------------------------
    def grid_fields(self, state: torch.Tensor) -> torch.Tensor:
        """``(zeta, phi, u, v)`` on the grid, ``(nlon, 4, nlat)``, from a packed state ``(m, 3, 2, l)``."""
        lmax = self.lmax
        x = (self.sort_synthesis @ state.view(lmax, 6, lmax)).view(lmax, 8, 3 * lmax)  # (m, part x field, block x l)
        coeff = torch.bmm(x, self.synthesis)  # (m, part x field, lat): Fourier coefficients
        return (self.idft @ coeff.view(2 * lmax, -1)).view(self.nlon, 4, self.nlat)

    def tendency(self, state: torch.Tensor) -> torch.Tensor:
        """Dynamical tendencies of a packed state, packed ``(m, 3, 2, l)``: those of
        :meth:`ShallowWaterModel.explicit_tendency` without the forcing and relaxation terms."""
        lmax = self.lmax
        grid = self.grid_fields(state)  # (lon, 4, lat)
        uv = grid[:, 2:]
        # (absolute vorticity, height above the orography) x (u, v): A without drag, and M.
        scale = torch.stack((grid[:, 0] + self.coriolis, grid[:, 1] - self.orography_phi), dim=1)
        products = torch.empty((self.nlon, 5, self.nlat), dtype=grid.dtype)
        flux = products[:, :4].view(self.nlon, 2, 2, self.nlat)
        torch.mul(scale[:, :, None], uv[:, None], out=flux)
        flux[:, 0, 0].addcmul_(self.drag, grid[:, 3])  # A = (zeta + f) u - r k x u
        flux[:, 0, 1].addcmul_(self.drag, grid[:, 2], value=-1.0)
        torch.sum(uv * uv, dim=1, out=products[:, 4]).mul_(0.5)  # kinetic energy
        coeff = (self.dft @ products.view(self.nlon, -1)).view(lmax, 10, self.nlat)  # (m, part x field, lat)
        x = (self.sort_analysis @ coeff).view(lmax, 6, -1)  # (m, field x part, block x lat)
        return torch.bmm(x, self.analysis).view(lmax, 3, 2, lmax)

    def forcing(self, phi_eq: torch.Tensor | None, vort_forcing: torch.Tensor | None) -> torch.Tensor | None:
        """Packed tendencies ``(m, 3, 2, l)`` of the window's fixed forcings (stirring, relaxation target)."""
        m = self.model
        relax = phi_eq is not None and m.relaxation_rate > 0
        if vort_forcing is None and not relax:
            return None
        zero = torch.zeros((self.lmax, self.lmax), dtype=torch.complex128)
        vort = zero if vort_forcing is None else vort_forcing
        phi = m.relaxation_rate * phi_eq if relax else zero
        return self.pack(torch.stack((vort, zero, phi)))

    def packed_step(self, prev: torch.Tensor, now: torch.Tensor, forcing: torch.Tensor | None,
                    relax: bool, first: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on packed states; ``forcing`` from :meth:`forcing`, ``relax`` whether the height
        relaxes (towards the target included in ``forcing``)."""
        m = self.model
        if first:
            prev = now
        f = self._factors[m.dt if first else 2.0 * m.dt]
        tend = self.tendency(now)
        if forcing is not None:
            tend += forcing
        if relax:
            tend[:, PHI].sub_(prev[:, PHI], alpha=m.relaxation_rate)
        old_div, old_phi = prev[:, DIV], prev[:, PHI]
        div_new = f["div_prev"] * old_div
        div_new.addcmul_(f["div_tend"], tend[:, DIV]).addcmul_(f["div_phi"], old_phi)
        div_new.addcmul_(f["div_tphi"], tend[:, PHI])
        new = torch.add(prev, tend, alpha=f["leap"])  # vorticity done; phi lacks the gravity-wave term
        new[:, PHI].sub_(div_new + old_div, alpha=f["half_gh"])
        new[:, DIV] = div_new
        new *= f["damp"]
        if first:
            return now, new
        # Robert-Asselin-Williams filter of the computational mode.
        d = torch.add(prev, now, alpha=-2.0).add_(new)
        nu = 0.5 * m.filter_nu
        return torch.add(now, d, alpha=m.filter_alpha * nu), new.sub_(d, alpha=(1.0 - m.filter_alpha) * nu)

    def advance(self, prev: torch.Tensor, now: torch.Tensor, nsteps: int, phi_eq: torch.Tensor | None = None,
                vort_forcing: torch.Tensor | None = None, first: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``nsteps`` steps of :meth:`ShallowWaterModel.step` under fixed forcings, spectral
        ``(3, lmax, mmax)`` complex in and out; ``first`` starts the leapfrog (pass ``prev = now``)."""
        forcing = self.forcing(phi_eq, vort_forcing)
        relax = phi_eq is not None and self.model.relaxation_rate > 0
        p, n = self.pack(prev), self.pack(now)
        for k in range(nsteps):
            p, n = self.packed_step(p, n, forcing, relax, first=first and k == 0)
        return self.unpack(p), self.unpack(n)

    def forward(self, prev: torch.Tensor, now: torch.Tensor, phi_eq: torch.Tensor | None = None,
                vort_forcing: torch.Tensor | None = None, first: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One step, called as :meth:`ShallowWaterModel.step`: ``(prev, now)`` -> ``(now filtered, next)``."""
        return self.advance(prev, now, 1, phi_eq, vort_forcing, first)
