"""Ensemble throughput (member-steps/s, batched vs a per-member loop), peak memory, and a one-year rollout.

    .venv/bin/python benchmarks/ensemble_throughput.py [--package runs/sfno_synth/best.pt]
        [--store data/stores/era5-synth.zarr] [--members 16] [--days 5] [--year-steps 1460]

Each measurement runs in a fresh subprocess, so its peak RSS belongs to it alone:

* ``batch``: the members' rollout as one batch ``(M, C, H, W)`` through the rollout generator, and the same
  members one at a time in a Python loop, in the same process (alternated twice, best of each; the ratio is
  the batching gain); then the
  whole ``forecast predict`` path (perturbations, guards, stability report, streaming product write) for
  the same ensemble;
* ``year``: a single rollout of ``--year-steps`` 6-hour steps streamed to a product by ``forecast predict``,
  and a run of a tenth of its length, to show that peak memory does not grow with the lead count; if the
  runaway guard (50 std) stops the year, the year again stopping on NaN/Inf only, for its time and memory;
  then the year-long run's stability report (global mean / std drift and the end spectrum vs the data's).

Uses the trained embedded-data SFNO (``make train``) at its training resolution.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INIT = "2001-01-01T00:00"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _predict_config(package: str, store: str, out: str, lead: int | str, members: int | None, guard: bool = True):
    from forecast.rollout.config import PredictConfig

    tree = {"name": "bench", "packages": [package], "store": store, "init": {"times": [INIT]}, "lead": lead,
            "output": {"path": out}, "device": "cpu", "stability": {"spectrum_every": 120}}
    if not guard:
        tree["guard"] = {"max_abs_normalised": None}  # stop on NaN/Inf only
    if members:
        tree["ensemble"] = {"members": members, "seed": 1, "control": True,
                            "perturbation": {"type": "spherical_grf", "amplitude": 0.05, "length_scale_km": 800}}
    return PredictConfig.model_validate(tree)


def worker_batch(package: str, store: str, members: int, steps: int, out: str) -> dict:
    import numpy as np
    import torch

    from forecast.rollout.generator import rollout
    from forecast.rollout.initial import open_initial_conditions
    from forecast.rollout.predict import run_predict
    from forecast.train.package import load_package

    pkg = load_package(package)
    f = pkg.build_forecaster("cpu")
    ic = open_initial_conditions(store, pkg)
    base_rss = _peak_rss_mb()  # torch + xarray/zarr/dask + the model: what any run pays
    t0 = np.array([INIT], dtype="datetime64[ns]")
    x0 = pkg.normalise(torch.from_numpy(ic.read(t0)))
    noise = torch.randn(members, *x0.shape[1:], generator=torch.Generator().manual_seed(0))
    x = x0.repeat(members, 1, 1, 1) + 0.05 * noise  # (M, C, H, W)

    def run(batch: torch.Tensor) -> np.ndarray:
        """(wall seconds, CPU seconds of this process) of a rollout of ``batch``."""
        start = np.array([time.perf_counter(), time.process_time()])
        for _ in rollout(f, batch, np.repeat(t0, batch.shape[0]), steps, pkg.time_step, pkg.latitudes,
                         pkg.longitudes):
            pass
        return np.array([time.perf_counter(), time.process_time()]) - start

    run(x[:1])  # warm-up: first-call allocations and kernel selection for both batch shapes
    run(x)
    # Alternate the two, twice, and keep the faster of each: a shared machine's load then hits both alike.
    # CPU seconds are reported beside wall seconds: other processes' load inflates wall time much more.
    batched, loop = [], []
    for _ in range(2):
        batched.append(run(x))
        loop.append(sum(run(x[m : m + 1]) for m in range(members)))
    cpu0 = time.process_time()
    result = run_predict(_predict_config(package, store, out, steps, members))
    best_b, best_l = min(batched, key=lambda t: t[0]), min(loop, key=lambda t: t[0])
    return {"threads": torch.get_num_threads(), "batched_s": best_b[0], "loop_s": best_l[0],
            "batched_cpu_s": min(t[1] for t in batched), "loop_cpu_s": min(t[1] for t in loop),
            "batched_all_s": [t[0] for t in batched], "loop_all_s": [t[0] for t in loop],
            "predict_s": result.seconds, "predict_cpu_s": time.process_time() - cpu0,
            "member_steps": members * steps, "peak_rss_mb": _peak_rss_mb(), "base_rss_mb": base_rss,
            "load_average": os.getloadavg()}


def worker_year(package: str, store: str, steps: int, out: str, guard: bool = True) -> dict:
    import numpy as np

    from forecast.products import open_stability
    from forecast.rollout.guards import RolloutDiverged
    from forecast.rollout.predict import run_predict
    from forecast.rollout.stability import format_stability_report

    base_rss = _peak_rss_mb()
    start = time.perf_counter()
    try:
        result = run_predict(_predict_config(package, store, out, steps, None, guard))
        rollout_s, stopped = result.seconds, None
    except RolloutDiverged as exc:  # the guard stopped it: the partial product and its report are kept
        rollout_s, stopped = time.perf_counter() - start, str(exc)
    seconds = time.perf_counter() - start
    stab = open_stability(out).load()
    mean, std = stab["global_mean"].isel(init_time=0), stab["global_std"].isel(init_time=0)
    reached = int(np.isfinite(mean.values).all(-1).sum())  # leads written, lead 0 included
    mean, std = mean[:reached], std[:reached]
    end = {"seconds": seconds, "rollout_s": rollout_s, "steps": reached - 1, "steps_asked": steps,
           "peak_rss_mb": _peak_rss_mb(), "base_rss_mb": base_rss, "complete": stopped is None,
           "load_average": os.getloadavg(), "stopped": stopped,
           "report": format_stability_report(stab, n_leads=9)}
    spec = stab["power_spectrum"].isel(spectrum_lead_time=-1)
    ref = stab["data_power_spectrum"]
    lmax = stab.sizes["degree"]
    end["channels"] = {
        str(ch): {
            "mean_drift_in_data_std": float((mean[-1, c] - mean[0, c]) / stab["data_global_std"][c]),
            "end_mean_minus_data_in_data_std": float((mean[-1, c] - stab["data_global_mean"][c])
                                                     / stab["data_global_std"][c]),
            "std_end_over_data": float(std[-1, c] / stab["data_global_std"][c]),
            "std_min_max_over_data": [float(std[:, c].min() / stab["data_global_std"][c]),
                                      float(std[:, c].max() / stab["data_global_std"][c])],
            "end_power_over_data_low_l": float(spec[c, 1 : lmax // 8].sum() / ref[c, 1 : lmax // 8].sum()),
            "end_power_over_data_high_l": float(spec[c, lmax // 2 :].sum() / ref[c, lmax // 2 :].sum()),
        }
        for c, ch in enumerate(stab["channel"].values)
    }
    return end


def run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", default="runs/sfno_synth/best.pt")
    p.add_argument("--store", default="data/stores/era5-synth.zarr")
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--year-steps", type=int, default=1460)
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "batch":
            print(json.dumps(worker_batch(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4])))
        else:
            print(json.dumps(worker_year(rest[0], rest[1], int(rest[2]), rest[3], rest[4] == "guard")))
        return
    for path in (args.package, args.store):
        if not (REPO / path).exists():
            raise SystemExit(f"{path} not found: run `make train` first")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ensemble-"))
    steps = args.days * 4

    b = run_worker("batch", args.package, args.store, str(args.members), str(steps), str(tmp / "ens.zarr"))
    ms = b["member_steps"]
    print(f"# {args.members}-member {args.days}-day ensemble ({steps} steps) of {args.package}, "
          f"torch threads {b['threads']}")
    print("| run | wall s | member-steps/s | CPU s | member-steps per CPU s |")
    print("|---|---|---|---|---|")
    for label, key in (("batched rollout (one forward pass per step)", "batched"), ("per-member Python loop", "loop"),
                       ("forecast predict (batched + perturbations, guards, stability, product write)", "predict")):
        print(f"| {label} | {b[key + '_s']:.2f} | {ms / b[key + '_s']:.1f} | {b[key + '_cpu_s']:.2f} | "
              f"{ms / b[key + '_cpu_s']:.1f} |")
    print(f"\nload average during the run (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in b['load_average'])} "
          f"on {os.cpu_count()} cores")
    print(f"batched / loop: {b['loop_s'] / b['batched_s']:.2f}x in wall time, "
          f"{b['loop_cpu_s'] / b['batched_cpu_s']:.2f}x in CPU time (best of 2 alternated runs each; all: "
          f"batched {', '.join(f'{t:.2f}' for t in b['batched_all_s'])} s, loop "
          f"{', '.join(f'{t:.2f}' for t in b['loop_all_s'])} s)")
    print(f"peak RSS of that process {b['peak_rss_mb']:.0f} MB, of which {b['base_rss_mb']:.0f} MB before any rollout "
          "(torch, xarray/zarr/dask, the model)")

    short = run_worker("year", args.package, args.store, str(args.year_steps // 10), str(tmp / "short.zarr"), "guard")
    year = run_worker("year", args.package, args.store, str(args.year_steps), str(tmp / "year.zarr"), "guard")
    runs = [short, year]
    if year["stopped"]:  # time and memory of the whole year still matter: again, stopping on NaN/Inf only
        runs.append(run_worker("year", args.package, args.store, str(args.year_steps), str(tmp / "year-nan.zarr"),
                               "nan-only"))
    print(f"\n# single rollout streamed to a product ({args.package}, init {INIT})")
    print("| guard | steps asked | steps run | wall s (incl. model load) | rollout + write s | steps/s | peak RSS MB "
          "| RSS before the run MB | complete |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, guard in zip(runs, ["50 std", "50 std", "NaN/Inf only"], strict=False):
        print(f"| {guard} | {r['steps_asked']} | {r['steps']} | {r['seconds']:.1f} | {r['rollout_s']:.1f} | "
              f"{r['steps'] / r['rollout_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['base_rss_mb']:.0f} | "
              f"{r['complete']} |")
    print("load average at the end of each run (1, 5, 15 min): "
          + "; ".join(", ".join(f"{v:.1f}" for v in r.get("load_average", ())) for r in runs))
    print(f"\npeak RSS {year['steps']} steps / {short['steps']} steps: {year['peak_rss_mb'] / short['peak_rss_mb']:.2f}"
          f" for {year['steps'] / short['steps']:.1f}x the leads")
    if year["stopped"]:
        print(f"\nthe year-long rollout was stopped by the guard: {year['stopped']}")
        if len(runs) > 2:
            print(f"without the runaway guard: {runs[2]['stopped'] or 'all steps finite (complete)'}")
    year = runs[-1]  # the longest run: the whole year when only NaN/Inf stop it
    print(f"\n# stability of the {year['steps']}-step rollout"
          + (" (runaway guard off)" if len(runs) > 2 else "") + f"\n{year['report']}")
    print("\n| channel | mean drift (data std) | end mean - data (data std) | end std / data | std range / data "
          "| end power / data, l < lmax/8 | end power / data, l >= lmax/2 |")
    print("|---|---|---|---|---|---|---|")
    for ch, r in year["channels"].items():
        lo, hi = r["std_min_max_over_data"]
        print(f"| {ch} | {r['mean_drift_in_data_std']:+.3f} | {r['end_mean_minus_data_in_data_std']:+.3f} | "
              f"{r['std_end_over_data']:.3f} | {lo:.2f} .. {hi:.2f} | {r['end_power_over_data_low_l']:.3f} | "
              f"{r['end_power_over_data_high_l']:.3f} |")


if __name__ == "__main__":
    main()
