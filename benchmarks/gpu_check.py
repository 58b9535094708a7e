"""`make gpu-check`: does the pipeline run unchanged on a CUDA GPU, and agree with the CPU?

On a small store made here (analytic fields through the real ``forecast ingest``), it

1. trains the same tiny SFNO for ``--steps`` steps in full precision on the CPU and on the GPU (TF32 off,
   same seed and batches) and compares the loss trajectories: relative difference at most ``--loss-rtol``;
2. rolls the CPU-trained package out ``--lead`` steps through ``forecast predict`` (a 4-member ensemble)
   on both devices and compares the products: largest difference at most ``--rollout-tol`` of each
   channel's standard deviation;
3. trains the same steps again on the GPU with ``amp: auto`` (bfloat16 where the GPU has it, else
   float16 with loss scaling) and reports the precision used and the training and rollout throughput.

Without CUDA it says so and exits 0 without doing any work (``--device cpu`` runs the whole check with the
CPU standing in for the GPU, to test this script). Results go to ``benchmarks/results/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import harness


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="the device checked against the CPU (default cuda)")
    p.add_argument("--steps", type=int, default=20, help="training steps on each device")
    p.add_argument("--lead", type=int, default=20, help="rollout steps compared")
    p.add_argument("--loss-rtol", type=float, default=1e-3, help="largest relative loss difference accepted")
    p.add_argument("--rollout-tol", type=float, default=1e-3,
                   help="largest rollout difference accepted, as a fraction of each channel's std")
    p.add_argument("--out-dir", default=str(harness.RESULTS), help="where gpu_check.json is written")
    return p.parse_args(argv)


def _train(root: Path, store: Path, name: str, device: str, steps: int, amp: str) -> tuple[list[float], float]:
    """Train the tiny SFNO; returns its losses and the median samples/s of its steps."""
    import numpy as np
    import torch

    from forecast.train.config import TrainConfig
    from forecast.train.loop import train

    torch.manual_seed(0)
    config = TrainConfig.model_validate({
        "name": name, "output_dir": str(root / name), "device": device, "epochs": 1, "steps_per_epoch": steps,
        "data": {"store": str(store), "train": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
                 "valid": {"start": "2000-02-01", "end": "2000-02-29T18:00"}, "batch_size": 4, "workers": 0},
        "model": {"type": "sfno", "embed_dim": 32, "num_layers": 4, "lmax": 16, "mmax": 16},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "amp": amp}, "validation": {"lead_steps": [1], "max_cases": 2},
    })
    train(config, progress=False)
    rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "train"]
    return [r["loss"] for r in rows], float(np.median([r["samples_per_s"] for r in rows[1:]] or [0.0]))


def _rollout(root: Path, store: Path, package: Path, name: str, device: str, lead: int) -> tuple[object, float]:
    from forecast.products.io import open_product
    from forecast.rollout.config import build_predict_config
    from forecast.rollout.predict import run_predict

    out = root / f"rollout-{name}.zarr"
    config = build_predict_config(package, [
        f"store={store}", "init={times: [2000-02-01T00:00]}", f"lead={lead}", f"output.path={out}",
        "ensemble.members=4", "ensemble.perturbation={type: white_noise, amplitude: 0.01}", "ensemble.seed=0",
        f"device={device}"])
    result = run_predict(config)
    return open_product(out).load(), result.member_steps_per_s


def run_check(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from forecast.testing import tiny_store

    # Full precision must mean the same arithmetic on both sides: no TF32 in matmuls or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(tmp)
        store = tiny_store(root, months=2, nlat=32, nlon=64)
        cpu_losses, cpu_rate = _train(root, store, "cpu", "cpu", args.steps, "off")
        dev_losses, dev_rate = _train(root, store, "device", args.device, args.steps, "off")
        loss_diff = float(np.max(np.abs(np.array(dev_losses) - cpu_losses) / np.abs(cpu_losses)))
        _, amp_rate = _train(root, store, "amp", args.device, args.steps, "auto")
        cpu_fc, cpu_msps = _rollout(root, store, root / "cpu" / "model.pt", "cpu", "cpu", args.lead)
        dev_fc, dev_msps = _rollout(root, store, root / "cpu" / "model.pt", "device", args.device,
                                    args.lead)
        rollout_diff = {str(c): float(np.abs(dev_fc[c] - cpu_fc[c]).max() / cpu_fc[c].std())
                        for c in cpu_fc.data_vars}
    amp = "bf16" if not args.device.startswith("cuda") or torch.cuda.is_bf16_supported() else "fp16 + GradScaler"
    return {
        "machine": harness.machine_info(args.device), "device": args.device, "steps": args.steps, "lead": args.lead,
        "loss_max_rel_diff": loss_diff, "loss_rtol": args.loss_rtol,
        "rollout_max_diff_over_std": rollout_diff, "rollout_tol": args.rollout_tol,
        "train_samples_per_s": {"cpu": cpu_rate, f"checked {args.device}": dev_rate,
                                f"checked {args.device}, amp auto": amp_rate},
        "amp_auto": amp if args.device.startswith("cuda") else "off (CPU)",
        "rollout_member_steps_per_s": {"cpu": cpu_msps, f"checked {args.device}": dev_msps},
        "passed": loss_diff <= args.loss_rtol and max(rollout_diff.values()) <= args.rollout_tol,
    }


def report(result: dict) -> str:
    rates = ", ".join(f"{k} {v:.1f}" for k, v in result["train_samples_per_s"].items())
    rolls = ", ".join(f"{k} {v:.1f}" for k, v in result["rollout_member_steps_per_s"].items())
    worst = max(result["rollout_max_diff_over_std"].items(), key=lambda kv: kv[1])
    return "\n".join([
        harness.machine_line(result["machine"]),
        f"training, {result['steps']} steps in float32: largest relative loss difference {result['device']} vs cpu "
        f"{result['loss_max_rel_diff']:.2e} (tolerance {result['loss_rtol']:g})",
        f"rollout, {result['lead']} steps x 4 members: largest difference / channel std {worst[1]:.2e} ({worst[0]}; "
        f"tolerance {result['rollout_tol']:g})",
        f"training samples/s: {rates} (amp auto = {result['amp_auto']})",
        f"rollout member-steps/s: {rolls}",
        "gpu-check: " + ("PASSED" if result["passed"] else "FAILED"),
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device visible (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda or 'none'}); nothing was run on a GPU. Run `make gpu-check` on a machine "
              "with an NVIDIA GPU.")
        return 0
    t0 = time.perf_counter()
    result = run_check(args)
    result["seconds"] = time.perf_counter() - t0
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    print(report(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
