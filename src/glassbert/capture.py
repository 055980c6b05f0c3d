"""Named capture points: the one mechanism behind `glassbert trace`, the explorer's recorder and tests.

The model calls ``tap(self, "probs", probs)`` at each step of its forward pass. That costs one list
check when nothing listens. Inside ``with Capture(model) as cap:`` every tap is recorded under its
full module path, e.g. ``bert.encoder.layer.0.attention.self.probs``, in forward order, and the model
takes its explicit (eager, padded) path so that every intermediate tensor exists to be seen.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

import torch
from torch import nn

_ACTIVE: list["Capture"] = []


def capturing() -> bool:
    """True inside a `Capture` block: the model must run its explicit path."""
    return bool(_ACTIVE)


def tap(module: nn.Module, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Offer `tensor` as capture point `name` of `module`; returns it unchanged."""
    if _ACTIVE:
        _ACTIVE[-1]._record(module, name, tensor)
    return tensor


class Capture:
    """Record the named tensors of one or more forward passes of `model`.

    include: None (everything), a list of fnmatch globs ("*.attention.self.probs"), or a predicate.
    """

    def __init__(self, model: nn.Module,
                 include: None | Iterable[str] | Callable[[str], bool] = None):
        self.model = model
        if include is None:
            self._keep: Callable[[str], bool] = lambda name: True
        elif callable(include):
            self._keep = include
        else:
            patterns = list(include)
            self._keep = lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)
        self.records: dict[str, torch.Tensor] = {}
        self._paths: dict[int, str] = {}

    def __enter__(self) -> "Capture":
        self._paths = {id(m): name for name, m in self.model.named_modules()}
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.remove(self)

    def _record(self, module: nn.Module, name: str, tensor: torch.Tensor) -> None:
        path = self._paths.get(id(module))
        if path is None:  # a module outside the captured model
            return
        full = f"{path}.{name}" if path else name
        if not self._keep(full):
            return
        key, n = full, 1
        while key in self.records:  # the same module run twice in one capture
            n += 1
            key = f"{full}#{n}"
        self.records[key] = tensor.detach()

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.records[name]
        except KeyError:
            raise KeyError(f"no capture point {name!r}; recorded: {len(self.records)} points, "
                           f"e.g. {list(self.records)[:3]}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.records


__all__ = ["Capture", "tap", "capturing"]
