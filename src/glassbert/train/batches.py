"""Which items go into which micro-batch of which step, on which rank, collated with which seed; moving a batch
to the device and counting its tokens.

Global batch ``b`` of epoch ``e`` is a slice of a permutation seeded by (seed, "epoch", e); each rank
takes its contiguous share and splits it into ``grad_accum`` micro-batches, each collated with a
generator seeded by (seed, "collate", global micro-step). So the data a step sees depends only on
its position, and N ranks equal one process with ``grad_accum=N``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from .config import TrainConfig
from .rng import derive_seed


@dataclass(frozen=True)
class MicroBatch:
    micro_id: int  # global micro-step: seeds collate and dropout
    size: int  # items in it
    batch: Mapping[str, Any]


class EpochSteps(torch.utils.data.Dataset):
    """Item b = this rank's collated micro-batches for global batch ``start + b`` of one epoch (of
    ``steps_per_epoch`` batches); ``first_step`` is the optimizer step global batch ``start`` makes."""

    def __init__(self, dataset: Sequence[Any], collate_fn: Callable[[list, torch.Generator], Mapping[str, Any]],
                 config: TrainConfig, *, rank: int, world_size: int, steps_per_epoch: int, epoch: int, start: int,
                 first_step: int) -> None:
        n = len(dataset)
        if config.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(config.seed, "epoch", epoch))
            self.order = torch.randperm(n, generator=gen)
        else:
            self.order = torch.arange(n)
        self.dataset, self.collate_fn = dataset, collate_fn
        self.seed, self.batch_size, self.accum = config.seed, config.batch_size, config.grad_accum
        self.rank, self.world = rank, world_size
        self.start, self.first_step, self.steps = start, first_step, steps_per_epoch

    def __len__(self) -> int:
        return self.steps - self.start

    def __getitem__(self, b: int) -> list[MicroBatch]:
        index = self.start + b
        per_rank = self.batch_size // self.world
        micro = per_rank // self.accum
        glob = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        share = glob[self.rank * per_rank : (self.rank + 1) * per_rank]
        out = []
        for a in range(self.accum):
            ids = share[a * micro : (a + 1) * micro].tolist()
            micro_id = (self.first_step + b) * self.world * self.accum + self.rank * self.accum + a
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "collate", micro_id))
            out.append(MicroBatch(micro_id, len(ids), self.collate_fn([self.dataset[i] for i in ids], gen)))
        return out


def identity(x: Any) -> Any:
    """The DataLoader's collate_fn for EpochSteps (whose items are already collated)."""
    return x


def count_tokens(batch: Mapping[str, Any]) -> int | None:
    """Real tokens of a batch: the attention mask's sum (a (B, T, T) mask of packed rows: its diagonal's, each
    real token seeing itself), else the ids' count, else None."""
    mask = batch.get("attention_mask")
    if isinstance(mask, torch.Tensor):
        return int((mask.diagonal(dim1=1, dim2=2) if mask.dim() == 3 else mask).sum())
    ids = batch.get("input_ids")
    return ids.numel() if isinstance(ids, torch.Tensor) else None


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


__all__ = ["MicroBatch", "EpochSteps", "identity", "count_tokens", "to_device"]
