"""Which items go into which micro-batch of which step, on which rank, collated with which seed.

Global batch ``b`` of epoch ``e`` is a slice of a permutation seeded by (seed, "epoch", e); each rank
takes its contiguous share and splits it into ``grad_accum`` micro-batches, each collated with a
generator seeded by (seed, "collate", global micro-step). So the data a step sees depends only on
its position, and N ranks equal one process with ``grad_accum=N``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..errors import InputError
from .rng import derive_seed

if TYPE_CHECKING:
    from .trainer import Trainer


@dataclass(frozen=True)
class MicroBatch:
    micro_id: int  # global micro-step: seeds collate and dropout
    size: int  # items in it
    batch: Mapping[str, Any]


class EpochSteps(torch.utils.data.Dataset):
    """Item b = this rank's collated micro-batches for global batch ``start + b`` of one epoch."""

    def __init__(self, trainer: Trainer, epoch: int, start: int, first_step: int) -> None:
        cfg = trainer.config
        n = len(trainer.train_dataset)
        if cfg.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "epoch", epoch))
            self.order = torch.randperm(n, generator=gen)
        else:
            self.order = torch.arange(n)
        self.dataset, self.collate_fn = trainer.train_dataset, trainer.collate_fn
        self.seed, self.batch_size, self.accum = cfg.seed, cfg.batch_size, cfg.grad_accum
        self.rank, self.world = trainer.rank, trainer.world_size
        self.start, self.first_step, self.steps = start, first_step, trainer.steps_per_epoch

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


@dataclass(frozen=True)
class DistInfo:
    """This process's place under torchrun (from its environment); one process otherwise."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistInfo:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """'auto' → the GPU when there is one; under torchrun each rank takes its LOCAL_RANK GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device={name!r} but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", info.local_rank if info.world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


__all__ = ["MicroBatch", "EpochSteps", "identity", "count_tokens", "to_device", "DistInfo", "resolve_device"]
