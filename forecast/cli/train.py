"""Sub-commands that train and score models: ``train``, ``skill``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from forecast.cli.common import add_overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from forecast.config import load_config
    from forecast.train.config import TrainConfig
    from forecast.train.loop import train

    config = load_config(TrainConfig, args.config, args.overrides)
    result = train(config, resume=args.resume, device=args.device, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {config.name}: {result.steps} steps, best validation score {result.best_score:.4f} "
              f"(RMSE/std over channels and leads); package {result.run_dir / 'model.pt'}")
    return 0


def _cmd_skill(args: argparse.Namespace) -> int:
    from forecast.data.store import open_training_store
    from forecast.rollout.skill import format_skill, skill_table
    from forecast.train.package import load_package

    package = load_package(args.package)
    store = open_training_store(args.store)
    table = skill_table(package, store, args.start, args.end, args.leads, max_cases=args.cases,
                        clim_period=(args.clim_start, args.clim_end), device=args.device)
    if args.out:
        table.to_csv(args.out, index=False)
    print(format_skill(table))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands to the ``forecast`` parser."""
    p = sub.add_parser("train", help="train a forecaster (SFNO or AFNO) on a training store",
                       description="Train the model a config describes on an ingested store: area-weighted MSE "
                                   "(optionally over several unrolled steps), AdamW with warm-up and cosine decay, "
                                   "validation RMSE in physical units every epoch, atomic checkpoints. Run under "
                                   "`torchrun --nproc_per_node=N` for DistributedDataParallel.")
    p.add_argument("config", type=Path, help="training config (YAML), e.g. configs/train/sfno_synth.yaml")
    p.add_argument("--resume", action="store_true",
                   help="continue the run from its last checkpoint (starts a new run if there is none)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the config's, 'auto' = CUDA if present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overrides(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("skill", help="RMSE and ACC of a model vs persistence and climatology",
                       description="Roll a trained model package out from initial times spread over a period "
                                   "of a store and score it, persistence and climatology (day-of-year x hour "
                                   "mean over --clim-start .. --clim-end, 61-day window) on the same cases with "
                                   "WeatherBench2's definitions. For forecast products: `forecast evaluate`.")
    p.add_argument("package", type=Path, help="model package (runs/<name>/model.pt or best.pt)")
    p.add_argument("--store", required=True, type=Path, help="store holding the truth (and initial states)")
    p.add_argument("--start", help="first initial time, e.g. 2026-01-25")
    p.add_argument("--end", help="last valid time scored, e.g. 2026-02-07T18:00")
    p.add_argument("--leads", type=int, nargs="+", default=[1, 4, 8, 12, 20], help="lead times in model steps")
    p.add_argument("--cases", type=int, default=64, help="number of initial times (spread evenly)")
    p.add_argument("--clim-start", help="climatology period start (default: the store's start)")
    p.add_argument("--clim-end", help="climatology period end (use the training period's end)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="write the tidy table as CSV")
    p.set_defaults(func=_cmd_skill)
