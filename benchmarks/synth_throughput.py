"""Throughput of the synthetic archive generator (``forecast synth``): fused step vs the reference step.

    .venv/bin/python benchmarks/synth_throughput.py [--rounds 5] [--days 20] [--months 1] [--quick]

Both cases run in this one process, interleaved round by round (``harness.interleaved``), on one torch
thread as ``write_archive`` runs them:

* ``integration``: the model alone (``SynthSimulation(config, stepper).run()``: forcings, stirring, time
  steps, a spectral snapshot every 6 h) over ``--days`` simulated days of the default config; the
  simulation (static fields) is built once, outside the rounds.
* ``archive``: the whole ``write_archive`` of ``--months`` months (spin-up 0) into a temporary folder:
  integration on the main thread, synthesis on the 73 x 144 grid, 16-bit packing and zlib-compressed
  netCDF on the writer thread.

Baseline ``reference`` is ``stepper="reference"``: ``ShallowWaterModel.step`` calling torch-harmonics'
transforms one by one, the code before issue 14 (its forcings too). ``fused`` is the default
(``forecast/synth/fused.py``). Reported: simulated days per second (median, interquartile range) and the
per-round ratio fused / reference. Once, outside the rounds: the writer's share per month (CPU seconds
of synthesis, packing and netCDF writing), to see what bounds a long archive.

Results: ``benchmarks/results/synth_throughput.{json,txt}``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h
import numpy as np

NAME = "synth_throughput"
STEPPERS = ("reference", "fused")


def _config(quick: bool, months: int) -> Any:
    from forecast.synth.config import SynthConfig

    if quick:  # the tests' tiny model: T10 on 16 x 32, written on a 10 deg grid
        return SynthConfig.model_validate({
            "months": months, "spin_up_days": 0, "output": {"nlat": 19, "nlon": 36},
            "model": {"truncation": 10, "nlat": 16, "nlon": 32, "dt_minutes": 90},
        })
    return SynthConfig(months=months, spin_up_days=0)


def _integrate(sim: Any, days: float) -> None:
    n = int(round(days * 4))
    for i, _ in enumerate(sim.run()):
        if i + 1 >= n:
            break


def _archive(config: Any, stepper: str) -> None:
    from forecast.synth.archive import write_archive

    out = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        write_archive(config, out, progress=False, stepper=stepper)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _writer_share(config: Any) -> dict[str, float]:
    """CPU seconds per month of each step of the writer thread (one month, measured once)."""
    import torch

    from forecast.grids import Grid
    from forecast.synth import archive as arc
    from forecast.synth.simulate import SynthSimulation

    sim = SynthSimulation(config)
    t0 = time.process_time()
    snaps = list(sim.run())
    out: dict[str, float] = {"integration": time.process_time() - t0}
    spec = torch.stack([s.spec for s in snaps])
    times = np.array([s.time for s in snaps])
    grid = Grid("equiangular", config.output.nlat, config.output.nlon)
    t0 = time.process_time()
    fields = sim.to_era5(spec)
    out["to_era5"] = time.process_time() - t0
    t0 = time.process_time()
    fields = {k: arc.grib_pack(v, config.output.packing_bits or 16) for k, v in fields.items()}
    out["grib_pack"] = time.process_time() - t0
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        t0 = time.process_time()
        pl = {k: fields[k] for k in ("z", "u", "v", "vo")}
        ds = arc.cds_dataset(pl, times, grid, config.output.pressure_level, {})
        arc._write_atomic(ds, tmp / "pl.nc", config.output.complevel)
        ds = arc.cds_dataset({"msl": fields["msl"]}, times, grid, None, {})
        arc._write_atomic(ds, tmp / "sl.nc", config.output.complevel)
        out["netcdf"] = time.process_time() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    days = len(snaps) / 4
    return {k: v * 30.44 / days for k, v in out.items()}  # per average month


def main() -> None:
    p = h.common_parser(__doc__, rounds=5)
    p.add_argument("--days", type=float, default=20.0, help="simulated days of the integration case")
    p.add_argument("--months", type=int, default=1, help="months of the archive case")
    p.set_defaults(threads=1)  # the generator's own setting (write_archive runs on one thread)
    args = p.parse_args()
    h.setup_torch(args)
    if args.quick:
        args.days, args.rounds = min(args.days, 5.0), min(args.rounds, 3)
    say = h.Report()
    info = h.machine_info()
    say(f"# forecast synth throughput: fused vs reference step\n\n{h.machine_line(info)}\n")
    config = _config(args.quick, args.months)
    mc = config.model
    say(f"model T{mc.truncation} on {mc.nlat} x {mc.nlon}, dt {mc.dt_minutes:g} min; output "
        f"{config.output.nlat} x {config.output.nlon}; {args.rounds} rounds, interleaved\n")

    from forecast.synth.simulate import SynthSimulation

    archive_days = len(SynthSimulation(config).valid_times()) / 4
    sims = {st: SynthSimulation(config, stepper=st) for st in STEPPERS}  # built once: static fields
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "baseline": "reference", "cases": {}}
    rows = []
    for case, run, days in (
        ("integration", lambda st: _integrate(sims[st], args.days), args.days),
        ("archive", lambda st: _archive(config, st), archive_days),
    ):
        times = h.interleaved({st: (lambda st=st, run=run: run(st)) for st in STEPPERS}, args.rounds, args.warmup)
        speed = {st: h.stats([days / t for t in times[st]]) for st in STEPPERS}
        ratio = h.paired_ratio(times["reference"], times["fused"])
        payload["cases"][case] = {"days": days, "seconds": times, "days_per_second": speed,
                                  "speedup_fused_over_reference": ratio}
        rows.append([case, f"{days:g}", h.fmt_stat(speed["reference"], digits=1), h.fmt_stat(speed["fused"], digits=1),
                     h.fmt_stat(ratio, digits=2)])
    say(h.table(["case", "simulated days", "reference days/s", "fused days/s", "speed-up (paired)"], rows))
    say("\nmedian [interquartile range]; speed-up = reference time / fused time, per round")

    share = _writer_share(config)
    payload["cpu_seconds_per_month"] = share
    say("\nCPU seconds per month (fused): " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()))
    say("integration runs on the main thread, the rest on the writer thread: a long archive takes about "
        "max(integration, to_era5 + grib_pack + netcdf) per month on two free cores")
    h.finish(NAME, args.out_dir, payload, say)


if __name__ == "__main__":
    main()
