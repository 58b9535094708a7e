"""The training loop: multi-step area-weighted MSE or ensemble CRPS (:mod:`forecast.train.objectives`), AdamW
with warm-up + cosine, clipping, EMA, AMP, validation in physical units, atomic checkpoints with exact
resume, and DistributedDataParallel.

Launch with ``forecast train CONFIG`` on one process or ``torchrun --nproc_per_node=N -m forecast.cli
train CONFIG`` for DDP (gloo on CPU, nccl on CUDA); the code path is the same.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from forecast.config import dump_config
from forecast.data.dataset import WindowDataset
from forecast.data.store import TrainingStore, open_training_store
from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.models import count_parameters
from forecast.models.forecaster import Forecaster
from forecast.storage import check_output_path
from forecast.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from forecast.train.config import TrainConfig
from forecast.train.losses import AreaWeightedCRPS
from forecast.train.noise import InputNoise
from forecast.train.objectives import Objective, build_objective
from forecast.train.package import ModelPackage, assemble_forecaster, load_package, save_package
from forecast.train.precision import amp_dtype, autocast, grad_scaler, optimiser_step
from forecast.train.schedule import EMA, parameter_groups, warmup_cosine

__all__ = ["EpochSampler", "TrainResult", "build_forecaster", "resolve_device", "train", "validate"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "forecast-checkpoint"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun set up (RANK/WORLD_SIZE in the environment), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


class EpochSampler(Sampler[int]):
    """Deterministic shuffling: epoch ``e`` uses permutation ``seed + e``, sharded over DDP ranks.

    The permutation is cut to a multiple of ``world_size * batch_size`` so every rank runs the same
    number of equal batches; ``skip_batches`` resumes in the middle of an epoch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world_size
        self.epoch, self.skip = 0, 0
        if self.batches_per_epoch == 0:
            raise InputError(f"{n} training windows are fewer than one global batch of "
                             f"{batch_size * world_size}; lower data.batch_size or lengthen the training period")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_batches

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.batches_per_epoch * self.batch_size * self.world]
        mine = perm[self.rank :: self.world].tolist()
        return iter(mine[self.skip * self.batch_size :])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip) * self.batch_size


def build_forecaster(config: TrainConfig, store: TrainingStore) -> Forecaster:
    return assemble_forecaster(config.model, store, config.residual, config.conserve_global_mean,
                               source=f"train config {config.name}")


@torch.no_grad()
def validate(forecaster: Forecaster, store: TrainingStore, config: TrainConfig, device: torch.device) -> dict:
    """Area-weighted RMSE per channel in physical units at each ``validation.lead_steps``.

    RMSE follows WeatherBench2: the square root of the mean over initial times of the area-weighted
    MSE. Cases are initial times spread evenly over the validation period. With ``validation.members``
    ``M > 1`` each case is an ensemble of ``M`` unrolls: the RMSE is the ensemble mean's, and the fair
    CRPS and the spread (square root of the mean unbiased ensemble variance) are reported too.
    """
    leads = sorted(config.validation.lead_steps)
    m = config.validation.members
    ds = WindowDataset(store, config.data.valid.start, config.data.valid.end, n_steps=leads[-1])
    picks = np.unique(np.linspace(0, len(ds) - 1, min(config.validation.max_cases, len(ds))).round().astype(int))
    w = torch.as_tensor(area_weights(store.latitudes), dtype=torch.float64, device=device)[:, None]
    std = torch.as_tensor(store.std, dtype=torch.float64, device=device)[:, None, None]
    sums = torch.zeros(3, len(leads), len(store.channels), dtype=torch.float64, device=device)  # se, crps, var
    forecaster.eval()
    for start in range(0, len(picks), config.validation.batch_size):
        items = [ds[int(i)] for i in picks[start : start + config.validation.batch_size]]
        state = torch.stack([it["state"] for it in items]).to(device).repeat_interleave(m, 0)
        targets = torch.stack([it["targets"] for it in items]).to(device)
        forc = torch.stack([it["forcings"] for it in items]).to(device).repeat_interleave(m, 0)
        for k, x in enumerate(forecaster.iterate(state, forc, leads[-1])):
            if k + 1 not in leads:
                continue
            ens = x.double().reshape(len(items), m, *x.shape[1:]) * std  # (b, M, C, H, W) physical
            truth = targets[:, k].double() * std
            terms = [(ens.mean(1) - truth) ** 2]
            if m > 1:
                terms += [AreaWeightedCRPS.fair_pointwise(ens, truth, alpha=1.0), ens.var(1)]  # fair CRPS
            for i, term in enumerate(terms):
                sums[i, leads.index(k + 1)] += (term * w).mean(dim=(-1, -2)).sum(0)
    means = (sums / len(picks)).cpu().numpy()

    def per_lead(values: np.ndarray) -> dict:
        return {str(lead): dict(zip(store.channels, map(float, values[i]), strict=True))
                for i, lead in enumerate(leads)}

    rmse = np.sqrt(means[0])
    # Model selection: the score in units of each channel's std, averaged over channels and all validated
    # leads, so a model that is good at 6 h but drifts at 5 days does not win. Ensembles: the CRPS.
    out = {"cases": int(len(picks)), "members": m, "rmse": per_lead(rmse),
           "score": float(np.mean(rmse / store.std[None, :]))}
    if m > 1:
        out.update(crps=per_lead(means[1]), spread=per_lead(np.sqrt(means[2])),
                   score=float(np.mean(means[1] / store.std[None, :])))
    return out


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best_score: float
    last_validation: dict
    samples_per_s: float


def _log_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    # Entries a killed run wrote after its last checkpoint are replayed on resume: drop them.
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept))


@dataclass
class _Run:
    """Everything one training run updates, so that its steps can be split into short functions."""

    config: TrainConfig
    info: DistInfo
    device: torch.device
    store: TrainingStore
    forecaster: Forecaster
    objective: Objective  # loss.type's objective around the forecaster (forecast.train.objectives)
    model: torch.nn.Module  # the objective, DDP-wrapped with several processes
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None
    n_params: int
    run_dir: Path
    epoch: int = 0
    skip: int = 0
    step: int = 0
    best: float = math.inf
    validation: dict = field(default_factory=dict)
    noise: InputNoise | None = None  # loss.input_noise on each window's initial state
    amp_dtype: torch.dtype | None = None  # autocast dtype (forecast.train.precision); None: full precision
    # Loss scaling for float16 autocast; disabled (a pass-through) otherwise.
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False))

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def checkpoint(self, next_epoch: int, next_batch: int) -> None:
        if not self.info.is_main:
            return
        save_checkpoint(self.ckpt_path, {
            "format": CHECKPOINT_FORMAT, "config": dump_config(self.config), "epoch": next_epoch,
            "batch_in_epoch": next_batch, "step": self.step, "model": self.forecaster.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None, "rng": rng_state(), "best_score": self.best,
            "validation": json.dumps(self.validation), "scaler": self.scaler.state_dict(),
        })

    def package(self, path: Path) -> None:
        net = (self.ema.shadow if self.ema else self.forecaster).network
        info = {"name": self.config.name, "step": self.step, "epoch": self.epoch, "validation": self.validation,
                "parameters": self.n_params}
        save_package(path, net, self.config.model, self.config.residual, self.store, dump_config(self.config),
                     info=info, conserve_global_mean=self.config.conserve_global_mean)


def _prepare_run_dir(config: TrainConfig, info: DistInfo, resume: bool) -> bool:
    """Create the run folder; return whether to resume (only when asked and a checkpoint exists)."""
    run_dir = check_output_path(config.run_dir)
    ckpt_path = run_dir / "last.pt"
    if resume and not ckpt_path.exists():
        log.info("no checkpoint in %s: starting a new run", run_dir)
        resume = False
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume and ckpt_path.exists():
            raise InputError(f"{run_dir} already holds a run (last.pt); pass --resume to continue it or "
                             "choose another name/output_dir")
        if not resume:
            (run_dir / "config.yaml").write_text(dump_config(config))
    return resume


def _check_init_from(path: str, pkg: ModelPackage, store: TrainingStore, state: dict[str, torch.Tensor]) -> None:
    """Refuse a package to start from that does not fit this run: other channels, grid, normalisation statistics
    (its weights expect inputs scaled by them; within 1e-4 relative) or network shapes (``state``: the new
    network's ``state_dict``)."""
    if pkg.channels != store.channels:
        raise InputError(f"init_from {path} was trained on channels {pkg.channels}, the store has {store.channels}")
    same_grid = (pkg.grid_type == store.grid_type and pkg.latitudes.shape == store.latitudes.shape
                 and pkg.longitudes.shape == store.longitudes.shape
                 and np.allclose(pkg.latitudes, store.latitudes) and np.allclose(pkg.longitudes, store.longitudes))
    if not same_grid:
        raise InputError(f"init_from {path} was trained on a {pkg.grid_type} {pkg.latitudes.size} x "
                         f"{pkg.longitudes.size} grid, the store is {store.grid_type} {store.latitudes.size} x "
                         f"{store.longitudes.size}")
    for what in ("mean", "std", "tendency_std"):
        ours, theirs = np.asarray(getattr(store, what), np.float64), np.asarray(getattr(pkg, what), np.float64)
        off = ~np.isclose(theirs, ours, rtol=1e-4, atol=0)
        if off.any():
            c = int(np.argmax(off))
            raise InputError(f"init_from {path} was trained with another normalisation: {what} of "
                             f"{store.channels[c]} is {theirs[c]:.6g} there, {ours[c]:.6g} in the store; start from "
                             "a package trained on this store's statistics")
    shapes = {k: tuple(v.shape) for k, v in pkg.state_dict.items()}
    wanted = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != wanted:
        diff = sorted(k for k in set(shapes) | set(wanted) if shapes.get(k) != wanted.get(k))
        raise InputError(f"init_from {path} holds another network: {len(diff)} weight(s) differ in name or shape "
                         f"(e.g. {diff[0]}: {shapes.get(diff[0])} there, {wanted.get(diff[0])} in this model); "
                         "its model config must equal this run's `model:`")


def _build_run(config: TrainConfig, info: DistInfo, dev: torch.device, store: TrainingStore, total_steps: int,
               resume: bool) -> _Run:
    forecaster = build_forecaster(config, store)
    if config.init_from and not resume:
        pkg = load_package(config.init_from)
        _check_init_from(config.init_from, pkg, store, forecaster.network.state_dict())
        forecaster.network.load_state_dict(pkg.state_dict)
    forecaster = forecaster.to(dev)
    noise = InputNoise(config.loss.input_noise, store.grid_type, *store.shape)
    unknown = sorted(set(config.loss.channel_weights) - set(store.channels))
    if unknown:
        raise InputError(f"loss.channel_weights names {unknown}, not channels of the store {store.channels}")
    channel_w = np.array([config.loss.channel_weights.get(c, 1.0) for c in store.channels])
    if config.loss.weighting == "tendency":
        # The loss is on states in units of each channel's std; dividing by (tendency_std / std)^2 puts
        # every channel's 6-hour change in units of its own spread, so slow channels weigh as much as fast ones.
        channel_w = channel_w * (np.asarray(store.std) / np.asarray(store.tendency_std)) ** 2
    groups = parameter_groups(forecaster, config.optim.weight_decay, config.optim.decay)
    opt = torch.optim.AdamW(groups, lr=config.optim.lr, betas=config.optim.betas)
    objective = build_objective(config.loss, forecaster, store, channel_w).to(dev)
    # No buffer needs syncing (no running statistics; the SHT matrices are the same on every rank), so
    # DDP need not broadcast them before every forward.
    model = DistributedDataParallel(objective, broadcast_buffers=False) if info.world_size > 1 else objective
    sched = warmup_cosine(opt, config.optim.warmup_steps, total_steps, config.optim.min_lr_ratio)
    ema = EMA(forecaster, config.optim.ema_decay) if config.optim.ema_decay else None
    dtype = amp_dtype(dev.type, config.optim.amp)
    return _Run(config, info, dev, store, forecaster, objective, model, opt, sched, ema,
                count_parameters(forecaster.network), Path(config.run_dir), amp_dtype=dtype,
                scaler=grad_scaler(dev, dtype), noise=noise)


def _resume(run: _Run) -> None:
    """Load ``last.pt`` into the run: weights, optimiser, schedule, EMA, RNG and position in the epoch."""
    ck = load_checkpoint(run.ckpt_path, map_location=run.device)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{run.ckpt_path} is not a training checkpoint")
    if ck["config"] != dump_config(run.config):
        raise InputError(f"{run.ckpt_path} belongs to a run with a different config; resume with the config "
                         f"saved in {run.run_dir / 'config.yaml'} or start a new run (other name or output_dir)")
    run.forecaster.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    if run.ema is not None and ck.get("ema") is not None:
        run.ema.load_state_dict(ck["ema"])
    if ck.get("scaler"):  # the float16 loss scale goes on where it was
        run.scaler.load_state_dict(ck["scaler"])
    run.epoch, run.skip, run.step, run.best = ck["epoch"], ck["batch_in_epoch"], ck["step"], ck["best_score"]
    run.validation = json.loads(ck.get("validation", "{}"))
    set_rng_state(ck["rng"])
    if run.info.is_main:
        _truncate_log(run.log_path, run.step)
        log.info("resuming %s at epoch %d, batch %d (step %d)", run.run_dir, run.epoch, run.skip, run.step)


def _train_step(run: _Run, batch: dict) -> tuple[float, float]:
    """One optimiser step on ``batch``; returns the (rank-averaged) loss and the gradient norm."""
    config, dev = run.config, run.device
    k = run.objective.n_steps
    state = batch["state"].to(dev, non_blocking=True)
    targets = batch["targets"][:, :k].to(dev, non_blocking=True)
    forc = batch["forcings"].to(dev, non_blocking=True)
    if run.noise:
        state = run.noise(state)
    with autocast(dev, run.amp_dtype):
        loss = run.model(state, forc, targets)
    grad_norm, _ = optimiser_step(loss, run.opt, run.scaler, run.forecaster.parameters(), config.optim.grad_clip)
    run.sched.step()
    if run.ema:
        run.ema.update(run.forecaster)
    run.step += 1
    loss_value = loss.detach()
    if run.info.world_size > 1:
        dist.all_reduce(loss_value, op=dist.ReduceOp.AVG)
    return float(loss_value), grad_norm


def _train_epoch(run: _Run, loader: DataLoader, batches: int, progress: bool) -> float:
    """The rest of the current epoch (from batch ``run.skip``); returns the last step's samples/s."""
    config, info = run.config, run.info
    run.objective.n_steps = config.loss.steps_at(run.epoch)
    run.model.train()
    bar = None
    if progress and info.is_main:
        from tqdm import tqdm

        bar = tqdm(total=batches, initial=run.skip, desc=f"epoch {run.epoch + 1}/{config.epochs}", unit="batch")
    throughput = 0.0
    for b, batch in enumerate(loader, start=run.skip):
        if b >= batches:
            break
        t0 = time.perf_counter()
        loss_value, grad_norm = _train_step(run, batch)
        throughput = config.data.batch_size / (time.perf_counter() - t0)
        if info.is_main:
            _log_jsonl(run.log_path, {"kind": "train", "epoch": run.epoch, "step": run.step, "loss": loss_value,
                                      "lr": run.sched.get_last_lr()[0], "grad_norm": grad_norm,
                                      "rollout_steps": run.objective.n_steps, "samples_per_s": throughput})
            if bar is not None:
                bar.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{throughput:.1f}")
                bar.update(1)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss became {loss_value} at step {run.step}; lower optim.lr "
                                     "or enable gradient clipping")
        if run.step % config.checkpoint_every == 0 and b + 1 < batches:
            run.checkpoint(run.epoch, b + 1)
    if bar is not None:
        bar.close()
    return throughput


def _end_epoch(run: _Run) -> None:
    """Validate, keep the best package, checkpoint at the epoch boundary."""
    run.epoch, run.skip = run.epoch + 1, 0
    if run.info.is_main:
        run.validation = validate(run.ema.shadow if run.ema else run.forecaster, run.store, run.config, run.device)
        _log_jsonl(run.log_path, {"kind": "valid", "epoch": run.epoch, "step": run.step, **run.validation})
        lead_txt = ", ".join(f"{int(k) * 6}h " + " ".join(f"{c}={v:.4g}" for c, v in r.items())
                             for k, r in run.validation["rmse"].items())
        log.info("epoch %d: validation RMSE %s", run.epoch, lead_txt)
        if run.validation["score"] < run.best:
            run.best = run.validation["score"]
            run.package(run.run_dir / "best.pt")
        run.checkpoint(run.epoch, 0)
        run.package(run.run_dir / "model.pt")
    if run.info.world_size > 1:
        dist.barrier()


def train(config: TrainConfig, resume: bool = False, device: str | None = None, progress: bool = True) -> TrainResult:
    """Train ``config``; with ``resume`` continue from ``<run_dir>/last.pt`` exactly where it stopped."""
    info, dev = init_distributed(resolve_device(device or config.device))
    torch.manual_seed(config.seed)
    resume = _prepare_run_dir(config, info, resume)
    store = open_training_store(config.data.store, in_memory=config.data.in_memory)
    # Windows as long as the longest unroll of the curriculum, so every epoch sees the same initial times.
    train_ds = WindowDataset(store, config.data.train.start, config.data.train.end, n_steps=config.loss.max_steps)
    if config.data.batch_size % info.world_size:
        raise InputError(f"data.batch_size {config.data.batch_size} is not divisible by {info.world_size} processes")
    per_rank = config.data.batch_size // info.world_size
    sampler = EpochSampler(len(train_ds), per_rank, config.seed, info.rank, info.world_size)
    # The loader draws its workers' base seed from a generator of its own, not from the global RNG: the
    # global stream then only feeds the steps (input noise, dropout), and a resumed run, whose loader
    # starts mid-epoch, draws exactly what the uninterrupted run drew.
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=config.data.workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False, drop_last=True,
                        generator=torch.Generator().manual_seed(config.seed))
    batches = sampler.batches_per_epoch if config.steps_per_epoch is None else min(config.steps_per_epoch,
                                                                                    sampler.batches_per_epoch)
    run = _build_run(config, info, dev, store, batches * config.epochs, resume)
    if resume:
        _resume(run)
    if info.is_main:
        log.info("%s: %s with %d parameters on %s (%d process(es)), %d windows, %d steps/epoch",
                 config.name, config.model.type, run.n_params, dev, info.world_size, len(train_ds), batches)
    throughput = 0.0
    while run.epoch < config.epochs:
        sampler.set_epoch(run.epoch, run.skip)
        throughput = _train_epoch(run, loader, batches, progress)
        _end_epoch(run)
    return TrainResult(run.run_dir, run.step, run.best, run.validation, throughput)
