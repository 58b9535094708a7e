"""How the SFNO training step and the ensemble rollout grow with grid size and member count.

    .venv/bin/python benchmarks/scaling.py [--rounds 5] [--grids 32x64 64x128 128x256] [--members 1 4 16]
        [--steps 3] [--model configs/models/sfno_small.yaml] [--quick]

One network config (``--model``; the same learned weights fit every grid) built for each grid:

* ``train``: one training step per sample (batch ``--batch``: forward, MSE against a random target,
  ``loss.backward()``), per grid;
* ``rollout``: a ``--steps``-step rollout of an ``M``-member ensemble through
  ``forecast.rollout.generator.rollout`` on a :class:`Forecaster` (forcings, static inputs, residual
  update), per grid and member count, reported per step.

All cases run interleaved in every round. Printed: tables of medians [IQR] and log-log slopes (time ~
points ** slope for each member count; time ~ members ** slope for each grid). A slope near 1 in grid
points is linear work; the transforms' Legendre sums are ~ nlat ** 2 * lmax per order, so a fixed lmax
keeps them near linear too. Results: ``benchmarks/results/scaling.*``.
"""

from __future__ import annotations

from typing import Any

from harness import (
    REPO,
    Report,
    common_parser,
    finish,
    fmt_stat,
    interleaved,
    loglog_slope,
    machine_info,
    machine_line,
    setup_torch,
    stats,
    synchronizer,
    table,
)

NAME = "scaling"
CHANNELS = 2  # prognostic channels (z500, msl, say); no static fields
INIT = "2000-01-10T00:00"


def grid_size(text: str) -> tuple[int, int]:
    nlat, nlon = text.lower().split("x")
    return int(nlat), int(nlon)


def forecaster_for(torch, config, nlat: int, nlon: int, device: str):
    """A :class:`Forecaster` around a randomly initialised network on the ``nlat x nlon`` Gaussian grid."""
    import numpy as np

    from forecast.data.features import FORCING_NAMES, POSITION_NAMES, static_inputs
    from forecast.grids import Grid
    from forecast.models import build_model
    from forecast.models.forecaster import Forecaster

    grid = Grid("legendre-gauss", nlat, nlon)
    lat, lon = grid.latitudes, grid.longitudes
    net = build_model(config, "legendre-gauss", nlat, nlon, CHANNELS + len(POSITION_NAMES) + len(FORCING_NAMES),
                      CHANNELS)
    static = torch.from_numpy(static_inputs(np.zeros((0, nlat, nlon)), lat, lon))
    f = Forecaster(net, static, torch.ones(CHANNELS)).to(device).eval()
    return f, lat, lon


def main() -> None:
    p = common_parser(__doc__, rounds=5)
    p.add_argument("--grids", nargs="+", default=["32x64", "64x128", "128x256"])
    p.add_argument("--members", nargs="+", type=int, default=[1, 4, 16])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=2, help="samples per training step (times are per sample)")
    p.add_argument("--model", default="configs/models/sfno_small.yaml")
    args = p.parse_args()
    if args.quick:
        args.grids, args.members, args.steps = ["16x32", "32x64"], [1, 2], 1
    torch = setup_torch(args)
    import numpy as np

    from forecast.models import load_model_config
    from forecast.rollout.generator import rollout

    say = Report()
    info = machine_info(args.device)
    say(f"# {NAME}: SFNO training step and ensemble rollout vs grid and members, {args.rounds} interleaved rounds "
        f"after {args.warmup} warm-up")
    say(machine_line(info))
    overrides = ["embed_dim=8", "num_layers=2", "lmax=6", "mmax=6"] if args.quick else None
    config = load_model_config(REPO / args.model, overrides)
    say(f"model: {args.model} (embed {config.embed_dim}, {config.num_layers} layers, lmax {config.lmax}, "
        f"scale factor {config.scale_factor}), random weights, Gaussian grids {', '.join(args.grids)}")
    gen = torch.Generator().manual_seed(0)
    cases: dict[str, Any] = {}
    for g in args.grids:
        nlat, nlon = grid_size(g)
        f, lat, lon = forecaster_for(torch, config, nlat, nlon, args.device)
        net = f.network
        x = torch.randn(args.batch, net.in_channels, nlat, nlon, generator=gen).to(args.device)
        y = torch.randn(args.batch, CHANNELS, nlat, nlon, generator=gen).to(args.device)

        def train(net=net, x=x, y=y):
            net.train()
            net.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(net(x), y).backward()
            net.eval()

        cases[f"train {g}"] = train
        for m in args.members:
            state = torch.randn(m, CHANNELS, nlat, nlon, generator=gen).to(args.device)
            t0 = np.repeat(np.array([INIT], dtype="datetime64[ns]"), m)

            def run(f=f, state=state, t0=t0, lat=lat, lon=lon):
                for _ in rollout(f, state, t0, args.steps, "6h", lat, lon):
                    pass

            cases[f"rollout {g} M={m}"] = run
    times = interleaved(cases, args.rounds, args.warmup, synchronizer(args.device))
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "train": {}, "rollout": {}, "slopes": {}}
    points = {g: grid_size(g)[0] * grid_size(g)[1] for g in args.grids}
    for g in args.grids:
        payload["train"][g] = {"points": points[g], **stats([t / args.batch for t in times[f"train {g}"]])}
        for m in args.members:
            per_step = [t / args.steps for t in times[f"rollout {g} M={m}"]]
            payload["rollout"][f"{g} M={m}"] = {"grid": g, "members": m, "points": points[g],
                                                "s_per_step": stats(per_step),
                                                "member_steps_per_s": stats([m / t for t in per_step])}
    slopes = payload["slopes"]
    if len(args.grids) > 1:
        pts = [points[g] for g in args.grids]
        slopes["train_vs_points"] = loglog_slope(pts, [payload["train"][g]["median"] for g in args.grids])
        for m in args.members:
            slopes[f"rollout_vs_points M={m}"] = loglog_slope(
                pts, [payload["rollout"][f"{g} M={m}"]["s_per_step"]["median"] for g in args.grids])
    if len(args.members) > 1:
        for g in args.grids:
            slopes[f"rollout_vs_members {g}"] = loglog_slope(
                args.members, [payload["rollout"][f"{g} M={m}"]["s_per_step"]["median"] for m in args.members])

    ms = 1e3
    say("\n## training step, ms per sample, median [IQR]")
    say(table(["grid", "points", "train ms/sample"],
              [[g, points[g], fmt_stat(payload["train"][g], ms)] for g in args.grids]))
    say("\n## ensemble rollout (generator), ms per step, median [IQR]; member-steps/s in brackets")
    say(table(["grid"] + [f"M={m}" for m in args.members],
              [[g] + [f"{fmt_stat(payload['rollout'][f'{g} M={m}']['s_per_step'], ms)} "
                      f"({payload['rollout'][f'{g} M={m}']['member_steps_per_s']['median']:.1f})"
                      for m in args.members] for g in args.grids]))
    say("\n## log-log slopes (time ~ x ** slope)")
    say(table(["what", "slope"], [[k, f"{v:.2f}"] for k, v in slopes.items()]))
    finish(NAME, args.out_dir, payload, say)


if __name__ == "__main__":
    main()
