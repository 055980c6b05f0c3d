"""The optimizer and its schedule: AdamW without decay on 1-D parameters, warmup then linear decay,
over steps (:func:`lr_factor`) or over a time budget (:func:`time_lr_factor`)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError


def lr_factor(step: int, warmup_steps: int, total_steps: int | None, schedule: str) -> float:
    """Multiplier of the base lr for 0-based optimizer step ``step``.

    Warmup: (step + 1) / warmup_steps. Then 'constant' stays at 1; 'linear' decays as
    (total - step) / (total - warmup), reaching 0 after the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    assert total_steps is not None
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def time_lr_factor(fraction: float, warmup_fraction: float = 0.0) -> float:
    """Multiplier of the base lr once ``fraction`` of a time budget is spent (elapsed / budget).

    Warmup: fraction / warmup_fraction over the first warmup_fraction of the budget; then linear decay
    (1 - fraction) / (1 - warmup_fraction), which reaches 0 at the deadline (fraction 1) and stays there.
    """
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup_fraction:
        return fraction / warmup_fraction
    return (1.0 - fraction) / (1.0 - warmup_fraction)


FUSED_DEVICES = ("cpu", "cuda")  # where torch's AdamW has a fused kernel (one pass over each parameter's state)


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], eps: float,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW with decay on matrices only: biases, LayerNorm weights (all 1-D params) get none.

    ``fused`` (default: where the parameters' device has the kernel): torch's fused AdamW, the same update in
    one kernel per parameter. On a CPU it takes 9 ms a step for the 17.5 M parameters of the small preset,
    where the default per-parameter loop takes 34 ms and ``foreach`` 50 (2 threads, AMD Zen 4)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise InputError("the model has no trainable parameters (all requires_grad=False)")
    if fused is None:
        fused = all(p.device.type in FUSED_DEVICES and p.dtype.is_floating_point for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **({"fused": True} if fused else {}))


__all__ = ["lr_factor", "time_lr_factor", "build_optimizer"]
