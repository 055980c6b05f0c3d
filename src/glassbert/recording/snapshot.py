"""One snapshot: a forward pass under Capture turned into per-sample tensors, weights, and what each one is.

The capture table of the module that tapped a tensor says its dims, label and priority; points a table
marks ``derive=("softmax"|"argmax", source)`` are computed here from their source. Tensors whose first
dim is ``masked`` (the MLM head, which BERT computes for the masked tokens only) are split per sample and
padded to the largest number of masked tokens.
"""
from __future__ import annotations

import fnmatch
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from glassbert.capture import Capture, Point, points_of
from glassbert.errors import InputError
from glassbert.registry import ARCHITECTURES


@dataclass
class Snapshot:
    tensors: dict[str, torch.Tensor]      # name → (S, ...) activation or weight, in storage dtype
    meta: dict[str, dict[str, Any]]       # name → {shape, dims, kind, label, priority}
    roles: dict[str, str]                 # role ("mlm_logits", "nsp_logits", …) → name
    masked_index: torch.Tensor | None     # the MLM head's gathered rows, when it ran on masked tokens only


def describe_weight(name: str, shape: Sequence[int], vocab_size: int) -> tuple[list[str], str, int]:
    """(dims, label, priority) of a parameter."""
    leaf = name.rsplit(".", 2)
    label = ".".join(leaf[-2:])
    if "word_embeddings" in name:
        return ["vocab", "hidden"], "token embedding table", 0
    if "position_embeddings" in name:
        return ["position", "hidden"], "position embedding table", 1
    if "token_type_embeddings" in name:
        return ["segment", "hidden"], "segment embedding table", 1
    if len(shape) == 2:
        prio = 0 if vocab_size in shape else 1
        return ["out", "in"], f"W {label}", prio
    if len(shape) == 1:
        prio = 0 if shape[0] == vocab_size else 4
        return ["out"], f"{label}", prio
    return [f"d{i}" for i in range(len(shape))], label, 1


# ---------------------------------------------------------------------------------------------
# the recorder
# ---------------------------------------------------------------------------------------------
def to_cpu_batch(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.detach().cpu()
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple, int)):
            out[k] = torch.as_tensor(v)
    return out


# The sentence-pair labels a batch may hold, under the models' argument names: BERT's NSP (0 = IsNext),
# ALBERT's SOP (0 = in order, 1 = swapped).
PAIR_LABEL_ARGS = tuple(a.pair_label for a in ARCHITECTURES.values())  # the pair heads' label arguments


def _accepts(model: torch.nn.Module, arg: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return arg in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def storage_dtype(dtype: str, config: Mapping[str, Any]) -> torch.dtype:
    if dtype == "auto":
        big = int(config.get("hidden_size", 0)) >= 256
        return torch.float16 if big else torch.float32
    return {"float16": torch.float16, "fp16": torch.float16, "float32": torch.float32,
            "fp32": torch.float32}[dtype]


def config_dict(model: torch.nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return {}
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
    d = dict(d)
    for key in ("attention_head_size", "intermediate_size"):
        if key not in d and hasattr(cfg, key):
            d[key] = getattr(cfg, key)
    return json.loads(json.dumps(d, default=str))


def _included(name: str, inc) -> bool:
    if inc is None:
        return True
    if callable(inc):
        return bool(inc(name))
    return any(fnmatch.fnmatchcase(name, g) for g in inc)

def _forward(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Point], Any]:
    device = next(model.parameters()).device
    inputs = {k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
    # MLM labels only for models with an MLM head (a classifier's `labels` mean something else)
    if "labels" in batch and "mlm" in getattr(model, "heads", ()) and _accepts(model, "labels") \
            and batch["labels"].shape == batch["input_ids"].shape:
        inputs["labels"] = batch["labels"].to(device)
    for pair_label in PAIR_LABEL_ARGS:  # BERT's NSP labels, ALBERT's SOP labels: whichever the model takes
        if pair_label in batch and _accepts(model, pair_label):
            inputs[pair_label] = batch[pair_label].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Capture(model) as cap:
            out = model(**inputs)
    finally:
        model.train(was_training)
    return dict(cap.records), dict(cap.points), out

def _per_sample(batch: Mapping[str, torch.Tensor], masked_positions: Sequence[Sequence[int]], records: Mapping[str, torch.Tensor], points: Mapping[str, Point],
                out: Any) -> dict[str, torch.Tensor]:
    """Capture records → tensors with a leading sample axis (rows of ``masked`` points split per sample)."""
    B, T = batch["input_ids"].shape
    counts = [len(p) for p in masked_positions]
    mmax = max(counts) if counts else 0
    # flat (b*T + t) index of every masked row, in the order BERT gathers them
    masked_flat = getattr(out, "masked_index", None)
    gathered = masked_flat is not None  # the MLM head ran on the masked rows only
    if masked_flat is None:
        masked_flat = torch.tensor([b * T + p for b, ps in enumerate(masked_positions) for p in ps],
                                   dtype=torch.long)
    masked_flat = masked_flat.detach().cpu().long()
    result: dict[str, torch.Tensor] = {}
    for name, t in records.items():
        t = t.detach().cpu()
        if points[name].dims[:1] == ("masked",):
            if not gathered:  # the head ran on every token: (B, T, ...) or (B*T, ...)
                if t.dim() >= 2 and t.shape[0] == B and t.shape[1] == T:
                    t = t.reshape(B * T, *t.shape[2:])
                if t.shape[0] != B * T:
                    continue
                t = t.index_select(0, masked_flat)
            if t.shape[0] != masked_flat.numel():
                continue  # not per masked token: nothing sensible to show per sample
            if mmax == 0:
                continue
            padded = t.new_zeros((B, mmax, *t.shape[1:]))
            sample_of, fill = masked_flat // T, [0] * B
            for r in range(t.shape[0]):
                b = int(sample_of[r])
                padded[b, fill[b]] = t[r]
                fill[b] += 1
            result[name] = padded
        elif t.dim() >= 1 and t.shape[0] == B:
            result[name] = t
        elif t.dim() >= 1 and t.shape[0] == 1:
            result[name] = t.expand(B, *t.shape[1:]).contiguous()
        elif t.dim() == 1 and t.shape[0] == T:  # shared per-token vector (position ids)
            result[name] = t.unsqueeze(0).expand(B, T).contiguous()
    return result

def _derived(model: torch.nn.Module, acts: dict[str, torch.Tensor]) -> dict[str, Point]:
    """Add the points the tables mark ``derive=(op, source)`` (softmax / argmax of a head's logits)."""
    added: dict[str, Point] = {}
    for path, module in model.named_modules():
        table = points_of(module)
        for point in table.points if table is not None else ():
            if point.derive is None:
                continue
            op, source = point.derive
            key = f"{path}.{source}" if path else source
            if key not in acts:
                continue
            name = f"{path}.{point.name}" if path else point.name
            x = acts[key]
            acts[name] = torch.softmax(x.float(), dim=-1) if op == "softmax" else x.argmax(dim=-1).to(torch.int32)
            added[name] = point
    return added

def take(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], masked_positions: Sequence[Sequence[int]], *,
         include: Sequence[str] | Callable[[str], bool] | None = None, dtype_name: str = "auto",
         weights: bool = True, weight_dtype: torch.dtype | None = None) -> Snapshot:
    """One eval-mode forward pass of ``model`` on ``batch`` under Capture: every activation with a leading
    sample axis, the weights (in ``weight_dtype``, else the storage dtype), what each one is (from the capture
    tables), and the names of the roles."""
    records, points, out = _forward(model, batch)
    acts = _per_sample(batch, masked_positions, records, points, out)
    points.update(_derived(model, acts))
    dtype = storage_dtype(dtype_name, config_dict(model))
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict[str, Any]] = {}
    for name, t in acts.items():
        if not _included(name, include):
            continue
        t = t.to(dtype) if t.is_floating_point() else t.to(torch.int32)
        tensors[name] = t.clone(memory_format=torch.contiguous_format)  # no shared storage (views)
        point = points[name]
        dims = list(point.dims) if len(point.dims) == t.dim() - 1 else [f"d{i}" for i in range(t.dim() - 1)]
        meta[name] = {"shape": list(t.shape[1:]), "dims": dims, "kind": "activation",
                      "label": point.label, "priority": point.priority}
    if weights:
        vocab = int(config_dict(model).get("vocab_size", -1))
        for pname, p in model.named_parameters():
            if not _included(pname, include):
                continue
            if pname in tensors:
                raise InputError(f"parameter name {pname!r} collides with a capture point")
            w = p.detach().cpu()
            w = w.to(weight_dtype or dtype) if w.is_floating_point() else w
            tensors[pname] = w.clone(memory_format=torch.contiguous_format)
            dims, label, prio = describe_weight(pname, list(w.shape), vocab)
            meta[pname] = {"shape": list(w.shape), "dims": dims, "kind": "weight", "label": label,
                           "priority": prio}
    roles = {point.role: name for name, point in points.items() if point.role}
    return Snapshot(tensors, meta, roles, getattr(out, "masked_index", None))

def find_aliases(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, str]:
    """name -> earlier name holding bit-identical values (stored once)."""
    aliases: dict[str, str] = {}
    seen: dict[tuple, list[str]] = {}
    for name, t in tensors.items():
        if meta[name]["kind"] != "activation":
            continue
        key = (tuple(t.shape), t.dtype)
        for other in seen.get(key, []):
            if torch.equal(tensors[other], t):
                aliases[name] = other
                break
        else:
            seen.setdefault(key, []).append(name)
    return aliases
