"""Overhead of the project's rollout path over a plain loop of network calls (the floor).

    .venv/bin/python benchmarks/rollout_overhead.py [--rounds 5] [--members 16] [--steps 20] [--long-steps 100]
        [--nlat 32 --nlon 64] [--model configs/models/sfno_small.yaml] [--quick]

A randomly initialised network built from ``--model`` (no trained model needed) is saved as a model
package for a tiny store made here (``forecast.testing.tiny_store``: analytic ``z500`` and ``msl`` on the
``--nlat x --nlon`` Gaussian grid). Three ways to run the same steps, interleaved round by round:

* ``floor``: ``network(x)`` in a Python loop under ``torch.inference_mode`` on a fixed ``(M, C_in, H, W)``
  input (what the arithmetic alone costs);
* ``generator``: ``forecast.rollout.generator.rollout`` on the :class:`Forecaster` (normalised state,
  forcings recomputed every step, static inputs concatenated, residual update);
* ``predict``: ``forecast.rollout.predict.run_predict`` (the ``forecast predict`` path: perturbed members,
  guards, stability monitor, streaming zarr product write); its rollout-and-write seconds, model loading
  excluded.

for a ``--members``-member ``--steps``-step ensemble and a single ``--long-steps`` rollout (scaled to a
year of 6-hour steps in the print). Reported: member-steps/s of each and the overhead ratios
generator / floor and predict / floor (per round, paired). Results: ``benchmarks/results/rollout_overhead.*``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
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

NAME = "rollout_overhead"
INIT = "2000-01-10T00:00"
YEAR_STEPS = 1460  # 6-hour steps in a year


def make_package(root: Path, model_path: str, nlat: int, nlon: int, quick: bool) -> Path:
    """A package of a randomly initialised network from ``model_path`` for a tiny store under ``root``."""
    import torch

    from forecast.data.features import FORCING_NAMES, POSITION_NAMES
    from forecast.data.store import open_training_store
    from forecast.models import build_model, load_model_config
    from forecast.testing import tiny_store
    from forecast.train.package import save_package

    store_path = tiny_store(root, months=1 if quick else 2, nlat=nlat, nlon=nlon)
    store = open_training_store(store_path)
    overrides = ["embed_dim=8", "num_layers=2", "lmax=6", "mmax=6"] if quick else None
    config = load_model_config(REPO / model_path, overrides)
    inputs = len(store.channels) + len(store.static_names) + len(POSITION_NAMES) + len(FORCING_NAMES)
    torch.manual_seed(0)
    net = build_model(config, store.grid_type, *store.shape, inputs, len(store.channels))
    return save_package(root / "bench.pt", net, config, True, store, "name: bench\n", info={"name": "bench"})


def predict_config(package: Path, store: Path, out: Path, steps: int, members: int | None, device: str):
    from forecast.rollout.config import PredictConfig

    tree: dict[str, Any] = {"name": "bench", "packages": [str(package)], "store": str(store),
                            "init": {"times": [INIT]}, "lead": steps, "device": device,
                            "output": {"path": str(out), "overwrite": True}}
    if members:
        tree["ensemble"] = {"members": members, "seed": 1, "control": True,
                            "perturbation": {"type": "spherical_grf", "amplitude": 0.05, "length_scale_km": 800}}
    return PredictConfig.model_validate(tree)


def scenario(torch, package: Path, store: Path, out: Path, members: int, steps: int, args) -> dict[str, Any]:
    """Interleaved floor / generator / predict times of ``members`` x ``steps`` member-steps."""
    import numpy as np

    from forecast.rollout.generator import rollout
    from forecast.rollout.predict import run_predict
    from forecast.train.package import load_package

    pkg = load_package(package)
    forecaster = pkg.build_forecaster(args.device)
    net = forecaster.network
    h, w = len(pkg.latitudes), len(pkg.longitudes)
    gen = torch.Generator().manual_seed(0)
    x_net = torch.randn(members, pkg.in_channels, h, w, generator=gen).to(args.device)
    state = torch.randn(members, len(pkg.channels), h, w, generator=gen).to(args.device)
    t0 = np.repeat(np.array([INIT], dtype="datetime64[ns]"), members)
    config = predict_config(package, store, out, steps, members if members > 1 else None, args.device)
    predict_s: list[float] = []

    def floor():
        with torch.inference_mode():
            for _ in range(steps):
                net(x_net)

    def generator():
        for _ in rollout(forecaster, state, t0, steps, pkg.time_step, pkg.latitudes, pkg.longitudes):
            pass

    def predict():
        predict_s.append(run_predict(config).seconds)

    times = interleaved({"floor": floor, "generator": generator, "predict": predict}, args.rounds, args.warmup,
                        synchronizer(args.device))
    # run_predict's own clock covers the rollout and the writes, not loading the package and the store.
    times["predict_call"] = times["predict"]
    times["predict"] = predict_s[args.warmup:]
    n = members * steps
    out_stats: dict[str, Any] = {"members": members, "steps": steps, "member_steps": n, "raw_s": times}
    for k in ("floor", "generator", "predict", "predict_call"):
        out_stats[k] = stats(times[k])
        out_stats[k + "_member_steps_per_s"] = stats([n / t for t in times[k]])
    out_stats["ratio_generator_over_floor"] = paired_ratio(times["generator"], times["floor"])
    out_stats["ratio_predict_over_floor"] = paired_ratio(times["predict"], times["floor"])
    out_stats["ratio_predict_over_generator"] = paired_ratio(times["predict"], times["generator"])
    return out_stats


def main() -> None:
    p = common_parser(__doc__, rounds=5)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--long-steps", type=int, default=100)
    p.add_argument("--nlat", type=int, default=32)
    p.add_argument("--nlon", type=int, default=64)
    p.add_argument("--model", default="configs/models/sfno_small.yaml")
    args = p.parse_args()
    if args.quick:
        args.members, args.steps, args.long_steps, args.nlat, args.nlon = 2, 2, 3, 16, 32
    torch = setup_torch(args)
    say = Report()
    info = machine_info(args.device)
    say(f"# {NAME}: rollout path vs a plain network loop, {args.rounds} interleaved rounds after {args.warmup} "
        f"warm-up")
    say(machine_line(info))
    root = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    t = time.perf_counter()
    package = make_package(root, args.model, args.nlat, args.nlon, args.quick)
    store = root / "store.zarr"
    say(f"model: {args.model} (random weights), Gaussian grid {args.nlat} x {args.nlon}; tiny store and package "
        f"made in {time.perf_counter() - t:.1f} s under {root}")
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "scenarios": {}}
    runs = {"ensemble": (args.members, args.steps), "long": (1, args.long_steps)}
    for name, (members, steps) in runs.items():
        payload["scenarios"][name] = scenario(torch, package, store, root / f"{name}.zarr", members, steps, args)

    rows = []
    for name, r in payload["scenarios"].items():
        label = f"{r['members']}-member {r['steps']}-step ensemble" if name == "ensemble" else \
            f"single {r['steps']}-step rollout"
        for k, what in (("floor", "network(x) loop (floor)"), ("generator", "rollout generator"),
                        ("predict", "forecast predict (rollout + guards + stability + write)")):
            ratio = "1" if k == "floor" else fmt_stat(r[f"ratio_{k}_over_floor"])
            rows.append([label, what, fmt_stat(r[k], digits=3), fmt_stat(r[k + "_member_steps_per_s"], digits=1),
                         ratio])
    say("\n## member-steps/s, median [IQR]; overhead = time / floor time of the same round")
    say(table(["run", "path", "seconds", "member-steps/s", "overhead vs floor"], rows))
    long = payload["scenarios"]["long"]
    scale = YEAR_STEPS / long["steps"]
    say(f"\nsingle rollout scaled to a year ({YEAR_STEPS} six-hour steps, x{scale:g}): floor "
        f"{long['floor']['median'] * scale:.1f} s, generator {long['generator']['median'] * scale:.1f} s, "
        f"predict {long['predict']['median'] * scale:.1f} s (one predict call of {long['steps']} steps incl. "
        f"loading the package and store: {long['predict_call']['median']:.2f} s)")
    finish(NAME, args.out_dir, payload, say)


if __name__ == "__main__":
    main()
