"""Training and sampling cost of the generative ensembles against the deterministic SFNO (issue 11).

    .venv/bin/python benchmarks/generative_cost.py [--rounds 5] [--members 16] [--steps 20] [--quick]
        [--store data/stores/era5-synth.zarr] [--configs configs/train/sfno_synth.yaml ...]

For each train config (default: the deterministic SFNO, the CRPS-trained stochastic SFNO and both DYffusion
stages of the embedded data; their networks freshly initialised, no trained model needed) on the store's
grid and channels, interleaved round by round:

* **sampling**: a ``--members``-member ``--steps``-step rollout of the :class:`Forecaster` through
  ``forecast.rollout.generator.rollout`` (inference mode), reported as member-steps/s;
* **training**: one optimiser step of the config's objective (``loss.type``: unroll MSE, ensemble CRPS,
  DYffusion stage) on one batch of the config's size and unroll length, reported as windows/s and as
  network evaluations per window (what the objective costs relative to one forward of one state).

The first config is the baseline of the ratios. Results: ``benchmarks/results/generative_cost.*``.
"""

from __future__ import annotations

import time
from typing import Any

from harness import (
    REPO,
    Report,
    common_parser,
    finish,
    fmt_stat,
    interleaved,
    machine_info,
    machine_line,
    paired_ratio,
    setup_torch,
    stats,
    synchronizer,
    table,
)

NAME = "generative_cost"
CONFIGS = ["configs/train/sfno_synth.yaml", "configs/train/sfno_crps_synth.yaml",
           "configs/train/dyffusion_synth_interp.yaml", "configs/train/dyffusion_synth.yaml"]


def case(torch, config_path: str, store, args) -> dict[str, Any]:
    """The sampling and training callables of one train config, on fresh weights."""
    import numpy as np

    from forecast.config import load_config
    from forecast.data.dataset import WindowDataset
    from forecast.rollout.generator import rollout
    from forecast.train.config import TrainConfig
    from forecast.train.loop import build_forecaster
    from forecast.train.objectives import build_objective

    config = load_config(TrainConfig, REPO / config_path)
    if args.quick:
        small = ["embed_dim=8", "num_layers=2"]
        nets = ["model.interpolator", "model.forecaster"] if config.model.type == "dyffusion" else ["model"]
        config = load_config(TrainConfig, REPO / config_path, [f"{n}.{s}" for n in nets for s in small])
    torch.manual_seed(0)
    forecaster = build_forecaster(config, store).to(args.device)
    objective = build_objective(config.loss, forecaster, store, np.ones(len(store.channels))).to(args.device)
    opt = torch.optim.AdamW([p for p in forecaster.parameters() if p.requires_grad], lr=1e-4)
    windows = WindowDataset(store, None, None, n_steps=config.loss.max_steps)
    items = [windows[i] for i in range(config.data.batch_size)]
    batch = {k: torch.stack([it[k] for it in items]).to(args.device) for k in ("state", "forcings", "targets")}
    gen = torch.Generator().manual_seed(0)
    state = torch.randn(args.members, len(store.channels), *store.shape, generator=gen).to(args.device)
    t0 = np.repeat(np.array([store.times[0]], dtype="datetime64[ns]"), args.members)

    def sample() -> None:
        forecaster.eval()
        for _ in rollout(forecaster, state, t0, args.steps, store.time_step, store.latitudes, store.longitudes):
            pass

    def train_step() -> None:
        forecaster.train()
        opt.zero_grad(set_to_none=True)
        objective(batch["state"], batch["forcings"], batch["targets"]).backward()
        opt.step()

    return {"name": config.name, "type": config.loss.type, "batch": config.data.batch_size,
            "unroll": objective.n_steps, "sample": sample, "train": train_step}


def main() -> None:
    p = common_parser(__doc__, rounds=5)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--store", default="data/stores/era5-synth.zarr")
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    args = p.parse_args()
    if args.quick:
        args.members, args.steps = 2, 4
    torch = setup_torch(args)
    from forecast.data.store import open_training_store

    say = Report()
    info = machine_info(args.device)
    say(f"# {NAME}: sampling and training cost, {args.rounds} interleaved rounds after {args.warmup} warm-up")
    say(machine_line(info))
    store = open_training_store(REPO / args.store)
    say(f"store {args.store}: {store.shape[0]} x {store.shape[1]} {store.grid_type}, channels {store.channels}")
    t = time.perf_counter()
    cases = [case(torch, c, store, args) for c in args.configs]
    say(f"built {len(cases)} models in {time.perf_counter() - t:.1f} s")
    sync = synchronizer(args.device)
    calls = {f"{c['name']}/{k}": c[k] for c in cases for k in ("sample", "train")}
    times = interleaved(calls, args.rounds, args.warmup, sync)
    base = cases[0]["name"]
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "cases": {}}
    rows = []
    n = args.members * args.steps
    for c in cases:
        s, tr = times[f"{c['name']}/sample"], times[f"{c['name']}/train"]
        r = {"loss": c["type"], "batch": c["batch"], "unroll": c["unroll"],
             "sample_s": stats(s), "member_steps_per_s": stats([n / x for x in s]),
             "train_s": stats(tr), "windows_per_s": stats([c["batch"] / x for x in tr]),
             "sample_ratio": paired_ratio(s, times[f"{base}/sample"]),
             "train_ratio": paired_ratio(tr, times[f"{base}/train"]), "raw_s": {"sample": s, "train": tr}}
        payload["cases"][c["name"]] = r
        rows.append([c["name"], c["type"], fmt_stat(r["member_steps_per_s"], digits=1),
                     fmt_stat(r["sample_ratio"]), f"{c['batch']} x {c['unroll']}",
                     fmt_stat(r["windows_per_s"], digits=2), fmt_stat(r["train_ratio"])])
    say(f"\n## median [IQR]; sampling: {args.members} members x {args.steps} steps; ratios: time / {base}'s "
        "in the same round")
    say(table(["config", "loss", "member-steps/s", "sampling time ratio", "train batch x steps", "windows/s",
               "train step time ratio"], rows))
    finish(NAME, args.out_dir, payload, say)


if __name__ == "__main__":
    main()
