"""What an evaluation returns: ``eval_fn``'s result made an :class:`Evaluation`, or the default
one, the mean loss and metrics over an eval dataset (sharded over the ranks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..errors import InputError
from .batches import to_device
from .config import Evaluation
from .rng import derive_seed

if TYPE_CHECKING:
    from .trainer import Trainer


def as_evaluation(result: Any) -> Evaluation:
    """``eval_fn``'s result (a mapping of metrics, or an Evaluation) with float metrics."""
    if isinstance(result, Evaluation):
        return Evaluation({k: float(v) for k, v in result.metrics.items()}, result.details)
    if isinstance(result, Mapping):
        return Evaluation({k: float(v) for k, v in result.items()})
    raise TypeError(f"eval_fn must return a Mapping[str, float] or an Evaluation, got {type(result).__name__}")


@torch.no_grad()
def mean_eval_loss(trainer: Trainer) -> dict[str, float]:
    """Item-weighted mean loss and ``metrics_fn`` values over ``trainer.eval_dataset``, all ranks summed."""
    dataset, cfg = trainer.eval_dataset, trainer.config
    assert dataset is not None
    n = len(dataset)
    bs = cfg.eval_batch_size or cfg.batch_size
    lo, hi = n * trainer.rank // trainer.world_size, n * (trainer.rank + 1) // trainer.world_size
    sums = [0.0, 0.0]  # loss × items, items
    metric_sums: dict[str, float] = {}
    for start in range(lo, hi, bs):
        ids = range(start, min(start + bs, hi))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "eval", start))
        batch = to_device(trainer.collate_fn([dataset[i] for i in ids], gen), trainer.device)
        with trainer._autocast():
            out = trainer.model(**batch)
        sums[0] += float(out.loss) * len(ids)
        sums[1] += len(ids)
        for k, v in trainer._metrics(out, batch).items():
            metric_sums[k] = metric_sums.get(k, 0.0) + v * len(ids)
    keys = trainer._metric_keys or []
    totals = trainer._all_sum(sums + [metric_sums.get(k, 0.0) for k in keys])
    if totals[1] == 0:
        raise InputError("eval_dataset is empty")
    return {"loss": totals[0] / totals[1], **{k: totals[2 + i] / totals[1] for i, k in enumerate(keys)}}


__all__ = ["as_evaluation", "mean_eval_loss"]
