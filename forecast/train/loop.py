"""The training loop: multi-step area-weighted MSE, AdamW with warm-up + cosine, clipping, EMA, AMP,
validation in physical units, atomic checkpoints with exact resume, and DistributedDataParallel.

Launch with ``forecast train CONFIG`` on one process or ``torchrun --nproc_per_node=N -m forecast.cli
train CONFIG`` for DDP (gloo on CPU, nccl on CUDA); the code path is the same.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from forecast.config import dump_config
from forecast.data.dataset import WindowDataset
from forecast.data.features import FORCING_NAMES, POSITION_NAMES, static_inputs
from forecast.data.store import TrainingStore, open_training_store
from forecast.errors import InputError
from forecast.grids import area_weights
from forecast.models import build_model, count_parameters
from forecast.models.forecaster import Forecaster
from forecast.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from forecast.train.config import TrainConfig
from forecast.train.losses import AreaWeightedMSE
from forecast.train.package import load_package, save_package
from forecast.train.schedule import EMA, warmup_cosine

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
    n_in = len(store.channels) + len(store.static_names) + len(POSITION_NAMES) + len(FORCING_NAMES)
    net = build_model(config.model, store.grid_type, len(store.latitudes), len(store.longitudes), n_in,
                      len(store.channels))
    static = torch.from_numpy(static_inputs(store.static, store.latitudes, store.longitudes))
    return Forecaster(net, static, torch.from_numpy(store.tendency_std / store.std), residual=config.residual)


def _autocast(device: torch.device, amp: str):
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return nullcontext()
    if amp == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def validate(forecaster: Forecaster, store: TrainingStore, config: TrainConfig, device: torch.device) -> dict:
    """Area-weighted RMSE per channel in physical units at each ``validation.lead_steps``.

    RMSE follows WeatherBench2: the square root of the mean over initial times of the area-weighted
    MSE. Cases are initial times spread evenly over the validation period.
    """
    leads = sorted(config.validation.lead_steps)
    ds = WindowDataset(store, config.data.valid.start, config.data.valid.end, n_steps=leads[-1])
    picks = np.unique(np.linspace(0, len(ds) - 1, min(config.validation.max_cases, len(ds))).round().astype(int))
    w = torch.as_tensor(area_weights(store.latitudes), dtype=torch.float64, device=device)[:, None]
    std = torch.as_tensor(store.std, dtype=torch.float64, device=device)
    sq = torch.zeros(len(leads), len(store.channels), dtype=torch.float64, device=device)
    forecaster.eval()
    for start in range(0, len(picks), config.validation.batch_size):
        items = [ds[int(i)] for i in picks[start : start + config.validation.batch_size]]
        state = torch.stack([it["state"] for it in items]).to(device)
        targets = torch.stack([it["targets"] for it in items]).to(device)
        forc = torch.stack([it["forcings"] for it in items]).to(device)
        for k in range(leads[-1]):
            state = forecaster(state, forc[:, k])
            if k + 1 in leads:
                err = (state.double() - targets[:, k].double()) * std[:, None, None]  # physical units
                sq[leads.index(k + 1)] += ((err**2) * w).mean(dim=(-1, -2)).sum(0)
    rmse = torch.sqrt(sq / len(picks)).cpu().numpy()
    return {
        "cases": int(len(picks)),
        "rmse": {str(lead): dict(zip(store.channels, map(float, rmse[i]), strict=True))
                 for i, lead in enumerate(leads)},
        # Model selection: RMSE in units of each channel's std, averaged over channels and all
        # validated leads, so a model that is good at 6 h but drifts at 5 days does not win.
        "score": float(np.mean(rmse / store.std[None, :])),
    }


class _Unroll(torch.nn.Module):
    """The whole k-step unroll as one forward, so DDP sees one forward per backward."""

    def __init__(self, forecaster: Forecaster, n_steps: int):
        super().__init__()
        self.forecaster = forecaster
        self.n_steps = n_steps

    def forward(self, state: torch.Tensor, forc: torch.Tensor) -> torch.Tensor:
        return self.forecaster.unroll(state, forc, self.n_steps)


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


def train(config: TrainConfig, resume: bool = False, device: str | None = None, progress: bool = True) -> TrainResult:
    """Train ``config``; with ``resume`` continue from ``<run_dir>/last.pt`` exactly where it stopped."""
    info, dev = init_distributed(resolve_device(device or config.device))
    torch.manual_seed(config.seed)
    run_dir = Path(config.run_dir)
    ckpt_path = run_dir / "last.pt"
    log_path = run_dir / "metrics.jsonl"
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

    store = open_training_store(config.data.store, in_memory=config.data.in_memory)
    train_ds = WindowDataset(store, config.data.train.start, config.data.train.end, n_steps=config.loss.rollout_steps)
    if config.data.batch_size % info.world_size:
        raise InputError(f"data.batch_size {config.data.batch_size} is not divisible by {info.world_size} processes")
    per_rank = config.data.batch_size // info.world_size
    sampler = EpochSampler(len(train_ds), per_rank, config.seed, info.rank, info.world_size)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=config.data.workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False, drop_last=True)
    batches = sampler.batches_per_epoch if config.steps_per_epoch is None else min(config.steps_per_epoch,
                                                                                    sampler.batches_per_epoch)
    total_steps = batches * config.epochs

    forecaster = build_forecaster(config, store)
    if config.init_from and not resume:
        pkg = load_package(config.init_from)
        if pkg.channels != store.channels:
            raise InputError(f"init_from {config.init_from} was trained on channels {pkg.channels}, "
                             f"the store has {store.channels}")
        forecaster.network.load_state_dict(pkg.state_dict)
    forecaster = forecaster.to(dev)
    n_params = count_parameters(forecaster.network)
    channel_w = np.array([config.loss.channel_weights.get(c, 1.0) for c in store.channels])
    loss_fn = AreaWeightedMSE(store.latitudes, channel_w).to(dev)
    opt = torch.optim.AdamW(forecaster.parameters(), lr=config.optim.lr, betas=config.optim.betas,
                            weight_decay=config.optim.weight_decay)
    sched = warmup_cosine(opt, config.optim.warmup_steps, total_steps, config.optim.min_lr_ratio)
    ema = EMA(forecaster, config.optim.ema_decay) if config.optim.ema_decay else None
    epoch, skip, step, best = 0, 0, 0, math.inf
    validation: dict = {}
    if resume:
        ck = load_checkpoint(ckpt_path, map_location=dev)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"{ckpt_path} is not a training checkpoint")
        if ck["config"] != dump_config(config):
            raise InputError(f"{ckpt_path} belongs to a run with a different config; resume with the config "
                             f"saved in {run_dir / 'config.yaml'} or start a new run (other name or output_dir)")
        forecaster.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        epoch, skip, step, best = ck["epoch"], ck["batch_in_epoch"], ck["step"], ck["best_score"]
        validation = json.loads(ck.get("validation", "{}"))
        set_rng_state(ck["rng"])
        if info.is_main:
            _truncate_log(log_path, step)
            log.info("resuming %s at epoch %d, batch %d (step %d)", run_dir, epoch, skip, step)
    unroll = _Unroll(forecaster, config.loss.rollout_steps)
    model = DistributedDataParallel(unroll) if info.world_size > 1 else unroll
    if info.is_main:
        log.info("%s: %s with %d parameters on %s (%d process(es)), %d windows, %d steps/epoch",
                 config.name, config.model.type, n_params, dev, info.world_size, len(train_ds), batches)

    def checkpoint(next_epoch: int, next_batch: int) -> None:
        if not info.is_main:
            return
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "config": dump_config(config), "epoch": next_epoch,
            "batch_in_epoch": next_batch, "step": step, "model": forecaster.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "ema": ema.state_dict() if ema else None, "rng": rng_state(), "best_score": best,
            "validation": json.dumps(validation),
        })

    def package(path: Path, validation: dict) -> None:
        net = (ema.shadow if ema else forecaster).network
        save_package(path, net, config.model, config.residual, store, dump_config(config),
                     info={"name": config.name, "step": step, "epoch": epoch, "validation": validation,
                           "parameters": n_params})

    throughput = 0.0
    while epoch < config.epochs:
        sampler.set_epoch(epoch, skip)
        model.train()
        bar = None
        if progress and info.is_main:
            from tqdm import tqdm

            bar = tqdm(total=batches, initial=skip, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch")
        for b, batch in enumerate(loader, start=skip):
            if b >= batches:
                break
            t0 = time.perf_counter()
            state = batch["state"].to(dev, non_blocking=True)
            targets = batch["targets"].to(dev, non_blocking=True)
            forc = batch["forcings"].to(dev, non_blocking=True)
            with _autocast(dev, config.optim.amp):
                loss = loss_fn(model(state, forc), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = (torch.nn.utils.clip_grad_norm_(forecaster.parameters(), config.optim.grad_clip)
                         if config.optim.grad_clip else torch.tensor(float("nan")))
            opt.step()
            sched.step()
            if ema:
                ema.update(forecaster)
            step += 1
            loss_value = loss.detach()
            if info.world_size > 1:
                dist.all_reduce(loss_value, op=dist.ReduceOp.AVG)
            dt = time.perf_counter() - t0
            throughput = config.data.batch_size / dt
            if info.is_main:
                _log_jsonl(log_path, {"kind": "train", "epoch": epoch, "step": step, "loss": float(loss_value),
                                      "lr": sched.get_last_lr()[0], "grad_norm": float(grad_norm),
                                      "samples_per_s": throughput})
                if bar is not None:
                    bar.set_postfix(loss=f"{float(loss_value):.4f}", samples_s=f"{throughput:.1f}")
                    bar.update(1)
            if not math.isfinite(float(loss_value)):
                raise FloatingPointError(f"training loss became {float(loss_value)} at step {step}; lower optim.lr "
                                         "or enable gradient clipping")
            if step % config.checkpoint_every == 0 and b + 1 < batches:
                checkpoint(epoch, b + 1)
        if bar is not None:
            bar.close()
        epoch, skip = epoch + 1, 0
        if info.is_main:
            validation = validate(ema.shadow if ema else forecaster, store, config, dev)
            _log_jsonl(log_path, {"kind": "valid", "epoch": epoch, "step": step, **validation})
            lead_txt = ", ".join(f"{int(k) * 6}h " + " ".join(f"{c}={v:.4g}" for c, v in r.items())
                                 for k, r in validation["rmse"].items())
            log.info("epoch %d: validation RMSE %s", epoch, lead_txt)
            if validation["score"] < best:
                best = validation["score"]
                package(run_dir / "best.pt", validation)
            checkpoint(epoch, 0)
            package(run_dir / "model.pt", validation)
        if info.world_size > 1:
            dist.barrier()
    return TrainResult(run_dir, step, best, validation, throughput)
