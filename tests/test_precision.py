"""Mixed precision: which dtype each device trains in, and float16 loss scaling (on CPU, where autocast
to float16 runs too)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from forecast.train.precision import amp_dtype, grad_scaler, optimiser_step


@pytest.mark.parametrize(("device", "amp", "bf16", "expected"), [
    ("cuda", "auto", True, torch.bfloat16),   # Ampere and later
    ("cuda", "auto", False, torch.float16),   # V100, T4: float16, with a scaler
    ("cpu", "auto", False, None),             # CPUs train in full precision unless asked
    ("cuda", "off", True, None),
    ("cpu", "fp16", False, torch.float16),
    ("cuda", "bf16", False, torch.bfloat16),
])
def test_amp_policy(device, amp, bf16, expected):
    assert amp_dtype(device, amp, bf16_supported=bf16) == expected


def test_scaler_only_for_float16():
    cpu = torch.device("cpu")
    assert grad_scaler(cpu, torch.float16).is_enabled()
    assert not grad_scaler(cpu, torch.bfloat16).is_enabled() and not grad_scaler(cpu, None).is_enabled()


def _model_and_loss(scale_loss: float = 1.0):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.randn(32, 8), torch.randn(32, 3)
    return model, lambda m: scale_loss * ((m(x) - y) ** 2).mean()


def test_scaled_step_equals_the_plain_step_and_an_overflow_is_skipped():
    model, loss_of = _model_and_loss()
    plain = copy.deepcopy(model)
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    opt_plain.zero_grad()
    loss_of(plain).backward()
    torch.nn.utils.clip_grad_norm_(plain.parameters(), 0.5)
    opt_plain.step()

    # A power-of-two scale is exact: scaled, unscaled, clipped and applied, the step is the plain one.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    _, taken = optimiser_step(loss_of(model), opt, scaler, model.parameters(), 0.5)
    assert taken
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    # A scale that overflows the gradients: the step is skipped (weights unchanged), the scale halves, and
    # the next step with the smaller scale goes through.
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1000)
    _, taken = optimiser_step(loss_of(model) * 1e10, opt, scaler, model.parameters(), None)
    assert not taken and scaler.get_scale() == 2.0**126
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))
    scaler.update(2.0**8)
    _, taken = optimiser_step(loss_of(model), opt, scaler, model.parameters(), None)
    assert taken and not all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))


def test_float16_training_on_cpu_keeps_its_loss_scale_in_the_checkpoint(tmp_path):
    from forecast.testing import tiny_store
    from forecast.train.checkpoint import load_checkpoint
    from forecast.train.config import TrainConfig
    from forecast.train.loop import train

    store = tiny_store(tmp_path, months=2, nlat=8, nlon=16)
    tree = {"name": "fp16", "output_dir": str(tmp_path / "run"), "device": "cpu", "epochs": 1, "steps_per_epoch": 3,
            "data": {"store": str(store), "train": {"start": "2000-01-01", "end": "2000-01-31T18:00"},
                     "valid": {"start": "2000-02-01", "end": "2000-02-29T18:00"}, "batch_size": 4, "workers": 0},
            "model": {"type": "sfno", "embed_dim": 8, "num_layers": 1, "lmax": 4, "mmax": 4},
            "optim": {"lr": 3e-3, "warmup_steps": 1, "amp": "fp16"}, "validation": {"lead_steps": [1], "max_cases": 2}}
    train(TrainConfig.model_validate(tree), progress=False)
    ck = load_checkpoint(Path(tmp_path / "run" / "last.pt"))
    assert ck["scaler"]["scale"] == 2.0**16 and ck["scaler"]["_growth_tracker"] == 3  # three good fp16 steps
