"""An SFNO training step alone vs with a busy neighbour process, under three thread settings.

    .venv/bin/python benchmarks/contention.py [--rounds 5] [--neighbours busy train] [--quick]

On a machine shared with other jobs a fair share is about a 2x slowdown with one equally busy
neighbour on 2 cores; a much larger factor means the threads fight (OpenMP workers spinning while
they wait, more threads than cores). Each setting runs in a fresh subprocess, because OpenMP reads its
environment when torch is imported:

* ``default``: torch's default threads (one per core), OpenMP's default wait policy;
* ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spinning;
* ``threads=1``: ``torch.set_num_threads(1)``.

In each, the training step (forward, MSE, ``loss.backward()``; the ERA5 recipe's SFNO,
``configs/train/sfno_era5.yaml``, at 73 x 144) is timed alone and with a neighbour running, alternating
round by round: the neighbours are started once and paused (SIGSTOP) / resumed (SIGCONT) between
rounds. Neighbours: ``busy``, a single-threaded torch matmul loop; ``train``, a second process doing the
same training step with the same settings. Reported: the slowdown (with / alone, per round) and the
step's CPU seconds per wall second. Results: ``benchmarks/results/contention.*``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from harness import (
    REPO,
    Report,
    common_parser,
    finish,
    fmt_stat,
    machine_info,
    machine_line,
    paired_ratio,
    stats,
    table,
)

NAME = "contention"
SETTINGS = {
    "default": {"env": {}, "threads": None},
    "OMP_WAIT_POLICY=PASSIVE": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}, "threads": None},
    "threads=1": {"env": {}, "threads": 1},
}
IN_CHANNELS, OUT_CHANNELS = 11, 2


def training_step(quick: bool, batch: int):
    """A closure doing one SFNO training step (the ERA5 recipe at 73 x 144, or a tiny one with ``quick``)."""
    import torch
    import yaml

    from forecast.models import SFNOConfig, build_model

    tree = yaml.safe_load((REPO / "configs" / "train" / "sfno_era5.yaml").read_text())["model"]
    nlat, nlon = 73, 144
    if quick:
        tree.update(embed_dim=8, num_layers=2, lmax=6, mmax=6)
        nlat, nlon = 17, 32
    net = build_model(SFNOConfig.model_validate(tree), "equiangular", nlat, nlon, IN_CHANNELS, OUT_CHANNELS)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, IN_CHANNELS, nlat, nlon, generator=gen)
    y = torch.randn(batch, OUT_CHANNELS, nlat, nlon, generator=gen)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(net(x), y).backward()

    return step


def neighbour(kind: str, quick: bool, batch: int, threads: int | None) -> None:
    """Run until the parent goes: a 1-thread matmul loop (``busy``) or training steps (``train``)."""
    import torch

    parent = os.getppid()
    if kind == "busy":
        torch.set_num_threads(1)
        a, b = torch.randn(256, 256), torch.randn(256, 256)
        print("ready", flush=True)
        while os.getppid() == parent:
            for _ in range(50):
                a @ b
        return
    if threads:
        torch.set_num_threads(threads)
    step = training_step(quick, batch)
    step()
    print("ready", flush=True)
    while os.getppid() == parent:
        step()


def worker(setting: str, kinds: list[str], rounds: int, steps: int, quick: bool, batch: int) -> dict[str, Any]:
    """Alone vs with each neighbour kind, interleaved over ``rounds``; runs in its own process."""
    import torch

    threads = SETTINGS[setting]["threads"]
    if threads:
        torch.set_num_threads(threads)
    step = training_step(quick, batch)
    procs = {}
    try:
        for kind in kinds:
            cmd = [sys.executable, __file__, "--neighbour", kind, str(batch), str(threads or 0)] + \
                (["--quick"] if quick else [])
            env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if kind == "busy" else {}))
            procs[kind] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for kind in kinds:  # each has imported torch and built what it runs: pause it
            if procs[kind].stdout.readline().strip() != "ready":
                raise RuntimeError(f"neighbour {kind} did not start")
            procs[kind].send_signal(signal.SIGSTOP)

        def measure(kind: str | None) -> tuple[float, float]:
            """(wall s, CPU s of this process) per step, with neighbour ``kind`` running (None: alone)."""
            if kind:
                procs[kind].send_signal(signal.SIGCONT)
                time.sleep(0.1)  # let it get scheduled
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            if kind:
                procs[kind].send_signal(signal.SIGSTOP)
            return w / steps, c / steps

        states = [None, *kinds]
        for s in states:  # warm-up
            measure(s)
        wall: dict[str, list[float]] = {str(s): [] for s in states}
        cpu: dict[str, list[float]] = {str(s): [] for s in states}
        for r in range(rounds):
            for s in states if r % 2 == 0 else states[::-1]:
                w, c = measure(s)
                wall[str(s)].append(w)
                cpu[str(s)].append(c)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGCONT)
            p.terminate()
            p.wait()
    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get(
        "OMP_WAIT_POLICY"), "raw_wall_s": wall, "raw_cpu_s": cpu, "alone": stats(wall["None"]),
        "alone_cpu_per_wall": stats([c / w for c, w in zip(cpu["None"], wall["None"], strict=True)])}
    for kind in kinds:
        out[f"with_{kind}"] = stats(wall[kind])
        out[f"slowdown_{kind}"] = paired_ratio(wall[kind], wall["None"])
        out[f"with_{kind}_cpu_per_wall"] = stats([c / w for c, w in zip(cpu[kind], wall[kind], strict=True)])
    return out


def run_setting(setting: str, args) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(SETTINGS[setting]["env"])
    cmd = [sys.executable, __file__, "--worker", setting, "--rounds", str(args.rounds), "--steps", str(args.steps),
           "--batch", str(args.batch), "--neighbours", *args.neighbours] + (["--quick"] if args.quick else [])
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"worker {setting} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = common_parser(__doc__, rounds=5)
    p.add_argument("--neighbours", nargs="+", default=["busy", "train"], choices=["busy", "train"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--steps", type=int, default=2, help="training steps per measurement")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--worker", help=argparse_suppress())
    p.add_argument("--neighbour", nargs=3, help=argparse_suppress())
    args = p.parse_args()
    if args.neighbour:
        kind, batch, threads = args.neighbour
        neighbour(kind, args.quick, int(batch), int(threads) or None)
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.neighbours, args.rounds, args.steps, args.quick, args.batch)))
        return
    if args.device != "cpu":
        raise SystemExit("contention is a CPU benchmark (--device cpu)")
    say = Report()
    info = machine_info("cpu")
    say(f"# {NAME}: SFNO training step alone vs with a busy neighbour, {args.rounds} alternating rounds of "
        f"{args.steps} steps (batch {args.batch}) after a warm-up, each setting in a fresh process")
    say(machine_line(info))
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "settings": {}}
    for setting in args.settings:
        payload["settings"][setting] = run_setting(setting, args)
    ms = 1e3
    headers = ["setting", "torch threads", "alone ms/step", "alone CPU/wall"]
    for kind in args.neighbours:
        headers += [f"with {kind} ms/step", f"slowdown ({kind})", f"CPU/wall ({kind})"]
    rows = []
    for setting, r in payload["settings"].items():
        row = [setting, r["torch_threads"], fmt_stat(r["alone"], ms, 1), f"{r['alone_cpu_per_wall']['median']:.2f}"]
        for kind in args.neighbours:
            row += [fmt_stat(r[f"with_{kind}"], ms, 1), fmt_stat(r[f"slowdown_{kind}"]),
                    f"{r[f'with_{kind}_cpu_per_wall']['median']:.2f}"]
        rows.append(row)
    say("\n## slowdown = with / alone, per round, median [IQR]; a fair share of 2 cores with one busy neighbour "
        "is about 2x")
    say(table(headers, rows))
    say("neighbours: busy = one-thread torch matmul loop (OMP_NUM_THREADS=1); train = the same training step "
        "in a second process with the same setting")
    finish(NAME, args.out_dir, payload, say)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
