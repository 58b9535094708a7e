"""The project's SFNO and AFNO against the reference implementations, side by side, plus a roofline.

    .venv/bin/python benchmarks/models_vs_reference.py [--rounds 7] [--batch 2] [--device cpu|cuda] [--quick]

* SFNO: ours (``build_model`` from the ``model`` section of ``configs/train/sfno_era5.yaml``) vs
  torch-harmonics' ``examples.models.SphericalFourierNeuralOperator``, at the same grid, channels,
  embedding width, depth, scale factor, MLP ratio and spectral truncation, at 73 x 144 (the ERA5
  recipe), 64 x 128 (embedding 128) and 128 x 256.
* AFNO: ours (``configs/train/afno_era5.yaml``) vs NVIDIA PhysicsNeMo's ``physicsnemo.models.afno.AFNO``
  (the ``bench`` extra: ``pip install -e '.[bench]'``) at 73 x 144 and 145 x 288, same patch, width,
  depth and blocks. The reference needs a grid divisible by the patch, so it gets the padding ours does
  inside (latitude replicate, longitude circular) and the crop: equal work.
* Each step is timed per sample: a forward pass under ``torch.inference_mode`` and a training step
  (forward, MSE loss against a random target, ``loss.backward()``; no optimiser step), ours and the
  reference interleaved round by round in this one process; the ratio ours / reference is per round.
* Roofline: this machine's fp32 matmul peak (best of a large square ``torch.matmul``) and each forward
  pass's GFLOP/s (FLOPs from ``FlopCounterMode`` plus FFT and complex-matmul estimates, see ``flops.py``)
  as a fraction of it.

Results: ``benchmarks/results/models_vs_reference.{json,txt}``.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from flops import count_forward_flops, matmul_peak
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

NAME = "models_vs_reference"
# The ERA5 recipes' inputs: 2 prognostic channels (msl, vo850) + 2 static (land-sea mask, orography)
# + 4 position features + 3 forcings in, the 2 prognostic channels out.
IN_CHANNELS, OUT_CHANNELS = 11, 2

# name: grid and the settings that differ from the recipe. lmax is about 2/3 of what the internal grid
# carries (the recipe's 24 at 73 x 144 with scale factor 2), and the reference is cut to the same.
SFNO_CASES = {
    "73x144": {"nlat": 73, "nlon": 144},
    "64x128": {"nlat": 64, "nlon": 128, "embed_dim": 128, "lmax": 21, "mmax": 21},
    "128x256": {"nlat": 128, "nlon": 256, "lmax": 42, "mmax": 42},
}
SFNO_QUICK = {"33x64": {"nlat": 33, "nlon": 64, "embed_dim": 8, "num_layers": 2, "lmax": 10, "mmax": 10}}
AFNO_CASES = {"73x144": {"nlat": 73, "nlon": 144}, "145x288": {"nlat": 145, "nlon": 288}}
AFNO_QUICK = {"17x32": {"nlat": 17, "nlon": 32, "embed_dim": 16, "depth": 1, "num_blocks": 2}}

SFNO_DIFFERENCES = [
    "block: ours is pre-norm, x = skip(x) + spectral(norm1(x)); x = x + mlp(norm2(x)) (two channel LayerNorms); "
    "the reference is x = mlp(norm(spectral(x))) + skip(x) with one norm (here InstanceNorm2d: its 'layer_norm' "
    "normalises over the grid and has grid-sized parameters)",
    "skip across a grid change (first and last block): ours transforms the un-normalised input again (one more "
    "forward SHT in those blocks; filter and skip share one inverse SHT); the reference inverse-transforms the "
    "coefficients it already has",
    "transforms: ours does the longitude transform as a truncated real DFT matrix product, counted by the "
    "roofline as matmul FLOPs (more FLOPs than the reference's FFT for the same work)",
    "encoder/decoder: ours are 2-layer pointwise MLPs and the decoder also sees the input (big_skip concat); the "
    "reference's are single 1x1 convolutions",
    "spectral weights: the same Driscoll-Healy shape (C x C x lmax, complex); ours stores them as real pairs",
]
AFNO_DIFFERENCES = [
    "modes: with hard_thresholding_fraction 1 ours runs the spectral MLP on all h x (w//2+1) modes of the patch "
    "grid; the reference (FourCastNet's code) on h x (h//2+1), i.e. longitude modes limited by the latitude "
    "count, and writes them into zero-filled full-size buffers",
    "padding: ours pads inside forward; the reference needs a divisible grid, so the wrapper here pads the same "
    "way (latitude replicate split north/south, longitude circular) and crops",
    "head: ours has a final LayerNorm and a bias on the head; the reference has neither",
]


def recipe_model(name: str) -> dict[str, Any]:
    """The ``model`` section of ``configs/train/<name>.yaml``."""
    return yaml.safe_load((REPO / "configs" / "train" / f"{name}.yaml").read_text())["model"]


def real_parameter_count(model) -> int:
    """Trainable scalars, a complex parameter counting 2 (as ours stores them)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def build_sfno_pair(case: dict[str, Any], norm: str):
    """(ours, reference, facts) at the same grid, widths and truncation."""
    from torch_harmonics.examples.models import SphericalFourierNeuralOperator

    from forecast.models import SFNOConfig, build_model

    nlat, nlon = case["nlat"], case["nlon"]
    config = SFNOConfig.model_validate({**recipe_model("sfno_era5"), **{k: v for k, v in case.items()
                                                                       if k not in ("nlat", "nlon")}})
    ours = build_model(config, "equiangular", nlat, nlon, IN_CHANNELS, OUT_CHANNELS)
    sf = config.scale_factor
    # The reference's internal grid and the modes it keeps: min(h, w // 2) * hard_thresholding_fraction.
    h, w = (nlat - 1) // sf + 1, nlon // sf
    ref_max = min(h, w // 2 + 1 - 1)
    fraction = (config.lmax + 0.5) / ref_max  # int(ref_max * fraction) == lmax
    ref = SphericalFourierNeuralOperator(
        img_size=(nlat, nlon), grid="equiangular", grid_internal="legendre-gauss", scale_factor=sf,
        in_chans=IN_CHANNELS, out_chans=OUT_CHANNELS, embed_dim=config.embed_dim, num_layers=config.num_layers,
        activation_function=config.activation, use_mlp=True, mlp_ratio=config.mlp_ratio,
        normalization_layer=norm, hard_thresholding_fraction=fraction, residual_prediction=False,
    )
    ref_modes = (ref.trans.lmax, ref.trans.mmax)
    if ref_modes != (config.lmax, config.mmax):
        raise RuntimeError(f"reference truncation {ref_modes} != ours {(config.lmax, config.mmax)}")
    facts = {"grid": [nlat, nlon], "embed_dim": config.embed_dim, "num_layers": config.num_layers,
             "scale_factor": sf, "mlp_ratio": config.mlp_ratio, "ours_internal_grid": list(ours.internal_grid),
             "ref_internal_grid": ["legendre-gauss", h, w], "ours_lmax_mmax": [config.lmax, config.mmax],
             "ref_lmax_mmax": list(ref_modes), "ref_hard_thresholding_fraction": fraction,
             "ref_max_modes": ref_max, "ref_norm": norm,
             "ours_params": real_parameter_count(ours), "ref_params": real_parameter_count(ref)}
    return ours, ref, facts


def build_afno_pair(case: dict[str, Any]):
    """(ours, reference or None, facts); the reference is None (with the reason) when PhysicsNeMo is unusable."""
    import torch
    from torch import nn

    from forecast.models import AFNOConfig, build_model

    nlat, nlon = case["nlat"], case["nlon"]
    config = AFNOConfig.model_validate({**recipe_model("afno_era5"), **{k: v for k, v in case.items()
                                                                       if k not in ("nlat", "nlon")}})
    ours = build_model(config, "equiangular", nlat, nlon, IN_CHANNELS, OUT_CHANNELS)
    ph, pw = config.patch_size
    hp, wp = math.ceil(nlat / ph) * ph, math.ceil(nlon / pw) * pw
    facts = {"grid": [nlat, nlon], "padded_grid": [hp, wp], "patch_size": [ph, pw], "embed_dim": config.embed_dim,
             "depth": config.depth, "num_blocks": config.num_blocks, "mlp_ratio": config.mlp_ratio,
             "patch_grid": [hp // ph, wp // pw], "ours_params": real_parameter_count(ours)}
    try:
        import physicsnemo
        from physicsnemo.models.afno import AFNO as ReferenceAFNO
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, not hidden
        facts["ref_error"] = f"physicsnemo could not be imported: {type(exc).__name__}: {exc}"
        return ours, None, facts
    pad_n = (hp - nlat) // 2
    pad_s, pad_e = hp - nlat - pad_n, wp - nlon

    class Padded(nn.Module):
        """The reference on the padded grid, padded and cropped as ours does inside."""

        def __init__(self) -> None:
            super().__init__()
            self.net = ReferenceAFNO(
                inp_shape=[hp, wp], in_channels=IN_CHANNELS, out_channels=OUT_CHANNELS, patch_size=[ph, pw],
                embed_dim=config.embed_dim, depth=config.depth, mlp_ratio=config.mlp_ratio,
                num_blocks=config.num_blocks, sparsity_threshold=config.sparsity_threshold,
                hard_thresholding_fraction=config.hard_thresholding_fraction,
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if pad_e:
                x = nn.functional.pad(x, (0, pad_e, 0, 0), mode="circular")
            if pad_n or pad_s:
                x = nn.functional.pad(x, (0, 0, pad_n, pad_s), mode="replicate")
            return self.net(x)[:, :, pad_n : pad_n + nlat, :nlon]

    ref = Padded()
    facts["ref_params"] = real_parameter_count(ref)
    facts["physicsnemo"] = physicsnemo.__version__
    return ours, ref, facts


def time_pair(torch, ours, ref, batch: int, nlat: int, nlon: int, args) -> dict[str, Any]:
    """Interleaved forward and training-step times (per sample) of ours and the reference."""
    device = args.device
    ours.to(device).train()
    ref.to(device).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, IN_CHANNELS, nlat, nlon, generator=gen).to(device)
    y = torch.randn(batch, OUT_CHANNELS, nlat, nlon, generator=gen).to(device)

    def forward(model):
        def run():
            with torch.inference_mode():
                model(x)
        return run

    def train_step(model):
        def run():
            model.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(model(x), y).backward()
        return run

    cases = {"ours_forward": forward(ours), "ref_forward": forward(ref),
             "ours_train": train_step(ours), "ref_train": train_step(ref)}
    times = interleaved(cases, args.rounds, args.warmup, synchronizer(device))
    per_sample = {k: [t / batch for t in v] for k, v in times.items()}
    out: dict[str, Any] = {k: stats(v) for k, v in per_sample.items()}
    out["raw_s_per_sample"] = per_sample
    out["ratio_forward"] = paired_ratio(times["ours_forward"], times["ref_forward"])
    out["ratio_train"] = paired_ratio(times["ours_train"], times["ref_train"])
    out["flops_ours"] = count_forward_flops(ours, x)
    out["flops_ref"] = count_forward_flops(ref, x)
    return out


def main() -> None:
    p = common_parser(__doc__)
    p.add_argument("--batch", type=int, default=2, help="samples per call (times are reported per sample)")
    p.add_argument("--ref-norm", default="instance_norm", choices=["instance_norm", "layer_norm", "none"],
                   help="normalisation of the reference SFNO's blocks")
    p.add_argument("--peak-n", type=int, default=2048, help="matrix size of the matmul-peak measurement")
    p.add_argument("--skip-afno-ref", action="store_true", help="do not import PhysicsNeMo (time ours alone)")
    args = p.parse_args()
    torch = setup_torch(args)
    say = Report()
    info = machine_info(args.device)
    say(f"# {NAME}: ours vs reference, {args.rounds} interleaved rounds after {args.warmup} warm-up, "
        f"batch {args.batch}, times per sample")
    say(machine_line(info))
    peak = matmul_peak(256 if args.quick else args.peak_n, device=args.device)
    say(f"fp32 matmul peak: {peak['gflops']:.1f} GFLOP/s (best of {peak['repeats']} {peak['n']}^2 matmuls; "
        f"median {peak['median_gflops']:.1f})")
    payload: dict[str, Any] = {"machine": info, "args": vars(args), "matmul_peak": peak, "sfno": {}, "afno": {}}

    for name, case in (SFNO_QUICK if args.quick else SFNO_CASES).items():
        ours, ref, facts = build_sfno_pair(case, args.ref_norm)
        res = time_pair(torch, ours, ref, args.batch, case["nlat"], case["nlon"], args)
        payload["sfno"][name] = {"facts": facts, **res}
    for name, case in (AFNO_QUICK if args.quick else AFNO_CASES).items():
        ours, ref, facts = build_afno_pair(case) if not args.skip_afno_ref else (None, None, {})
        if args.skip_afno_ref:
            facts["ref_error"] = "skipped (--skip-afno-ref)"
        if ref is None:
            payload["afno"][name] = {"facts": facts, "skipped": facts["ref_error"]}
            continue
        res = time_pair(torch, ours, ref, args.batch, case["nlat"], case["nlon"], args)
        payload["afno"][name] = {"facts": facts, **res}

    ms = 1e3
    say("\n## SFNO step: ours vs torch-harmonics SphericalFourierNeuralOperator (ms per sample, median [IQR])")
    say(table(
        ["grid", "embed x depth", "lmax=mmax (both)", "internal grid", "params ours / ref", "fwd ours", "fwd ref",
         "fwd ours/ref", "train ours", "train ref", "train ours/ref"],
        [[n, f"{r['facts']['embed_dim']} x {r['facts']['num_layers']}", r["facts"]["ours_lmax_mmax"][0],
          "{}x{}".format(*r["facts"]["ref_internal_grid"][1:]),
          f"{r['facts']['ours_params']:,} / {r['facts']['ref_params']:,}",
          fmt_stat(r["ours_forward"], ms), fmt_stat(r["ref_forward"], ms), fmt_stat(r["ratio_forward"]),
          fmt_stat(r["ours_train"], ms), fmt_stat(r["ref_train"], ms), fmt_stat(r["ratio_train"])]
         for n, r in payload["sfno"].items()]))
    for n, r in payload["sfno"].items():
        f = r["facts"]
        say(f"  {n}: scale_factor {f['scale_factor']}, mlp_ratio {f['mlp_ratio']}; reference keeps "
            f"int({f['ref_max_modes']} * hard_thresholding_fraction {f['ref_hard_thresholding_fraction']:.4f}) = "
            f"{f['ref_lmax_mmax'][0]} modes; ours lmax={f['ours_lmax_mmax'][0]}, mmax={f['ours_lmax_mmax'][1]}")
    say("architectural differences (SFNO):")
    for d in SFNO_DIFFERENCES:
        say(f"  - {d}")

    say("\n## AFNO step: ours vs PhysicsNeMo AFNO (ms per sample, median [IQR])")
    rows = []
    for n, r in payload["afno"].items():
        f = r["facts"]
        if "skipped" in r:
            rows.append([n, "-", "-", "-", "-", "-", "-", "-", "-", f"reference skipped: {r['skipped']}"])
            continue
        rows.append([n, "{}x{}".format(*f["padded_grid"]), "{}x{}".format(*f["patch_size"]),
                     f"{f['embed_dim']} x {f['depth']} / {f['num_blocks']} blocks",
                     f"{f['ours_params']:,} / {f['ref_params']:,}", fmt_stat(r["ours_forward"], ms),
                     fmt_stat(r["ref_forward"], ms), fmt_stat(r["ratio_forward"]),
                     f"{fmt_stat(r['ours_train'], ms)} / {fmt_stat(r['ref_train'], ms)}", fmt_stat(r["ratio_train"])])
    say(table(["grid", "padded", "patch", "embed x depth", "params ours / ref", "fwd ours", "fwd ref",
               "fwd ours/ref", "train ours / ref", "train ours/ref"], rows))
    versions = {r["facts"].get("physicsnemo") for r in payload["afno"].values()} - {None}
    say(f"reference: nvidia-physicsnemo {', '.join(sorted(versions)) or 'not used'}")
    say("architectural differences (AFNO):")
    for d in AFNO_DIFFERENCES:
        say(f"  - {d}")

    say(f"\n## Roofline: forward GFLOP/s as a fraction of the {peak['gflops']:.1f} GFLOP/s fp32 matmul peak")
    say("FLOPs per forward (per sample): matmul/conv/einsum from FlopCounterMode (SHT Legendre sums included) "
        "+ FFT estimate (5N log2 N complex, 2.5N log2 N real) + complex-matmul correction (8 flops per "
        "complex MAC); elementwise ops, norms and activations are not counted")
    rows = []
    for model, group in (("SFNO", payload["sfno"]), ("AFNO", payload["afno"])):
        for n, r in group.items():
            if "skipped" in r:
                continue
            for who in ("ours", "ref"):
                fl = r[f"flops_{who}"]
                t = r[f"{who}_forward"]["median"]
                gflops = fl["total"] / args.batch / t / 1e9
                r[f"{who}_forward_gflops"] = gflops
                r[f"{who}_forward_peak_fraction"] = gflops / peak["gflops"]
                rows.append([f"{model} {n}", who, f"{fl['total'] / args.batch / 1e9:.3g}",
                             f"{fl['fft_estimate'] / fl['total']:.1%}", f"{t * ms:.2f}", f"{gflops:.3g}",
                             f"{gflops / peak['gflops']:.1%}"])
    say(table(["model", "impl", "GFLOP/sample", "of which FFT", "fwd ms/sample", "GFLOP/s", "of peak"], rows))
    finish(NAME, args.out_dir, payload, say)


if __name__ == "__main__":
    main()
