"""``forecast predict``: model package(s) + initial conditions -> a forecast product, lead by lead.

The pipeline is a chain of consumers of the rollout generator::

    initial states (+ perturbations, lagged spin-up)      per package, one batch of all its members
      -> rollout(...)                                      forcings recomputed at every step
      -> guarded(...)                                      NaN/Inf or runaway: RolloutDiverged
      -> ensemble_steps(...)                               de-normalise, join packages along members
      -> StabilityMonitor.update + ProductWriter.write     small summaries; one lead written, then dropped

so memory holds one lead whatever the lead count. Initial times are processed in blocks of at most
``max_batch`` rows (initial times x members). A diverging rollout keeps what was written, flags the
product ``complete: false`` and raises :class:`~forecast.rollout.guards.RolloutDiverged`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
import yaml

from forecast import ERA5_CREDIT, __version__
from forecast.config import dump_config
from forecast.errors import InputError
from forecast.products.io import export_netcdf
from forecast.products.writer import COMPLETE_MARKER, ProductSpec, ProductWriter, lead_steps, lead_timedeltas
from forecast.remote import is_url, staged_upload, upload_tree
from forecast.rollout.config import PredictConfig
from forecast.rollout.ensemble import MemberGroup, MemberLayout, ensemble_steps, group_initial_states
from forecast.rollout.guards import RolloutDiverged
from forecast.rollout.initial import InitialConditions, open_initial_conditions
from forecast.rollout.perturbations import BredVectors, member_seed
from forecast.rollout.stability import StabilityMonitor
from forecast.storage import check_output_path
from forecast.train.package import ModelPackage, load_package

__all__ = ["PredictResult", "package_provenance", "run_predict"]

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    path: Path | str  # a str for a URL
    complete: bool
    reason: str | None
    init_times: np.ndarray
    n_steps: int
    members: int
    seconds: float  # initial states + rollout + writing, after the models are loaded
    stability: xr.Dataset | None
    netcdf: Path | None = None

    @property
    def member_steps_per_s(self) -> float:
        return self.init_times.size * self.members * self.n_steps / max(self.seconds, 1e-9)


def package_provenance(path: str | Path) -> dict[str, Any]:
    """SHA-256 of a package file and the versions recorded in it (read memory-mapped, weights untouched)."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {"sha256": digest.hexdigest(), "format_version": int(raw.get("format_version", 0)),
            "forecast_version": str(raw.get("forecast_version", "unknown"))}


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_compatible(packages: list[ModelPackage], paths: list[str]) -> None:
    ref = packages[0]
    for pkg, path in zip(packages[1:], paths[1:], strict=True):
        same = (pkg.channels == ref.channels and pkg.units == ref.units and pkg.time_step == ref.time_step
                and pkg.latitudes.shape == ref.latitudes.shape and np.allclose(pkg.latitudes, ref.latitudes)
                and pkg.longitudes.shape == ref.longitudes.shape and np.allclose(pkg.longitudes, ref.longitudes))
        if not same:
            raise InputError(f"package {path} differs from {paths[0]} in channels, units, grid or time step; a "
                             "multi-model ensemble needs models of the same state")


def _attribution(ic: InitialConditions, packages: list[ModelPackage]) -> str | None:
    """Credits to pass on: the initial conditions' store and the models' training stores (when readable).

    Data derived from ERA5 (a credit naming Copernicus) always carry the ERA5 credit line.
    """
    texts = [ic.attrs.get("attribution")]
    for pkg in packages:
        texts.append(pkg.info.get("attribution"))
        try:
            store = (yaml.safe_load(pkg.train_config) or {}).get("data", {}).get("store")
            if store and Path(store).exists():
                texts.append(xr.open_zarr(store).attrs.get("attribution"))
        except Exception:  # a training store that moved or is unreadable only costs its credit line
            log.debug("cannot read the training store's attribution", exc_info=True)
    unique = list(dict.fromkeys(str(t).strip() for t in texts if t))
    if any("Copernicus" in t for t in unique) and ERA5_CREDIT not in unique:
        unique.insert(0, ERA5_CREDIT)
    return "\n".join(unique) or None


def _history_steps(config: PredictConfig) -> int:
    p = config.ensemble.perturbation if config.ensemble else None
    return p.history_steps() if isinstance(p, BredVectors) else 0


# A product at a URL: the files that make a reader take it for complete, uploaded after all the others.
_COMPLETION_FILES = (".zattrs", ".zmetadata", "zarr.json", COMPLETE_MARKER)


def _predict_to_url(config: PredictConfig, progress: bool) -> PredictResult:
    """:func:`run_predict` with ``output.path`` a URL (``s3://``, ``gs://``, ``memory://``...): the product is
    written to a local temporary folder as usual, then uploaded with its completion files last
    (:func:`forecast.remote.upload_tree`); a diverged run's partial product goes up too."""
    url = str(config.output.path)
    if config.output.netcdf:
        raise InputError(f"output.netcdf: the netCDF copy is written only beside a local product, not at {url}")
    with staged_upload(url, _COMPLETION_FILES, config.output.overwrite) as local:
        output = config.output.model_copy(update={"path": str(local), "overwrite": False})
        try:
            result = run_predict(config.model_copy(update={"output": output}), progress)
        except RolloutDiverged:
            _record_config(local, config)
            upload_tree(local, url, _COMPLETION_FILES, config.output.overwrite)
            raise
        _record_config(local, config)
    result.path = url
    return result


def _record_config(product: Path, config: PredictConfig) -> None:
    """Put the run's own config (with the URL, not the local stage) in the staged product's provenance."""
    import warnings

    import zarr

    zarr.open_group(str(product), mode="r+").attrs["predict_config"] = dump_config(config)
    with warnings.catch_warnings():  # the COMPLETE marker and (zarr 3) consolidation itself are expected
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(str(product))


def _product_attrs(config: PredictConfig, packages: list[ModelPackage], ic: InitialConditions, layout: MemberLayout,
                   store: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The product's global attributes (provenance, ensemble design) and its per-member coordinates."""
    ens = config.ensemble
    pkg0 = packages[0]
    provenance = [package_provenance(p) for p in config.packages]
    attrs: dict[str, Any] = {
        "title": f"{config.name}: forecast written by forecast predict",
        "Conventions": "CF-1.8",
        "source": "forecast " + __version__ + " predict with model(s) "
                  + ", ".join(f"{pkg.info.get('name', Path(p).stem)} ({pkg.model_config.type})"
                              for pkg, p in zip(packages, config.packages, strict=True)),
        "history": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} forecast predict",
        "forecast_version": __version__,
        "naming": config.output.naming,
        "model_name": ", ".join(str(pkg.info.get("name", Path(p).stem))
                                for pkg, p in zip(packages, config.packages, strict=True)),
        "model_paths": " ".join(config.packages),
        "model_sha256": " ".join(p["sha256"] for p in provenance),
        "model_package_format_version": " ".join(str(p["format_version"]) for p in provenance),
        "model_forecast_version": " ".join(p["forecast_version"] for p in provenance),
        "predict_config": dump_config(config),
        "initial_conditions_store": str(store),
        "time_step": pkg0.time_step,
        "grid_type": pkg0.grid_type,
        "guard_max_abs_normalised": "none" if config.guard.max_abs_normalised is None
        else config.guard.max_abs_normalised,
    }
    attribution = _attribution(ic, packages)
    if attribution:
        attrs["attribution"] = attribution
    member_coords = {}
    if ens is not None:
        attrs["ensemble_members"] = ens.members
        attrs["ensemble_seed"] = ens.seed
        attrs["ensemble_control"] = int(ens.control)
        attrs["seed_derivation"] = ("perturbations: one torch.Generator per (initial time, member), seeded from "
                                    "numpy SeedSequence([seed, init_time_ns + 2**63, member]), CPU draws; the "
                                    "model's own noise: torch's global generator seeded per block of initial "
                                    "times from SeedSequence([seed, first_init_ns + 2**63, 0, 1])")
        attrs["perturbation"] = ("none" if ens.perturbation is None else
                                 ens.perturbation.describe(pkg0.latitudes.size, pkg0.longitudes.size))
        if ens.perturbation is not None:
            attrs["perturbation_type"] = ens.perturbation.type
        if ens.lagged is not None:
            attrs["lagged"] = ens.lagged.model_dump()
        member_coords = {
            "member_model": (layout.package.astype(np.int32),
                             {"long_name": "index of the member's model in model_paths"}),
            "member_lag_steps": (layout.lag_steps.astype(np.int32),
                                 {"long_name": "model steps the member's initial state was rolled to the "
                                               "initial time (lagged ensemble)"}),
            "member_perturbed": (layout.perturbed.astype(np.int8),
                                 {"long_name": "1 if the member's initial state is perturbed"}),
        }
    return attrs, member_coords


def run_predict(config: PredictConfig, progress: bool = False) -> PredictResult:
    """Run the forecast ``config`` describes and write its product (see the module docstring).

    Raises :class:`RolloutDiverged` (after keeping the partial product, flagged incomplete) when a guard
    stops the rollout, :class:`InputError` for unusable inputs (before anything is written).
    """
    if is_url(str(config.output.path)):
        return _predict_to_url(config, progress)
    out = check_output_path(config.output.path, overwrite=config.output.overwrite)
    device = _resolve_device(config.device)
    store = config.store
    if config.ingest:
        from forecast.config import load_config
        from forecast.ingest.config import IngestConfig
        from forecast.ingest.pipeline import run_ingest

        store = str(run_ingest(load_config(IngestConfig, config.ingest), progress=progress).path)
    packages = [load_package(p) for p in config.packages]
    _check_compatible(packages, config.packages)
    pkg0 = packages[0]
    ic = open_initial_conditions(store, pkg0)
    n_steps = config.lead_steps(pkg0.time_step)
    dt = np.timedelta64(pd.Timedelta(pkg0.time_step).value, "ns")
    init_times = config.init.resolve()
    layout = MemberLayout.build(config.ensemble, len(packages))
    # Refuse missing times now, not after hours of rollout: initial, lagged and breeding analyses.
    earliest = layout.max_lag + _history_steps(config)
    ic.indices(np.unique((init_times[:, None] - np.arange(earliest + 1)[None, :] * dt).ravel()))

    groups = [MemberGroup(p, pkg, pkg.build_forecaster(device), np.flatnonzero(layout.package == p))
              for p, pkg in enumerate(packages)]
    every = config.output.lead_every
    lead_times = lead_timedeltas(n_steps, pkg0.time_step, config.output.include_initial, every)
    steps_written = lead_steps(n_steps, config.output.include_initial, every)
    if not steps_written.size:
        raise InputError(f"output.lead_every {every} is more than the {n_steps} step(s) of the lead: nothing to write")
    ens = config.ensemble
    attrs, member_coords = _product_attrs(config, packages, ic, layout, store)
    spec = ProductSpec(
        init_times=init_times, lead_times=lead_times, latitudes=pkg0.latitudes, longitudes=pkg0.longitudes,
        channels=list(pkg0.channels), channel_attrs=ic.channel_attrs(),
        members=layout.members if ens is not None else None, member_coords=member_coords,
        naming=config.output.naming, attrs=attrs, lead_chunk=config.output.lead_chunk,
        zarr_format=config.output.zarr_format,
    )
    monitor = None
    if config.stability.enabled:
        monitor = StabilityMonitor(pkg0.channels, pkg0.units, pkg0.latitudes, pkg0.longitudes, pkg0.grid_type,
                                   init_times, lead_times, steps_written, config.stability.spectrum_every, device)
        monitor.set_reference(ic.read, ic.sample_times(config.stability.data_samples))

    per_block = max(1, config.max_batch // layout.members)
    blocks = [(b, min(b + per_block, init_times.size)) for b in range(0, init_times.size, per_block)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(blocks) * lead_times.size, desc="predict", unit="lead")
    diverged: RolloutDiverged | None = None
    t0 = time.perf_counter()
    writer = ProductWriter(out, spec, overwrite=config.output.overwrite)
    try:
        with writer:
            if monitor is not None:
                writer.extra_groups["stability"] = monitor.dataset
            for b0, b1 in blocks:
                inits = init_times[b0:b1]
                # The model's own randomness (stochastic networks, dropout) drawn from torch's global
                # generator, seeded per block and put back afterwards: a rerun gives the same members.
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(member_seed(ens.seed if ens else 0, inits[0], 0, stream=1))
                    states = [group_initial_states(g, ic, inits, layout, ens, device) for g in groups]
                    steps = ensemble_steps(groups, states, inits, n_steps, config.output.include_initial,
                                           config.guard.max_abs_normalised, ens is not None)
                    try:
                        # The rollout steps every model step; only every `lead_every`-th is written.
                        for k, step in enumerate(s for s in steps if s.lead % every == 0):
                            if monitor is not None:
                                monitor.update(slice(b0, b1), k, step.state)
                            writer.write(slice(b0, b1), k, step.state.cpu().numpy())
                            if bar is not None:
                                bar.update()
                    finally:
                        if monitor is not None:
                            monitor.end_block()
    except RolloutDiverged as exc:
        diverged = exc
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    result = PredictResult(out, bool(writer.complete), writer.reason, init_times, n_steps, layout.members, seconds,
                           monitor.dataset() if monitor is not None else None)
    if config.output.netcdf and not writer.kept_previous:
        result.netcdf = export_netcdf(out, config.output.netcdf_path)
    if diverged is not None:
        if writer.kept_previous:
            diverged.add_note(f"the complete product it was to replace is left in place at {out}")
        raise diverged
    return result
