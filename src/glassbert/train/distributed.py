"""Where this process trains: its rank under torchrun, its device, and the two collectives the Trainer and its
evaluation use (a barrier, a sum over the ranks); with one process they do nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import InputError


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


def barrier(world_size: int) -> None:
    """Wait for every rank (nothing to wait for with one process)."""
    if world_size > 1:
        dist.barrier()


def all_sum(values: list[float], world_size: int, device: torch.device) -> list[float]:
    """``values`` summed element-wise over the ranks (in float64; on the GPU under NCCL); one process: themselves."""
    if world_size == 1:
        return values
    comm = device if device.type == "cuda" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=comm)
    dist.all_reduce(t)
    return t.tolist()


__all__ = ["DistInfo", "resolve_device", "barrier", "all_sum"]
