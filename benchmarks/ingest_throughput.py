"""Ingestion throughput (MB/s of source read) and peak memory, against a plain-read baseline.

    .venv/bin/python benchmarks/ingest_throughput.py [--era5 ../shared/era5] [--years 1 4]

For each input set it runs, each in a fresh subprocess so peak RSS belongs to that run alone:

* baseline: a plain file-by-file read of the same netCDF files with xarray (decode only, nothing
  written) - the floor any ingestion of these files pays;
* ingest: ``forecast ingest`` of the same files to a temporary store (force rebuild).

and prints MB/s, wall time, peak RSS and the ingest/baseline ratios. The embedded archives are
generated once with ``forecast synth --years N`` under ``data/bench/`` and reused.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_baseline(paths: list[str]) -> dict:
    import xarray as xr

    t0 = time.perf_counter()
    nbytes = 0
    for p in paths:
        with xr.open_dataset(p, engine="netcdf4", cache=False) as ds:
            for da in ds.data_vars.values():
                da.values  # noqa: B018 - the read is what is measured
        nbytes += Path(p).stat().st_size
    return {"seconds": time.perf_counter() - t0, "bytes": nbytes, "peak_rss_mb": _peak_rss_mb()}


def worker_ingest(config: str, overrides: list[str], scheduler: str) -> dict:
    from forecast.config import load_config
    from forecast.ingest.config import IngestConfig
    from forecast.ingest.pipeline import run_ingest

    cfg = load_config(IngestConfig, config, overrides + [f"scheduler={scheduler}"])
    t0 = time.perf_counter()
    res = run_ingest(cfg, force=True, progress=False)
    return {"seconds": time.perf_counter() - t0, "bytes": res.bytes_read, "peak_rss_mb": _peak_rss_mb(),
            "n_times": res.n_times}


def run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], check=True, capture_output=True,
                         text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(label: str, files: list[str], config: str, overrides: list[str], scheduler: str) -> dict:
    base = run_worker("baseline", json.dumps(files))
    ing = run_worker("ingest", config, json.dumps(overrides), scheduler)
    mb = ing["bytes"] / 1e6
    row = {
        "input": label,
        "source_MB": round(mb, 1),
        "times": ing["n_times"],
        "baseline_s": round(base["seconds"], 2),
        "baseline_MB_s": round(base["bytes"] / 1e6 / base["seconds"], 1),
        "ingest_s": round(ing["seconds"], 2),
        "ingest_MB_s": round(mb / ing["seconds"], 1),
        "ingest_vs_baseline_time": round(ing["seconds"] / base["seconds"], 2),
        "ingest_peak_rss_MB": round(ing["peak_rss_mb"]),
        "baseline_peak_rss_MB": round(base["peak_rss_mb"]),
    }
    print(json.dumps(row), flush=True)
    return row


def synth_archive(years: int) -> Path:
    out = REPO / "data" / "bench" / f"era5-synth-{years}y"
    if not (out / "MANIFEST.json").exists():
        t0 = time.perf_counter()
        subprocess.run([str(REPO / ".venv/bin/forecast"), "synth", "--years", str(years), "--out", str(out),
                        "--no-progress"], check=True, cwd=REPO)
        print(f"# generated {years}-year archive in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--era5", type=Path, default=REPO.parent / "shared" / "era5")
    p.add_argument("--years", type=int, nargs="*", default=[1, 4], help="embedded-archive lengths to measure")
    p.add_argument("--scheduler", default="threads", choices=["threads", "synchronous", "distributed"])
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "baseline":
            print(json.dumps(worker_baseline(json.loads(rest[0]))))
        else:
            print(json.dumps(worker_ingest(rest[0], json.loads(rest[1]), rest[2])))
        return

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if (args.era5 / "era5_msl_2.5deg_6h_20251201-20260207.nc").exists():
        files = sorted(str(f) for f in args.era5.glob("era5_*_2.5deg_6h_*.nc"))
        const = args.era5 / "samples" / "constants_5.625deg.nc"
        rows.append(measure("real ERA5 msl+vo850 2.5deg, 276 steps", files, "configs/ingest/era5.yaml", [
            f"sources.0.paths={json.dumps(files)}", f"static.0.source.paths=[{const}]",
            f"static.1.source.paths=[{const}]", f"output.path={tmp}/era5.zarr"], args.scheduler))
    else:
        print(f"# no real ERA5 at {args.era5}; skipping that set")
    for years in args.years:
        root = synth_archive(years)
        files = sorted(str(f) for f in root.glob("*_levels/*.nc"))
        inv = f"[{root}/invariant/*.nc]"
        rows.append(measure(f"embedded archive, {years} year(s)", files, "configs/ingest/synthetic.yaml", [
            f"sources.0.paths=[{root}/pressure_levels/*.nc, {root}/single_levels/*.nc]",
            f"static.0.source.paths={inv}", f"static.1.source.paths={inv}", "stats.start=null", "stats.end=null",
            f"output.path={tmp}/synth-{years}y.zarr"], args.scheduler))
    print("\n| input | source MB | steps | baseline read MB/s | ingest s | ingest MB/s | ingest/baseline time "
          "| ingest peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['source_MB']} | {r['times']} | {r['baseline_MB_s']} | {r['ingest_s']} | "
              f"{r['ingest_MB_s']} | {r['ingest_vs_baseline_time']} | {r['ingest_peak_rss_MB']} |")
    synth = [r for r in rows if r["input"].startswith("embedded")]
    if len(synth) >= 2:
        a, b = synth[0], synth[-1]
        print(f"\npeak RSS {b['input']} / {a['input']}: {b['ingest_peak_rss_MB'] / a['ingest_peak_rss_MB']:.2f} "
              f"for {b['times'] / a['times']:.1f}x the time steps")


if __name__ == "__main__":
    main()
