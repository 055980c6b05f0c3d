"""Every snapshot's weights from one float32 base and what changed: written by the recorder, rebuilt by the store.

A recording whose manifest has ``"weights"`` (this layout) keeps the weights so that any snapshot's model can be
rebuilt, exactly where the size bound allows; a recording without it stores each snapshot's weights whole in its
storage dtype (float16 for hidden sizes ≥ 256), or leaves some out.

    the first snapshot's file   every parameter, float32, under its name: the *base*
    a later snapshot's file     per parameter, what rebuilds it from the base:
        NAME                    the parameter whole (float32)
        NAME@idx, NAME@rows     an embedding table's rows that differ from its *shadow* (int32 indices,
                                float32 rows): the shadow, with these rows put in, is the table exactly
        NAME@f16                float16(w − base): rebuilt as base + float32(d), not exact
        NAME@i8, NAME@scale     int8 round(d / scale) with a float32 scale per row (max |d| / 127): not exact
        nothing                 the parameter equals its shadow (a matrix: the base; unchanged, e.g. frozen)

The shadow of an embedding table (token, position, segment) is the base multiplied, step after step, by
AdamW's decoupled weight decay ``1 − lr·wd``: the rows training never touched (the words the training set does
not hold, unused positions) change by these multiplications only, so they need no storage. The factor of each
step is logged (``weights-decay.json``, written by :class:`~glassbert.recording.recorder.RecordCallback`, which
sees every optimizer step) and the rebuild replays the same float32 multiplications. Rows that differ from the
shadow for any reason (a gradient, momentum, an optimizer that decays otherwise) are stored: the recorder
compares the table with its shadow, so exactness never rests on predicting the optimizer.

Each later snapshot says how its weights were kept (``entry["weights"]``): ``exact``, ``float16`` or ``int8``
(the matrices as differences from the base; tables and 1-D weights stay exact), with ``entry["weights_error"]``,
the largest |rebuilt − trained| the recorder measured, or ``none`` when the size bound left no room for them
(the what-if is refused there). The recorder picks the most exact one that fits the snapshot's share of the bound.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from glassbert.recording.snapshot import describe_weight

DECAY_FILE = "weights-decay.json"
ENCODINGS = ("exact", "float16", "int8")  # most exact first; "none": no weights at that snapshot
TABLE_DIMS = ("vocab", "position", "segment")
UNTIED_TABLE_GUESS = 0.01  # the share of an untied table's bytes planned for each later snapshot (its seen rows)


def is_table(name: str, shape: Sequence[int], vocab_size: int) -> bool:
    """An embedding table (rows looked up by id): only the rows training reads get gradients."""
    return len(shape) == 2 and describe_weight(name, shape, vocab_size)[0][0] in TABLE_DIMS


def table_names(model: torch.nn.Module) -> list[str]:
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", -1) or -1)
    return [n for n, p in model.named_parameters() if is_table(n, list(p.shape), vocab)]


def tied_names(model: torch.nn.Module) -> set[str]:
    """Parameters that more than one module uses (the MLM decoder tied to the token table): dense gradients."""
    seen: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return {names[0] for names in seen.values() if len(names) > 1}


def replay(t: torch.Tensor, factors: Iterable[float]) -> torch.Tensor:
    """``t`` multiplied in place by each factor in turn, as AdamW's ``param.mul_(1 - lr * weight_decay)`` does."""
    for f in factors:
        if f != 1.0:
            t.mul_(f)
    return t


# ─── the decay log ───────────────────────────────────────────────────────────────────────────
@dataclass
class DecayLog:
    """Per optimizer step (after which the step counter reads ``step``), each table's decay factor; steps where
    every factor is 1 (no decay) are not kept."""

    tables: list[str]
    steps: dict[int, list[float]] = field(default_factory=dict)

    def note(self, step: int, factors: Mapping[str, float]) -> None:
        row = [float(factors.get(n, 1.0)) for n in self.tables]
        if any(f != 1.0 for f in row):
            self.steps[int(step)] = row
        else:
            self.steps.pop(int(step), None)

    def factors(self, name: str, after: int, upto: int) -> list[float]:
        """The factors of table ``name`` for the steps after ``after`` up to ``upto``, in order."""
        if name not in self.tables:
            return []
        j = self.tables.index(name)
        return [self.steps[s][j] for s in sorted(self.steps) if after < s <= upto]

    def fingerprint(self, after: int, upto: int) -> str:
        """What a snapshot's shadows were replayed with: checked when it is rebuilt."""
        rows = [[s, *self.steps[s]] for s in sorted(self.steps) if after < s <= upto]
        return hashlib.sha1(json.dumps([self.tables, rows]).encode()).hexdigest()[:16]

    def truncate(self, step: int) -> None:
        for s in [s for s in self.steps if s > step]:
            del self.steps[s]

    def to_json(self) -> str:
        return json.dumps({"tables": self.tables, "steps": [[s, *self.steps[s]] for s in sorted(self.steps)]},
                          separators=(",", ":"))

    @classmethod
    def read(cls, path: Path) -> "DecayLog | None":
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(list(data["tables"]), {int(r[0]): [float(x) for x in r[1:]] for r in data["steps"]})


def step_factors(optimizer: Any, params: Mapping[str, torch.nn.Parameter], had_grad: Mapping[str, bool]) -> dict[str, float]:
    """Each table's decay factor in the optimizer step just taken: ``1 - lr * weight_decay`` of its group (the
    expression torch's AdamW multiplies by), 1 where the group has no decay or the table had no gradient (AdamW
    skips a parameter without one)."""
    out: dict[str, float] = {}
    for name, p in params.items():
        group = next((g for g in optimizer.param_groups if any(q is p for q in g["params"])), None)
        wd = float(group.get("weight_decay", 0.0)) if group is not None else 0.0
        decoupled = group is not None and (group.get("decoupled_weight_decay", False)
                                           or type(optimizer).__name__ == "AdamW")
        if group is None or wd == 0 or not decoupled or not had_grad.get(name, False):
            out[name] = 1.0
        else:
            out[name] = 1 - float(group["lr"]) * wd
    return out


# ─── encoding one later snapshot ─────────────────────────────────────────────────────────────
def _as_rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.dim() >= 2 else t.reshape(1, -1)


def _i8(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = _as_rows(d)
    scale = rows.abs().amax(dim=1) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(d.shape), scale


def decode_i8(base: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return base + (_as_rows(q).float() * scale[:, None]).reshape(base.shape)


def lossy_bytes(shape: Sequence[int], encoding: str) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    if encoding == "float16":
        return 2 * n
    if encoding == "int8":
        return n + 4 * (int(shape[0]) if shape else 1)
    return 4 * n


def plan_later_bytes(shapes: Mapping[str, Sequence[int]], tables: Iterable[str], tied: Iterable[str],
                     encoding: str) -> int:
    """What one later snapshot's weights are planned to take: an untied table its seen rows (a guess:
    :data:`UNTIED_TABLE_GUESS` of it), every other matrix its encoding, 1-D weights float32."""
    tables, tied = set(tables), set(tied)
    total = 0
    for name, shape in shapes.items():
        if name in tables and name not in tied:
            total += int(lossy_bytes(shape, "exact") * UNTIED_TABLE_GUESS)
        elif len(shape) >= 2:
            total += lossy_bytes(shape, encoding)
        else:
            total += lossy_bytes(shape, "exact")
    return total


@dataclass
class Encoded:
    tensors: dict[str, torch.Tensor]
    bytes: int
    error: float  # max |rebuilt − trained| over every weight


def encode(current: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor],
           shadows: Mapping[str, torch.Tensor], encoding: str) -> Encoded:
    """The tensors a later snapshot stores for ``current`` (float32 weights): see the module docstring."""
    out: dict[str, torch.Tensor] = {}
    error = 0.0

    def lossy(name: str, w: torch.Tensor, b: torch.Tensor) -> None:
        nonlocal error
        d = w - b
        if encoding == "float16":
            half = d.to(torch.float16)
            out[f"{name}@f16"] = half
            rebuilt = b + half.float()
        else:
            q, scale = _i8(d)
            out[f"{name}@i8"], out[f"{name}@scale"] = q, scale
            rebuilt = decode_i8(b, q, scale)
        error = max(error, float((rebuilt - w).abs().max()) if w.numel() else 0.0)

    for name, w in current.items():
        b = base[name]
        if name in shadows:
            shadow = shadows[name]
            changed = (w != shadow).reshape(w.shape[0], -1).any(dim=1).nonzero().flatten()
            patch = len(changed) * (4 + 4 * (w.numel() // max(1, w.shape[0])))
            whole = lossy_bytes(w.shape, encoding)
            if len(changed) == 0:
                continue
            if patch <= whole or encoding == "exact":
                if patch <= lossy_bytes(w.shape, "exact"):
                    out[f"{name}@idx"] = changed.to(torch.int32)
                    out[f"{name}@rows"] = w.index_select(0, changed).contiguous()
                else:
                    out[name] = w
                continue
            lossy(name, w, b)
        elif torch.equal(w, b):
            continue
        elif encoding == "exact" or w.dim() < 2:
            out[name] = w
        else:
            lossy(name, w, b)
    out = {k: v.contiguous() for k, v in out.items()}
    return Encoded(out, sum(t.numel() * t.element_size() for t in out.values()), error)


class Track:
    """The recorder's side: the base's step, each table's shadow as of ``shadow_step``, the decay log."""

    def __init__(self, log: DecayLog, base_step: int, base_tables: Mapping[str, torch.Tensor]):
        self.log = log
        self.base_step = int(base_step)
        self.shadows = {n: t.detach().float().clone() for n, t in base_tables.items()}
        self.shadow_step = self.base_step

    def advance(self, step: int) -> None:
        """Bring every shadow to ``step`` (the factors logged since the last call, in order)."""
        if step <= self.shadow_step:
            return
        for name, shadow in self.shadows.items():
            replay(shadow, self.log.factors(name, self.shadow_step, step))
        self.shadow_step = int(step)


# ─── rebuilding ──────────────────────────────────────────────────────────────────────────────
def rebuild(read_base: Any, read_snap: Any, keys: set[str] | None, name: str, factors: Sequence[float],
            rows: tuple[int, int] | None = None) -> torch.Tensor:
    """Parameter ``name`` of one snapshot, float32. ``read_base(key, rows)`` / ``read_snap(key, rows)`` read a
    tensor (rows ``a:b`` of its first axis, or all) of the base / the snapshot's file; ``keys``: that file's
    tensor names (None: the snapshot is the base); ``factors``: the table's decay since the base."""
    base = read_base(name, rows).float()
    if keys is None:
        return base
    if name in keys:
        return read_snap(name, rows).float()
    if f"{name}@f16" in keys:
        return base + read_snap(f"{name}@f16", rows).float()
    if f"{name}@i8" in keys:
        return decode_i8(base, read_snap(f"{name}@i8", rows), read_snap(f"{name}@scale", rows).float())
    t = replay(base.clone(), factors)
    if f"{name}@idx" in keys:
        idx = read_snap(f"{name}@idx", None).long()
        values = read_snap(f"{name}@rows", None).float()
        start = rows[0] if rows is not None else 0
        keep = (idx >= start) & (idx < start + t.shape[0])
        t[idx[keep] - start] = values[keep]
    return t


__all__ = ["DECAY_FILE", "ENCODINGS", "DecayLog", "Encoded", "Track", "encode", "rebuild", "replay", "step_factors",
           "table_names", "tied_names", "is_table", "plan_later_bytes", "lossy_bytes"]
