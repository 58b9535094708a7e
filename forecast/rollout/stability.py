"""Stability report of a rollout: does the model drift (global mean), lose or gain variance (global std),
or blur / sharpen (power spectrum) compared with the data it was trained on?

:class:`StabilityMonitor` consumes the rollout lead by lead (physical fields) and keeps only small
summaries: the area-weighted global mean and std per channel at every lead (averaged over members),
and the spherical-harmonic power spectrum per channel at a few leads (the first, every
``spectrum_every`` steps and the last reached), averaged over initial times and members. The data's
mean, std and spectrum come from store times spread over the store. :meth:`StabilityMonitor.dataset`
returns them as an ``xr.Dataset`` (written as the product's ``stability`` group) and
:func:`format_stability_report` prints it.

Power spectrum: with torch-harmonics' orthonormal ``RealSHT`` (explicit ``lmax = mmax``) coefficients
``c_lm`` of a field ``f``, ``P_l = |c_l0|**2 + 2 sum_{m>0} |c_lm|**2`` so that ``sum_l P_l`` is the
integral of ``f**2`` over the unit sphere (Parseval), in the channel's units squared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from forecast.grids import area_weights
from forecast.models.random_fields import spectral_truncation
from forecast.schema import INIT_TIME, LEAD_TIME

__all__ = ["StabilityMonitor", "format_stability_report", "power_spectrum", "spectral_truncation"]

CHANNEL = "channel"
DEGREE = "degree"
SPECTRUM_LEAD = "spectrum_lead_time"


def power_spectrum(x: torch.Tensor, sht: torch.nn.Module) -> torch.Tensor:
    """Power per degree ``(..., lmax)`` of fields ``(..., H, W)`` (float64; see the module docstring)."""
    c = sht(x.double())  # (..., lmax, mmax) complex
    p = c.real**2 + c.imag**2
    p[..., 1:] *= 2.0  # orders +m and -m of a real field
    return p.sum(-1)


class StabilityMonitor:
    """Running summaries of a rollout; ``update`` once per lead and block of initial times."""

    def __init__(self, channels: Sequence[str], units: Sequence[str], latitudes: np.ndarray, longitudes: np.ndarray,
                 grid_type: str, init_times: np.ndarray, lead_times: np.ndarray, lead_steps: np.ndarray,
                 spectrum_every: int | None = None, device: torch.device | str = "cpu"):
        from torch_harmonics import RealSHT

        self.channels, self.units = list(channels), list(units)
        self.latitudes = np.asarray(latitudes)
        self.init_times, self.lead_times = init_times, lead_times
        self.lead_steps = np.asarray(lead_steps)  # (L,) model steps of each lead
        self.spectrum_every = spectrum_every
        self.grid_type = grid_type
        n, n_lead, c = init_times.size, lead_times.size, len(self.channels)
        self.lmax = spectral_truncation(latitudes.size, longitudes.size)
        self.sht = RealSHT(latitudes.size, longitudes.size, lmax=self.lmax, mmax=self.lmax, grid=grid_type)
        self.sht = self.sht.double().to(device)
        self.weights = torch.as_tensor(area_weights(self.latitudes), dtype=torch.float64, device=device)[:, None]
        self.mean = np.full((n, n_lead, c), np.nan)
        self.std = np.full((n, n_lead, c), np.nan)
        self._spec: dict[int, np.ndarray] = {}  # lead index -> summed power (C, lmax)
        self._count: dict[int, int] = {}
        self._last: tuple[int, torch.Tensor] | None = None
        self.reference: dict[str, np.ndarray] | None = None
        self.reference_times: np.ndarray | None = None

    def _moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Area-weighted mean and std over the grid of ``(..., H, W)``."""
        x = x.double()
        mean = (x * self.weights).mean(dim=(-2, -1))
        var = (((x - mean[..., None, None]) ** 2) * self.weights).mean(dim=(-2, -1))
        return mean, var.sqrt()

    def _add_spectrum(self, lead_index: int, state: torch.Tensor) -> None:
        p = power_spectrum(state, self.sht)  # (n, M, C, lmax)
        flat = p.reshape(-1, *p.shape[-2:])
        self._spec[lead_index] = self._spec.get(lead_index, 0.0) + flat.sum(0).cpu().numpy()
        self._count[lead_index] = self._count.get(lead_index, 0) + flat.shape[0]

    def update(self, inits: slice, lead_index: int, state: torch.Tensor) -> None:
        """Record lead ``lead_index`` of initial times ``inits`` from ``state`` ``(n, M, C, H, W)`` physical."""
        mean, std = self._moments(state)  # (n, M, C)
        self.mean[inits, lead_index] = mean.mean(1).cpu().numpy()
        self.std[inits, lead_index] = std.mean(1).cpu().numpy()
        steps = int(self.lead_steps[lead_index])
        if (lead_index == 0 or steps == 1 or lead_index == self.lead_times.size - 1
                or (self.spectrum_every and steps % self.spectrum_every == 0)):
            self._add_spectrum(lead_index, state)
            self._last = None
        else:
            self._last = (lead_index, state)  # a reference, no copy: the rollout makes a new tensor each step

    def end_block(self) -> None:
        """Close a block of initial times; a block that stopped early adds the spectrum of its last lead."""
        if self._last is not None:
            self._add_spectrum(*self._last)
        self._last = None

    def set_reference(self, read: Callable[[np.ndarray], np.ndarray], times: np.ndarray, batch: int = 8) -> None:
        """The data's mean, std and spectrum at store ``times`` ``(T,)``; ``read(times)`` gives physical fields
        ``(T, C, H, W)`` and is called ``batch`` times at a time, so memory stays small on large grids."""
        means, stds, spec = [], [], 0.0
        for i in range(0, times.size, batch):
            x = torch.from_numpy(np.asarray(read(times[i: i + batch]))).to(self.weights.device)
            m, s = self._moments(x)
            means.append(m.cpu().numpy())
            stds.append(s.cpu().numpy())
            spec = spec + power_spectrum(x, self.sht).sum(0).cpu().numpy()
        self.reference = {"mean": np.concatenate(means).mean(0), "std": np.concatenate(stds).mean(0),
                          "spectrum": spec / times.size}
        self.reference_times = np.asarray(times)

    def dataset(self) -> xr.Dataset:
        """The report as a dataset (dims ``init_time, lead_time, channel``; spectra over ``degree``)."""
        leads = sorted(self._spec)
        spec = np.stack([self._spec[k] / self._count[k] for k in leads]) if leads else \
            np.zeros((0, len(self.channels), self.lmax))
        # Object (variable-length) strings: zarr v3 has a specified type for them, not for fixed-width ones.
        coords = {INIT_TIME: self.init_times, LEAD_TIME: self.lead_times,
                  CHANNEL: np.array(self.channels, dtype=object),
                  "channel_units": (CHANNEL, np.array(self.units, dtype=object)), DEGREE: np.arange(self.lmax),
                  SPECTRUM_LEAD: self.lead_times[leads]}
        ds = xr.Dataset(
            {
                "global_mean": ((INIT_TIME, LEAD_TIME, CHANNEL), self.mean,
                                {"long_name": "area-weighted global mean, averaged over members",
                                 "units_note": "each channel's units (channel_units)"}),
                "global_std": ((INIT_TIME, LEAD_TIME, CHANNEL), self.std,
                               {"long_name": "area-weighted standard deviation over the globe, averaged over members"}),
                "power_spectrum": ((SPECTRUM_LEAD, CHANNEL, DEGREE), spec,
                                   {"long_name": "spherical-harmonic power per degree, averaged over initial times "
                                                 "and members (channel units squared)"}),
            },
            coords=coords,
            attrs={"lmax": self.lmax, "mmax": self.lmax, "grid_type": self.grid_type,
                   "spectrum": "P_l = |c_l0|^2 + 2 sum_{m>0} |c_lm|^2, torch-harmonics RealSHT (ortho), "
                               "sum_l P_l = integral of f^2 over the unit sphere"},
        )
        if self.reference is not None:
            ds["data_global_mean"] = (CHANNEL, self.reference["mean"], {"long_name": "data: area-weighted global mean"})
            ds["data_global_std"] = (CHANNEL, self.reference["std"], {"long_name": "data: area-weighted global std"})
            ds["data_power_spectrum"] = ((CHANNEL, DEGREE), self.reference["spectrum"],
                                         {"long_name": "data: power per degree"})
            t = self.reference_times
            ds.attrs["data_times"] = f"{len(t)} store times {pd.Timestamp(t[0]):%Y-%m-%dT%H:%M} .. " \
                                     f"{pd.Timestamp(t[-1]):%Y-%m-%dT%H:%M}"
        return ds


def _hours(td: np.timedelta64) -> str:
    return f"{pd.Timedelta(td) / pd.Timedelta(hours=1):g}h"


def format_stability_report(ds: xr.Dataset, n_leads: int = 5) -> str:
    """A printable table of a stability dataset: drift of mean and std, spectral ratios vs the data."""
    has_ref = "data_global_mean" in ds
    lines = ["stability report (area-weighted, averaged over initial times and members"
             + (f"; data: {ds.attrs.get('data_times')})" if has_ref else ")")]
    mean = ds["global_mean"].mean(INIT_TIME, skipna=True)
    std = ds["global_std"].mean(INIT_TIME, skipna=True)
    reached = np.flatnonzero(np.isfinite(mean.values).all(-1))
    pick = reached[np.unique(np.linspace(0, reached.size - 1, min(n_leads, reached.size)).round().astype(int))] \
        if reached.size else []
    header = f"  {'channel':<10} {'units':<12} {'lead':>7} {'global mean':>13} {'global std':>12}"
    lines.append(header + ("   mean-data/std  std/data std" if has_ref else ""))
    for c, ch in enumerate(ds[CHANNEL].values):
        units = str(ds["channel_units"].values[c])
        for k in pick:
            m, s = float(mean.values[k, c]), float(std.values[k, c])
            row = f"  {ch:<10} {units:<12} {_hours(ds[LEAD_TIME].values[k]):>7} {m:13.6g} {s:12.5g}"
            if has_ref:
                dm, ds_ = float(ds["data_global_mean"][c]), float(ds["data_global_std"][c])
                row += f"   {(m - dm) / ds_ if ds_ else np.nan:13.3g}  {s / ds_ if ds_ else np.nan:12.3g}"
            lines.append(row)
    if has_ref and ds.sizes[SPECTRUM_LEAD]:
        lmax = ds.sizes[DEGREE]
        edges = sorted({1, max(2, lmax // 8), max(3, lmax // 3), lmax})
        bands = list(zip(edges[:-1], edges[1:], strict=False))
        names = " ".join(f"{f'l={a}-{b - 1}':>10}" for a, b in bands)
        lines.append(f"  power spectrum, model / data, by degree band:{'':4}{names}")
        ref = ds["data_power_spectrum"].values
        for c, ch in enumerate(ds[CHANNEL].values):
            for k, lead in enumerate(ds[SPECTRUM_LEAD].values):
                if k not in (0, ds.sizes[SPECTRUM_LEAD] - 1) and ds.sizes[SPECTRUM_LEAD] > 3:
                    continue
                p = ds["power_spectrum"].values[k, c]
                ratios = " ".join(f"{p[a:b].sum() / ref[c, a:b].sum():10.3g}" if ref[c, a:b].sum() > 0 else
                                  f"{'-':>10}" for a, b in bands)
                lines.append(f"  {ch:<10} lead {_hours(lead):>7}{'':29}{ratios}")
    return "\n".join(lines)
