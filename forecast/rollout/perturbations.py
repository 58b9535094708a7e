"""Initial-condition perturbations for ensembles, registered by name.

A perturbation is a typed config (its YAML ``type:`` picks the class from the registry) with one
method, :meth:`PerturbationConfig.sample`, returning perturbations ``(B, C, H, W)`` to add to the
*normalised* initial states. The normalised unit of a channel is its standard deviation, so every
``amplitude`` below is in units of each channel's (area-weighted, training-period) std: 0.1 on
``z500`` means 10 % of z500's climatological std. ``amplitude`` may also be a mapping
``{channel: amplitude}``; channels it does not list are not perturbed.

Randomness comes from :class:`RowRandom`: one explicitly seeded ``torch.Generator`` per batch row
(per initial time and member), drawn on the CPU. A member's perturbation therefore depends only on
the ensemble seed, its initial time and its member number: not on batching, device or how many other
members or initial times a run holds, and a rerun is bit-identical.

Registered methods:

``white_noise``
    Independent Gaussian noise at every grid point and channel, std ``amplitude``.
``spherical_grf``
    Isotropic Gaussian random fields on the sphere with a Matérn-like angular power spectrum
    ``C_l ∝ (kappa**2 + l (l + 1)) ** -(smoothness + 1)``, ``kappa = sqrt(2 smoothness) R / length_scale``,
    synthesised with torch-harmonics' ``InverseRealSHT`` (explicit ``lmax = mmax``). Degree 0 is left
    out, so each field has zero global mean (a perturbation never shifts a channel's global mean);
    the spectrum is scaled so the pointwise std is ``amplitude``. Channels are independent.
``bred_vectors``
    Toth & Kalnay breeding: a white-noise seed of size ``amplitude`` is added to the analysis
    ``cycles * cycle_steps`` steps before the member's initial time; at each cycle the perturbed and
    the control forecast run ``cycle_steps`` model steps, their difference is rescaled to area-weighted
    RMS ``amplitude`` per member and channel and added to the next analysis. The last rescaled
    difference, valid at the initial time, is the perturbation. ``on: initial_state`` breeds around the
    initial state itself (every cycle restarts from it, forcings at the initial time: a finite-amplitude
    power iteration of the model's local dynamics) for stores holding no earlier analyses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from forecast.config import StrictModel
from forecast.grids import area_weights
from forecast.models.random_fields import matern_spectrum, spectral_truncation, synthesise_grf

__all__ = [
    "BredVectors",
    "PerturbationConfig",
    "PerturbationContext",
    "RowRandom",
    "SphericalGRF",
    "WhiteNoise",
    "area_rms",
    "matern_spectrum",
    "member_seed",
    "perturbation_from_dict",
    "register_perturbation",
    "registered_perturbations",
    "synthesise_grf",
]

_REGISTRY: dict[str, type[PerturbationConfig]] = {}


def register_perturbation(name: str) -> Callable[[type[PerturbationConfig]], type[PerturbationConfig]]:
    """Class decorator: a config whose ``type`` is ``name`` builds this perturbation."""

    def decorate(cls: type[PerturbationConfig]) -> type[PerturbationConfig]:
        if name in _REGISTRY:
            raise ValueError(f"perturbation {name!r} is already registered")
        _REGISTRY[name] = cls
        return cls

    return decorate


def registered_perturbations() -> list[str]:
    return sorted(_REGISTRY)


def perturbation_from_dict(tree: dict[str, Any] | PerturbationConfig) -> PerturbationConfig:
    """Validate ``{type: name, ...params}`` into the registered config class of ``name``."""
    if isinstance(tree, PerturbationConfig):
        return tree
    if not isinstance(tree, dict) or "type" not in tree:
        raise ValueError(f"a perturbation needs a `type`, one of {registered_perturbations()}")
    try:
        cls = _REGISTRY[tree["type"]]
    except KeyError:
        raise ValueError(f"unknown perturbation type {tree['type']!r}; known: {registered_perturbations()}") from None
    return cls.model_validate(tree)


def member_seed(seed: int, init_time: np.datetime64, member: int, stream: int = 0) -> int:
    """The seed of one member's generator, from the ensemble seed, its initial time and member number.

    numpy's SeedSequence mixes the three into well-separated streams (no two members share one even
    for neighbouring seeds); the same inputs always give the same seed. ``stream`` > 0 gives further
    independent streams of the same member (e.g. the model's own noise besides its perturbation).
    """
    ns = int(np.datetime64(init_time, "ns").astype(np.int64)) + 2**63  # SeedSequence takes non-negative ints
    entropy = [int(seed), ns, int(member)] + ([int(stream)] if stream else [])
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


class RowRandom:
    """Independent normal draws per batch row, each from its own explicitly seeded CPU generator."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self._gens = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self._gens)

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal ``(B, *shape)`` float32 on the CPU; row ``b`` from generator ``b`` only."""
        return torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in self._gens])


@dataclass
class PerturbationContext:
    """What a perturbation may use besides random numbers; all states are normalised ``(B, C, H, W)``.

    ``step(x, t)`` is one model step of states ``x`` valid at times ``t`` ``(B,)``. ``analysis(k)``
    gives the analyses ``k`` steps before each row's ``start_times`` (from the store).
    """

    channels: list[str]
    latitudes: np.ndarray
    longitudes: np.ndarray
    grid_type: str
    start_times: np.ndarray  # (B,) datetime64[ns], valid time of the state being perturbed
    time_step: np.timedelta64
    step: Callable[[torch.Tensor, np.ndarray], torch.Tensor]
    analysis: Callable[[int], torch.Tensor]


def area_rms(x: torch.Tensor, latitudes: np.ndarray) -> torch.Tensor:
    """Area-weighted RMS over the grid: ``(..., H, W)`` -> ``(...)``."""
    w = torch.as_tensor(area_weights(latitudes), dtype=x.dtype, device=x.device)[:, None]  # (H, 1), mean 1
    return ((x**2) * w).mean(dim=(-2, -1)).sqrt()


class PerturbationConfig(StrictModel):
    """Base of every perturbation config; subclasses set ``type`` and implement :meth:`sample`."""

    type: str
    amplitude: float | dict[str, float] = 0.1

    @field_validator("amplitude")
    @classmethod
    def _non_negative(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        values = value.values() if isinstance(value, dict) else [value]
        if any(v < 0 for v in values):
            raise ValueError("amplitudes must be >= 0 (units of each channel's std)")
        return value

    def amplitudes(self, channels: Sequence[str]) -> torch.Tensor:
        """Amplitude per channel ``(C,)`` in std units; a mapping naming an unknown channel is an error."""
        if not isinstance(self.amplitude, dict):
            return torch.full((len(channels),), float(self.amplitude))
        unknown = sorted(set(self.amplitude) - set(channels))
        if unknown:
            raise ValueError(f"perturbation amplitude names channels {unknown} the model does not have ({channels})")
        return torch.tensor([float(self.amplitude.get(c, 0.0)) for c in channels])

    def sample(self, state: torch.Tensor, ctx: PerturbationContext, rng: RowRandom) -> torch.Tensor:
        """Perturbations ``(B, C, H, W)`` (normalised units) for the states ``(B, C, H, W)``."""
        raise NotImplementedError

    def describe(self, nlat: int | None = None, nlon: int | None = None) -> dict[str, Any]:
        """Parameters recorded in the product (the config plus values derived for an ``nlat x nlon`` grid)."""
        return self.model_dump(mode="json")


@register_perturbation("white_noise")
class WhiteNoise(PerturbationConfig):
    """Independent N(0, amplitude**2) at every grid point and channel (std units)."""

    type: Literal["white_noise"] = "white_noise"

    def sample(self, state: torch.Tensor, ctx: PerturbationContext, rng: RowRandom) -> torch.Tensor:
        _, c, h, w = state.shape
        amp = self.amplitudes(ctx.channels)[None, :, None, None]
        return (rng.normal(c, h, w) * amp).to(device=state.device, dtype=state.dtype)


@register_perturbation("spherical_grf")
class SphericalGRF(PerturbationConfig):
    """Isotropic Gaussian random fields with a Matérn-like angular spectrum (see the module docstring)."""

    type: Literal["spherical_grf"] = "spherical_grf"
    length_scale_km: float = Field(1000.0, gt=0)  # correlation length of the Matérn field
    smoothness: float = Field(1.5, gt=0)  # nu: larger is smoother (spectrum falls as l**(-2 nu - 2))
    # Spectral truncation (degrees l < lmax, orders m < lmax); None: every degree the grid resolves,
    # min(nlat, nlon // 2) (:func:`forecast.rollout.stability.spectral_truncation`).
    lmax: int | None = Field(None, ge=2)

    def truncation(self, nlat: int, nlon: int) -> int:
        return self.lmax or spectral_truncation(nlat, nlon)

    def spectrum(self, nlat: int, nlon: int) -> np.ndarray:
        """``C_l`` ``(lmax,)`` of unit pointwise variance for this grid's truncation."""
        return matern_spectrum(self.truncation(nlat, nlon), self.length_scale_km, self.smoothness)

    def sample(self, state: torch.Tensor, ctx: PerturbationContext, rng: RowRandom) -> torch.Tensor:
        from torch_harmonics import InverseRealSHT

        _, c, h, w = state.shape
        lmax = self.truncation(h, w)
        isht = InverseRealSHT(h, w, lmax=lmax, mmax=lmax, grid=ctx.grid_type).double()
        sqrt_cl = torch.from_numpy(np.sqrt(self.spectrum(h, w)))[:, None]  # (lmax, 1)
        field = synthesise_grf(rng.normal(c, lmax, lmax, 2).double(), sqrt_cl, isht)  # (B, C, H, W), variance 1
        amp = self.amplitudes(ctx.channels).double()[None, :, None, None]
        return (field * amp).to(device=state.device, dtype=state.dtype)

    def describe(self, nlat: int | None = None, nlon: int | None = None) -> dict[str, Any]:
        out = super().describe(nlat, nlon)
        if nlat is not None and nlon is not None:
            out["lmax"] = out["mmax"] = self.truncation(nlat, nlon)
        out["spectrum"] = ("C_l ~ (kappa^2 + l(l+1))^-(smoothness+1), kappa = sqrt(2 smoothness) R / length_scale, "
                           "C_0 = 0")
        return out


@register_perturbation("bred_vectors")
class BredVectors(PerturbationConfig):
    """Bred vectors: perturbations cycled through the model and rescaled each cycle (module docstring)."""

    type: Literal["bred_vectors"] = "bred_vectors"
    cycles: int = Field(4, ge=1)
    cycle_steps: int = Field(1, ge=1)  # model steps per breeding cycle
    on: Literal["analyses", "initial_state"] = "analyses"

    def history_steps(self) -> int:
        """How many steps of analyses before the initial time breeding reads from the store."""
        return self.cycles * self.cycle_steps if self.on == "analyses" else 0

    def sample(self, state: torch.Tensor, ctx: PerturbationContext, rng: RowRandom) -> torch.Tensor:
        _, c, h, w = state.shape
        amp = self.amplitudes(ctx.channels).to(device=state.device, dtype=state.dtype)[None, :]  # (1, C)
        p = rng.normal(c, h, w).to(device=state.device, dtype=state.dtype) * amp[..., None, None]
        for k in range(self.cycles):
            if self.on == "analyses":
                offset = (self.cycles - k) * self.cycle_steps  # steps before the start time
                control = ctx.analysis(offset)
                times = ctx.start_times - offset * ctx.time_step
            else:
                control, times = state, ctx.start_times
            perturbed = control + p
            for _ in range(self.cycle_steps):
                control, perturbed = ctx.step(control, times), ctx.step(perturbed, times)
                times = times + ctx.time_step
            diff = perturbed - control  # (B, C, H, W)
            rms = area_rms(diff, ctx.latitudes)  # (B, C)
            # A channel the dynamics leave untouched (rms 0) stays unperturbed rather than dividing by 0.
            scale = torch.where(rms > 0, amp / rms.clamp_min(torch.finfo(rms.dtype).tiny), torch.zeros_like(rms))
            p = diff * scale[..., None, None]
        return p
