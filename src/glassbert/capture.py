"""Named capture points: the one mechanism behind `glassbert trace`, the explorer's recorder and tests.

A module calls ``tap(self, "probs", probs)`` at each step of its forward pass, and declares every name
it taps, once, in a table beside its ``forward``::

    class BertSelfAttention(nn.Module):
        capture = Points("attention", [
            Point("probs", ("head", "token", "token"), "attention probabilities",
                  step="Attention Probabilities Softmax Layer", priority=KEEP, role="attention"),
            ...])

That table is the catalogue: `trace` prints the points that have a ``step`` (a step of the article "Bert
Inner Workings" by George Mihaila), the recorder stores their ``dims``/``label``/``priority`` in the run's
manifest, and the explorer page draws its architecture diagram and picks its attention maps from it
(``block``, ``group``, ``role``). A second architecture declares its own tables and needs no edit elsewhere.

A module that runs one submodule several times (ALBERT's layers share weights) declares each run as an
:class:`Alias` (``capture_aliases``) and runs it inside ``with running(alias):``: its taps are recorded
under the run's own name (``albert.encoder.layer.3.attention.probs``), and the catalogue lists the points
once per run, each saying whose weights it uses.

A tap costs one list check when nothing listens. Inside ``with Capture(model) as cap:`` every tap is
recorded under its full module path, e.g. ``bert.encoder.layer.0.attention.self.probs``, in forward
order, and the model takes its explicit (eager, padded) path so that every intermediate tensor exists.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# explorer/recorder priorities: under a size bound, lower numbers are dropped first
KEEP = 6        # never dropped: inputs, attention probabilities, layer outputs, predictions
CORE = 5        # never dropped: the steps a reader follows (embeddings, per-head Q/K/V, add & norm …)
DETAIL = 3      # the linear outputs before the head split, the FFN intermediates
REDUNDANT = 2   # equal to a neighbour (dropout in eval mode, a block's input) or a layout change

_ACTIVE: list["Capture"] = []


@dataclass(frozen=True)
class Point:
    """One capture point of a module.

    name: what the module passes to ``tap``. dims: the axes without the batch axis ("token", "head",
    "hidden", "masked", …). label: what a person reads. step: the step's name in "Bert Inner Workings"
    (George Mihaila) for `glassbert trace` (None: not traced); ``{act}`` is filled with the activation's
    name.
    priority: KEEP … REDUNDANT. block: the label of its box in the explorer's architecture diagram
    (None: not drawn); weight: a parameter of the module drawn just before it ("query.weight");
    row/chain: where in its group the box sits (boxes of one chain are joined by arrows).
    role: what the page and the recorder use it for ("attention", "attention_scores", "start",
    "mlm_logits", "nsp_logits").
    derive: computed by the recorder from a sibling point, not tapped: ("softmax" | "argmax", name).
    rebuild: tapped and recorded, but left out of an exported page, which computes it from sibling points:
    (op, source, extra source or None); the ops are the page's (explorer/static): "transpose", "heads_last",
    "heads_concat", "scale" (× √head size), "add_mask".
    show_values: trace prints the values, not only the shape (small integer tensors).
    """

    name: str
    dims: tuple[str, ...]
    label: str
    step: str | None = None
    priority: int = DETAIL
    block: str | None = None
    weight: str | None = None
    weight_block: str | None = None
    row: int = 0
    chain: int = 0
    role: str | None = None
    derive: tuple[str, str] | None = None
    rebuild: tuple[str, str, str | None] | None = None
    show_values: bool = False
    group: str | None = None  # draw it in another group than its table's


@dataclass(frozen=True)
class Points:
    """The table a module class declares as ``capture``: its explorer group and its points, in tap order.

    group: the diagram box its blocks are drawn in; boxes of several modules with the same group title
    share it. ``{layer}``, ``{layers}`` and ``{heads}`` in the title are filled by the page.
    """

    group: str
    points: Sequence[Point] = field(default_factory=tuple)
    after_children: bool = False  # the module taps these after its submodules' points (ALBERT's layer: FFN after attention)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(self.points))
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise ValueError(f"capture table {self.group!r} names a point twice: {names}")

    def __getitem__(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.points)


@dataclass(frozen=True, eq=False)
class Alias:
    """One run of a submodule that its parent runs several times (ALBERT: one shared layer, many layers).

    name: the run's path relative to the parent ("layer.3"); module: the submodule run (its weights stay
    under its own path); label: what a reader is told ("shared group 0, inner 0").
    """

    name: str
    module: nn.Module
    label: str


def aliases_of(module: nn.Module) -> Sequence[Alias]:
    """The runs a module declares with a ``capture_aliases()`` method (none for most modules)."""
    declare = getattr(module, "capture_aliases", None)
    return declare() if callable(declare) else ()


def module_paths(model: nn.Module) -> list[tuple[str, nn.Module, Alias | None]]:
    """(path, module, alias) of every module whose taps are recorded, in forward order: ``named_modules``,
    except that a submodule its parent runs several times is listed once per run, under the run's name,
    after the parent's other children (``alias`` is that run; None outside shared modules). A module whose
    table says ``after_children`` comes after its submodules, as its taps do."""
    found: list[tuple[str, nn.Module, Alias | None]] = []

    def walk(module: nn.Module, path: str, alias: Alias | None, skip: frozenset[int]) -> None:
        table = points_of(module)
        last = table is not None and table.after_children
        if not last:
            found.append((path, module, alias))
        runs = aliases_of(module)
        skip = skip | {id(run.module) for run in runs}
        for name, child in module.named_children():
            if id(child) not in skip:
                walk(child, f"{path}.{name}" if path else name, alias, skip)
        for run in runs:
            walk(run.module, f"{path}.{run.name}" if path else run.name, run, skip - {id(run.module)})
        if last:
            found.append((path, module, alias))

    walk(model, "", None, frozenset())
    return found


class running:
    """``with running(alias):`` the taps inside are recorded under ``alias``'s name in every active Capture."""

    def __init__(self, alias: Alias):
        self.alias = alias

    def __enter__(self) -> None:
        for capture in _ACTIVE:
            capture._running.append(self.alias)

    def __exit__(self, *exc) -> None:
        for capture in _ACTIVE:
            capture._running.pop()


def points_of(module: nn.Module) -> Points | None:
    """The capture table of a module's class, if it declares one."""
    table = getattr(type(module), "capture", None)
    return table if isinstance(table, Points) else None


_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)(?:\.|$)")


def layer_of(path: str) -> int | None:
    """The encoder layer a module path belongs to (``….layer.3.…`` → 3), else None."""
    m = _LAYER.search(path)
    return int(m.group(1)) if m else None


def catalogue(model: nn.Module) -> list[dict[str, Any]]:
    """Every capture point of ``model`` under its full name, in module order, as JSON-ready dicts.

    This is what the recorder writes into the manifest for the page. Weight names are resolved to the
    name the parameter is stored under (a tied decoder points at the word embeddings; a shared layer's run
    at the shared weights, and ``shared`` says which: "shared group 0, inner 0").
    """
    param_names: dict[int, str] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        param_names.setdefault(id(p), pname)
    entries = []
    for path, module, alias in module_paths(model):
        table = points_of(module)
        if table is None:
            continue
        for p in table.points:
            weight = None
            if p.weight is not None:
                param = module.get_parameter(p.weight)
                weight = param_names.get(id(param))
            entries.append({
                "name": f"{path}.{p.name}" if path else p.name,
                "module": path, "point": p.name, "dims": list(p.dims), "label": p.label,
                "step": p.step, "priority": p.priority, "group": p.group or table.group, "layer": layer_of(path),
                "block": p.block, "weight": weight, "weight_block": p.weight_block,
                "row": p.row, "chain": p.chain, "role": p.role,
                "derive": list(p.derive) if p.derive else None,
                "rebuild": list(p.rebuild) if p.rebuild else None,
                "shared": alias.label if alias is not None else None,
            })
    return entries


def capturing() -> bool:
    """True inside a `Capture` block that asks for the explicit path."""
    return any(c.explicit for c in _ACTIVE)


def tap(module: nn.Module, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Offer `tensor` as capture point `name` of `module`; returns it unchanged."""
    if _ACTIVE:
        _ACTIVE[-1]._record(module, name, tensor)
    return tensor


class UndeclaredTap(LookupError):
    """A module tapped a name its capture table does not declare (a bug in the model code)."""


class Capture(Mapping[str, torch.Tensor]):
    """Record the named tensors of one or more forward passes of `model`.

    include: None (everything), a list of fnmatch globs ("*.attention.self.probs"), or a predicate.
    explicit: make the model take its explicit path (default); False leaves the fast path on, where
    only the taps outside the encoder run. ``points[key]`` is the catalogue entry of each record,
    ``owners[key]`` the module that tapped it and ``shared[key]`` the label of the shared module's run it
    was tapped in (ALBERT's layers; absent elsewhere).
    A tap that its module's table does not declare raises :class:`UndeclaredTap`.

    After the block, the capture is a read-only mapping of the records in forward order:
    ``list(cap)`` / ``cap.keys()`` name them, ``len(cap)`` counts them, ``cap[name]``, ``name in cap``,
    ``cap.items()`` and ``cap.get(name)`` read them.
    """

    def __init__(self, model: nn.Module,
                 include: None | Iterable[str] | Callable[[str], bool] = None, explicit: bool = True):
        self.model = model
        self.explicit = explicit
        if include is None:
            self._keep: Callable[[str], bool] = lambda name: True
        elif callable(include):
            self._keep = include
        else:
            patterns = list(include)
            self._keep = lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)
        self.records: dict[str, torch.Tensor] = {}
        self.points: dict[str, Point] = {}
        self.owners: dict[str, nn.Module] = {}
        self.shared: dict[str, str] = {}
        self._paths: dict[int, str] = {}
        self._run_paths: dict[tuple[int, Alias], str] = {}
        self._running: list[Alias] = []

    def __enter__(self) -> "Capture":
        self._paths = {id(m): name for name, m in self.model.named_modules()}
        self._run_paths = {(id(m), alias): path for path, m, alias in module_paths(self.model) if alias is not None}
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.remove(self)

    def _record(self, module: nn.Module, name: str, tensor: torch.Tensor) -> None:
        alias = self._running[-1] if self._running else None
        path = self._run_paths.get((id(module), alias)) if alias is not None else None
        if path is None:
            alias, path = None, self._paths.get(id(module))
        if path is None:  # a module outside the captured model
            return
        table = points_of(module)
        if table is None or name not in table:
            raise UndeclaredTap(f"{type(module).__name__} taps {name!r}, which its capture table does not "
                                f"declare: add a Point({name!r}, …) to {type(module).__name__}.capture")
        full = f"{path}.{name}" if path else name
        if not self._keep(full):
            return
        key, n = full, 1
        while key in self.records:  # the same module run twice in one capture
            n += 1
            key = f"{full}#{n}"
        self.records[key] = tensor.detach()
        self.points[key] = table[name]
        self.owners[key] = module
        if alias is not None:
            self.shared[key] = alias.label

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.records[name]
        except KeyError:
            raise KeyError(f"no capture point {name!r}; recorded: {len(self.records)} points, "
                           f"e.g. {list(self.records)[:3]}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.records

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<Capture of {type(self.model).__name__}: {len(self.records)} points>"


__all__ = ["Capture", "Point", "Points", "Alias", "running", "module_paths", "tap", "capturing", "catalogue",
           "points_of", "layer_of",
           "UndeclaredTap", "KEEP", "CORE", "DETAIL", "REDUNDANT"]
