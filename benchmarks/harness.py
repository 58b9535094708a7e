"""Shared pieces of the side-by-side benchmarks: machine record, A/B-interleaved timing, statistics, output.

Every benchmark built on this module follows the same rules:

* warm-up calls are made and excluded before any timed round;
* the cases of one comparison are timed in the same process, interleaved: each round runs every case
  once, in an order that alternates (A B, then B A, ...), so a load change on a shared machine hits all
  cases alike;
* medians and spread (interquartile range and min..max) are reported, and for a pair the per-round
  ratio ``A / B`` (paired), which is what matters on a noisy machine: absolute times are not;
* torch's thread count is fixed and printed, the machine (CPU model, cores, torch version, device) is
  recorded, and results are printed as text and written to ``benchmarks/results/<name>.json`` + ``.txt``.

Scripts import it as ``harness`` (``python benchmarks/<script>.py`` puts ``benchmarks/`` on the path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def common_parser(description: str, rounds: int = 7) -> argparse.ArgumentParser:
    """Arguments every benchmark takes: ``--rounds --warmup --device --threads --quick --out-dir``."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=rounds, help="timed rounds per case (interleaved)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls of each case before the rounds")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: the cores this process may use)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    p.add_argument("--out-dir", default=str(RESULTS), help="where <name>.json and <name>.txt are written")
    return p


def setup_torch(args: argparse.Namespace) -> Any:
    """Fix torch's thread count (``--threads`` or the usable cores) and check ``--device``; returns torch."""
    import torch

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device here")
    return torch


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, load, library versions, torch threads, device."""
    import torch

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": device,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import torch_harmonics

        info["torch_harmonics"] = torch_harmonics.__version__
    except ImportError:  # pragma: no cover - a dependency of the package
        pass
    if device.startswith("cuda"):
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def machine_line(info: dict[str, Any]) -> str:
    load = ", ".join(f"{v:.1f}" for v in info["load_average"])
    dev = info["device"] + (f" ({info['device_name']})" if "device_name" in info else "")
    return (f"machine: {info['cpu_model']}, {info['usable_cores']}/{info['cores']} cores, torch {info['torch']}, "
            f"{info['torch_threads']} torch threads, OMP_WAIT_POLICY {info['OMP_WAIT_POLICY'] or 'unset'}, "
            f"device {dev}, load average {load}")


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def interleaved(cases: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1,
                sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each case per round, the cases interleaved and their order alternating each round."""
    sync = sync or (lambda: None)
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sync()
            t0 = time.perf_counter()
            cases[name]()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min, max and count of ``values``."""
    v = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Statistics of the per-round ratios ``a[i] / b[i]`` (same round, same load)."""
    return stats(np.asarray(a, dtype=float) / np.asarray(b, dtype=float))


def fmt_stat(s: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    """``median [q1..q3]`` of a :func:`stats` dict, times ``scale``."""
    return f"{s['median'] * scale:.{digits}f} [{s['q1'] * scale:.{digits}f}..{s['q3'] * scale:.{digits}f}]"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (``y ~ x ** slope``)."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def write_results(name: str, out_dir: str | Path, payload: dict[str, Any], text: str) -> Path:
    """Write ``<out_dir>/<name>.json`` (payload) and ``<name>.txt`` (the printed text); returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    (out / f"{name}.txt").write_text(text.rstrip() + "\n")
    return path


def finish(name: str, out_dir: str | Path, payload: dict[str, Any], say: Report) -> Path:
    """Record and print the load average at the end, then :func:`write_results` the payload and the text."""
    load = list(os.getloadavg())
    payload["load_average_end"] = load
    say(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in load)}")
    return write_results(name, out_dir, payload, say.text)


class Report:
    """Collects printed lines (echoed as they come) for the ``.txt`` twin of the JSON."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
