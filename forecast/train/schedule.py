"""Optimiser parameter groups, learning-rate schedule and exponential moving average of weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["EMA", "parameter_groups", "warmup_cosine"]


# Parameters that set offsets and scales rather than mix features: decaying them towards zero only biases
# the model (a LayerNorm gain pulled to 0, a position embedding pulled to 0), as in ViT/FourCastNet practice.
_NO_DECAY_NAMES = ("pos_embed", "position", "bias", "norm")


def parameter_groups(module: nn.Module, weight_decay: float, decay: str = "all") -> list[dict]:
    """AdamW parameter groups: ``decay="all"`` decays every parameter; ``"weights"`` only the weight
    matrices and spectral filters (tensors of 2 or more dimensions whose name does not mark a bias, a
    norm or a position embedding), the rest with ``weight_decay = 0``."""
    if decay == "all":
        return [{"params": [p for p in module.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decayed, kept = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or any(key in name.lower() for key in _NO_DECAY_NAMES)
        (kept if exempt else decayed).append(p)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}]


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the base lr over ``warmup_steps``, then cosine decay to ``min_ratio * lr``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied as they are)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), model.parameters(), strict=True):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            s.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow.load_state_dict(state)
