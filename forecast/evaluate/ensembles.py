"""Ensembles side by side: the scores of several ensemble evaluations on the same cases in one table, the
spherical power spectra of their single members against the truth's, and the checks of issue 11.

A generative ensemble earns its members only if each member looks like weather: an ensemble mean is smooth
by construction, but a single member must keep the truth's power at every degree. :func:`member_spectra`
measures that on the spherical harmonic degrees (:class:`forecast.evaluate.spectrum.SphericalSpectrum`),
averaged over members and initial times, so the ratio to the truth's spectrum at the same valid times is
the blurring (< 1) or noise (> 1) of a typical member.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.evaluate.align import align, open_forecast, open_truth
from forecast.evaluate.score import read_scores
from forecast.evaluate.spectrum import SphericalSpectrum
from forecast.schema import INIT_TIME, LAT, LEAD_TIME, LON, MEMBER

__all__ = ["DEGREE", "ensemble_checks", "ensemble_table", "member_spectra", "read_ensemble_runs"]

DEGREE = "degree"
TABLE_METRICS = ("crps", "rmse", "spread_skill", "spread_skill_corrected")


def member_spectra(product: str | Path, truth: str | Path, variables: list[str] | None = None,
                   block_mb: float = 256.0) -> xr.Dataset:
    """Power per spherical harmonic degree of single members and of the truth at the same valid times.

    Returns ``forecast`` and ``truth`` ``(variable, lead_time, degree)`` (means over initial times and members,
    units squared) and their ``ratio``. A product without members is its own single member. The product is
    read in blocks of whole initial times of about ``block_mb`` MB per variable.
    """
    aligned = align(open_forecast(product), open_truth(truth), variables, persistence=False)
    fc = aligned.forecast
    spectrum = SphericalSpectrum(fc[LAT].values, fc[LON].values)
    n_init = fc.sizes[INIT_TIME]
    per_init = fc[aligned.variables[0]].isel({INIT_TIME: 0}).nbytes
    step = max(1, int(block_mb * 2**20 // max(per_init, 1)))  # initial times read at once
    lead_axis = fc[aligned.variables[0]].dims.index(LEAD_TIME)
    sums = {"forecast": [], "truth": []}
    for var in aligned.variables:
        f = t = 0.0
        for b in range(0, n_init, step):  # whole chunks of initial times: every chunk is read once
            block = {INIT_TIME: slice(b, b + step)}
            x = np.moveaxis(fc[var].isel(block).values, lead_axis, 0)  # (lead, init, [member,] lat, lon)
            f = f + spectrum(x).reshape(x.shape[0], -1, spectrum.lmax).mean(1) * x.shape[1]
            y = np.moveaxis(aligned.truth[var].isel(block).values, 1, 0)  # (lead, init, lat, lon)
            t = t + spectrum(y).sum(1)
        sums["forecast"].append(f / n_init)
        sums["truth"].append(t / n_init)
    coords = {"variable": aligned.variables, LEAD_TIME: fc[LEAD_TIME].values, DEGREE: np.arange(spectrum.lmax)}
    dims = ("variable", LEAD_TIME, DEGREE)
    ds = xr.Dataset({k: (dims, np.array(v)) for k, v in sums.items()}, coords=coords)
    ds["ratio"] = ds["forecast"] / ds["truth"].where(ds["truth"] > 0)
    ds.attrs["members"] = int(fc.sizes.get(MEMBER, 1))
    return ds


def read_ensemble_runs(run_dirs: list[str | Path]) -> dict[str, xr.Dataset]:
    """The ``scores.nc`` of each evaluation folder, by forecast name (the name ``forecast evaluate`` gave it)."""
    runs = {}
    for d in run_dirs:
        scores = read_scores(d)
        runs[str(scores.attrs["forecast"])] = scores
    return runs


def ensemble_table(runs: Mapping[str, xr.Dataset], spectra: Mapping[str, xr.Dataset] | None = None,
                   region: str = "global", hours: tuple[int, ...] = (24, 48, 72, 96, 120)) -> pd.DataFrame:
    """One row per ensemble, variable and lead (hours): fair CRPS, ensemble-mean RMSE, spread/skill raw and
    (M+1)/M-corrected, and the smallest and largest member-to-truth spectral ratio over degrees 1 .. lmax-1."""
    rows = []
    for name, scores in runs.items():
        leads = scores[LEAD_TIME].values / np.timedelta64(1, "h")
        for var in scores["variable"].values.tolist():
            for h in hours:
                if h not in leads:
                    continue
                lead = scores[LEAD_TIME].values[list(leads).index(h)]
                cell = scores[name].sel(region=region, variable=var, lead_time=lead)
                row = {"ensemble": name, "variable": var, "lead_hours": h}
                for m in TABLE_METRICS:
                    row[m] = float(cell.sel(metric=m)) if m in cell["metric"].values else np.nan
                if spectra and name in spectra:
                    ratio = spectra[name]["ratio"].sel(variable=var, lead_time=lead).values[1:]
                    row["spectrum_ratio_min"], row["spectrum_ratio_max"] = np.nanmin(ratio), np.nanmax(ratio)
                rows.append(row)
    return pd.DataFrame(rows)


def ensemble_checks(table: pd.DataFrame, generative: list[str], perturbed: list[str],
                    ratio_range: tuple[float, float] = (0.8, 1.2), spectrum_factor: float = 2.0) -> pd.DataFrame:
    """Issue 11's criteria for each generative ensemble, per variable: corrected spread/skill within
    ``ratio_range`` at every lead of ``table``, fair CRPS below every ensemble in ``perturbed`` at every lead,
    and member spectra within ``spectrum_factor`` of the truth's at every degree and lead."""
    rows = []
    best = table[table["ensemble"].isin(perturbed)].groupby(["variable", "lead_hours"])["crps"].min()
    for name in generative:
        for var, t in table[table["ensemble"] == name].groupby("variable"):
            ratio = t["spread_skill_corrected"]
            beats = t.set_index("lead_hours")["crps"] < best.loc[var].reindex(t["lead_hours"]).values
            row = {"ensemble": name, "variable": var,
                   "spread_skill_ok": bool(ratio.between(*ratio_range).all()),
                   "spread_skill_range": f"{ratio.min():.2f}..{ratio.max():.2f}",
                   "beats_perturbed_crps": bool(beats.all()) if perturbed else np.nan,
                   "leads_beaten": f"{int(beats.sum())}/{beats.size}"}
            if "spectrum_ratio_min" in t:
                low, high = t["spectrum_ratio_min"].min(), t["spectrum_ratio_max"].max()
                row["spectrum_ok"] = bool(low >= 1 / spectrum_factor and high <= spectrum_factor)
                row["spectrum_ratio_range"] = f"{low:.2f}..{high:.2f}"
            rows.append(row)
    return pd.DataFrame(rows)

