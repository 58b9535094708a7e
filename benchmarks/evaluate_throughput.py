"""Time and peak memory of `forecast evaluate` on a 16-member, 20-lead product over the validation period,
against the `scores` package computing the same scores on the same data in the same run.

    .venv/bin/python benchmarks/evaluate_throughput.py [--store data/stores/era5-synth.zarr] [--init-every 24h]

The product is built once (if absent) under ``--work`` at the store's grid: initial times every
``--init-every`` over the store's validation period (after its statistics period), 20 leads of one
step, 16 members that are the truth plus Gaussian noise growing with lead (:func:`forecast.testing.
noisy_product`, written with the real product writer). Then, each in a fresh subprocess so that its
peak RSS is its own, on the same dask chunks and the same number of threads:

* ``evaluate``: the evaluation stage, fair CRPS and ensemble-mean RMSE (global, every lead);
* ``scores``: ``scores.probability.crps_for_ensemble(method="fair")`` and ``scores.continuous.rmse`` of the
  ensemble mean with the same area weights, over the same lazily aligned forecast and truth;
* ``evaluate-all``: the evaluation stage as `make evaluate` runs it: every metric (bias, MAE, ACC, spread,
  spread/skill, rank histogram, spectra), 6 regions, persistence and climatology baselines.

It prints one JSON line per run, the largest difference between the two packages' scores, and a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEMBERS, LEADS = 16, 20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_product(store: str, out: Path, every: str) -> dict:
    import numpy as np
    import xarray as xr

    from forecast.schema import parse_duration
    from forecast.testing import noisy_product

    truth = xr.open_zarr(store)
    times = truth["time"].values
    start = np.datetime64(truth.attrs["stats_end"]) + parse_duration(truth.attrs.get("time_step", "6h"))
    last = times[-1] - LEADS * parse_duration(truth.attrs.get("time_step", "6h"))
    inits = np.arange(start, last + np.timedelta64(1, "s"), parse_duration(every)).astype("datetime64[ns]")
    if not (out / "zarr.json").exists():
        t0 = time.perf_counter()
        noisy_product(Path(store), out, inits, LEADS, members=MEMBERS, noise=0.05, seed=0, name="noisy-ensemble")
        print(f"# wrote the {inits.size}-init product in {time.perf_counter() - t0:.1f} s", flush=True)
    nbytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"inits": int(inits.size), "first": str(inits[0]), "last": str(inits[-1]), "MB_on_disk": nbytes / 1e6}


def worker(kind: str, product: str, store: str, chunk_mb: float, workers: int) -> dict:
    import dask

    from forecast.evaluate.align import align, open_forecast, open_truth
    from forecast.evaluate.config import EvaluateConfig
    from forecast.evaluate.metrics import lat_weights
    from forecast.evaluate.regions import region_masks
    from forecast.evaluate.score import evaluate, run_evaluate

    t0 = time.perf_counter()
    if kind == "evaluate-all":
        cfg = EvaluateConfig.model_validate({"chunk_mb": chunk_mb, "workers": workers})
        run_evaluate(cfg, product, store, Path(product).parent / "scores-all", progress=False)
        out = {}
    else:
        fc = open_forecast(product, chunk_mb)
        tr = open_truth(store)
        aligned = align(fc, tr, persistence=False)
        if kind == "evaluate":
            masks = region_masks(["global"], tr.latitude.values, tr.longitude.values)
            s = evaluate(aligned, masks, None, "ens", ["crps", "rmse"], [], workers=workers)
            crps = s["ens"].sel(metric="crps", region="global")
            rmse = s["ens"].sel(metric="rmse", region="global")
        else:
            import scores

            w = lat_weights(tr.latitude)
            f = aligned.forecast.to_dataarray("variable")
            o = aligned.truth.to_dataarray("variable")
            keep = ["variable", "lead_time"]
            c = scores.probability.crps_for_ensemble(f, o, "member", method="fair", preserve_dims=keep, weights=w)
            r = scores.continuous.rmse(f.mean("member"), o, preserve_dims=keep, weights=w)
            with dask.config.set(scheduler="threads", num_workers=workers):
                crps, rmse = dask.compute(c, r)
        out = {"crps": crps.transpose("variable", "lead_time").values.tolist(),
               "rmse": rmse.transpose("variable", "lead_time").values.tolist()}
    return {"kind": kind, "seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(), **out}


def run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True,
                         cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default=str(REPO / "data" / "stores" / "era5-synth.zarr"),
                   help="truth store (make ingest); the validation period follows its statistics period")
    p.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "evaluate",
                   help="folder for the product (kept and reused)")
    p.add_argument("--init-every", default="24h", help="spacing of the initial times")
    p.add_argument("--chunk-mb", type=float, default=16.0, help="dask chunk size per variable (both packages)")
    p.add_argument("--workers", type=int, default=2, help="dask threads (both packages)")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, product, store, chunk_mb, workers = args.worker
        print(json.dumps(worker(kind, product, store, float(chunk_mb), int(workers))))
        return
    if not (Path(args.store) / "zarr.json").exists():
        sys.exit(f"no store at {args.store}: run `make ingest` (or pass --store)")
    product = args.work / f"ensemble-{MEMBERS}m-{LEADS}l-every{args.init_every}.zarr"
    info = build_product(args.store, product, args.init_every)
    print(json.dumps({"product": str(product), **info}), flush=True)
    common = (str(product), args.store, str(args.chunk_mb), str(args.workers))
    rows = {}
    for kind in ("evaluate", "scores", "evaluate-all"):
        r = run_worker(kind, *common)
        rows[kind] = r
        print(json.dumps({k: v for k, v in r.items() if k not in ("crps", "rmse")}), flush=True)
    import numpy as np

    for m in ("crps", "rmse"):
        a, b = np.array(rows["evaluate"][m]), np.array(rows["scores"][m])
        print(f"# {m}: largest relative difference evaluate vs scores {np.max(np.abs(a - b) / np.abs(b)):.2e}")
    e, s, full = rows["evaluate"], rows["scores"], rows["evaluate-all"]
    print(f"\nproduct: {info['inits']} initial times ({info['first'][:16]} .. {info['last'][:16]}) x {LEADS} leads "
          f"x {MEMBERS} members, {info['MB_on_disk']:.0f} MB on disk; {args.workers} threads, "
          f"{args.chunk_mb:g} MB chunks")
    print("| run | what | seconds | peak RSS MB |")
    print("|---|---|---|---|")
    print(f"| evaluate | fair CRPS + ensemble-mean RMSE, global | {e['seconds']:.1f} | {e['peak_rss_mb']:.0f} |")
    print(f"| scores {_scores_version()} | the same with crps_for_ensemble(fair) + rmse | {s['seconds']:.1f} | "
          f"{s['peak_rss_mb']:.0f} |")
    print(f"| evaluate-all | every metric, 6 regions, persistence + climatology | {full['seconds']:.1f} | "
          f"{full['peak_rss_mb']:.0f} |")
    print(f"\nratio scores / evaluate: time {s['seconds'] / e['seconds']:.2f}, "
          f"peak RSS {s['peak_rss_mb'] / e['peak_rss_mb']:.2f}")


def _scores_version() -> str:
    from importlib.metadata import version

    return version("scores")


if __name__ == "__main__":
    main()
