"""What an evaluation returns: ``eval_fn``'s result made an :class:`Evaluation`, or the default one, the mean
loss and metrics over an eval dataset (sharded over the ranks); and ``metrics_fn``'s per-batch values
(:class:`BatchMetrics`), which the train log averages too."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import InputError
from ..precision import autocast
from .batches import to_device
from .config import Evaluation
from .distributed import all_sum
from .rng import derive_seed

MetricsFn = Callable[[Any, Mapping[str, Any]], Mapping[str, float]]


def as_evaluation(result: Any) -> Evaluation:
    """``eval_fn``'s result (a mapping of metrics, or an Evaluation) with float metrics."""
    if isinstance(result, Evaluation):
        return Evaluation({k: float(v) for k, v in result.metrics.items()}, result.details)
    if isinstance(result, Mapping):
        return Evaluation({k: float(v) for k, v in result.items()})
    raise TypeError(f"eval_fn must return a Mapping[str, float] or an Evaluation, got {type(result).__name__}")


class BatchMetrics:
    """``metrics_fn(output, batch)`` as floats (none without a metrics_fn). Its keys are fixed by its first
    answer (``keys``, saved with a checkpoint): the ranks sum the values in that order."""

    def __init__(self, metrics_fn: MetricsFn | None) -> None:
        self.metrics_fn = metrics_fn
        self.keys: list[str] | None = None

    def __call__(self, output: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        if self.metrics_fn is None:
            return {}
        with torch.no_grad():
            values = {k: float(v) for k, v in self.metrics_fn(output, batch).items()}
        keys = sorted(values)
        if self.keys is None:
            self.keys = keys
        elif keys != self.keys:
            raise ValueError(f"metrics_fn returned keys {keys}, earlier {self.keys}; they must not change")
        return values


@torch.no_grad()
def mean_eval_loss(model: nn.Module, dataset: Sequence[Any], collate_fn: Callable, metrics: BatchMetrics, *,
                   batch_size: int, seed: int, device: torch.device, bf16: bool, rank: int = 0,
                   world_size: int = 1) -> dict[str, float]:
    """Item-weighted mean loss and ``metrics`` over ``dataset``: this rank's contiguous share, batches of
    ``batch_size`` collated with seeds from (seed, "eval", start), all ranks summed."""
    n = len(dataset)
    lo, hi = n * rank // world_size, n * (rank + 1) // world_size
    sums = [0.0, 0.0]  # loss × items, items
    metric_sums: dict[str, float] = {}
    for start in range(lo, hi, batch_size):
        ids = range(start, min(start + batch_size, hi))
        gen = torch.Generator().manual_seed(derive_seed(seed, "eval", start))
        batch = to_device(collate_fn([dataset[i] for i in ids], gen), device)
        with autocast(device, bf16):
            out = model(**batch)
        sums[0] += float(out.loss) * len(ids)
        sums[1] += len(ids)
        for k, v in metrics(out, batch).items():
            metric_sums[k] = metric_sums.get(k, 0.0) + v * len(ids)
    keys = metrics.keys or []
    totals = all_sum(sums + [metric_sums.get(k, 0.0) for k in keys], world_size, device)
    if totals[1] == 0:
        raise InputError("eval_dataset is empty")
    return {"loss": totals[0] / totals[1], **{k: totals[2 + i] / totals[1] for i, k in enumerate(keys)}}


__all__ = ["as_evaluation", "BatchMetrics", "MetricsFn", "mean_eval_loss"]
