"""Recorder: snapshots of every named tensor inside BERT, for chosen samples at chosen epochs/steps.

A snapshot is one eval-mode forward pass under :class:`glassbert.capture.Capture` (the same capture
points `trace` prints) plus the model's weights, written as one safetensors file (the layout is in
:mod:`glassbert.recording.store`). What each tensor is — its dims, label and priority — comes from the
capture table of the module that tapped it; the manifest carries the model's whole catalogue for the
page. Points a table marks ``derive=("softmax"|"argmax", source)`` are computed here from their source.

Activations are stored under their capture name with a leading sample axis ``(S, ...)``; tensors whose
first dim is ``masked`` (the MLM head, which BERT computes for the masked tokens only) are split per
sample and padded to the largest number of masked tokens (``samples[i]["masked_positions"]`` says how
many rows are real).
Weights are stored under their parameter names (``bert.encoder.layer.0.attention.self.query.weight``).
A tensor that is bit-identical to an earlier one in the same snapshot (dropout in eval mode, a
block's input that is the previous block's output) is stored once and listed in the snapshot's
``aliases``.

Size bound (``max_bytes``, the whole record directory, manifest included), in this order:

1. At the first snapshot the recorder measures one snapshot and plans for the number of snapshots
   the spec will take (finite ``epochs``/``steps`` lists, else ``expected_snapshots``, else 20).
   While the plan does not fit it drops whole tensors, lowest priority first and, within a
   priority, the largest first: weights with a vocabulary axis (word embeddings / tied decoder),
   then the other weight matrices, then redundant activations (``*.hidden_states``, ``*.dropout``,
   ``key_transposed``, ``context_permute``, raw ``scores``), then the per-layer linear outputs
   before the head split and the FFN intermediates, then biases and LayerNorm weights. The core
   activations (embeddings, per-head Q/K/V, scaled scores, probabilities, context, add & norm,
   layer outputs, pooler, MLM/NSP heads) and the inputs are never dropped. Dropped names are listed
   in ``manifest["dropped"]``.
2. When a snapshot would still overflow the bound it *thins*: every second snapshot after the first
   is deleted and from then on only every second wanted snapshot is taken (the stride doubles).
   A snapshot that cannot fit even then is skipped and listed in ``manifest["skipped"]``.
   The bound is never exceeded; a bound too small for a single snapshot raises ``ValueError``.

Recording never touches the global torch RNG: the forward runs in eval mode under ``no_grad``
(dropout off), and the model's train/eval mode is restored afterwards.
"""
from __future__ import annotations

import fnmatch
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from glassbert.capture import CORE, Capture, Point, catalogue, points_of
from glassbert.errors import InputError
from glassbert.recording.spec import RecordSpec
from glassbert.recording.store import (MANIFEST, MANIFEST_VERSION, RECORD_DIR, choose_dropped, load_manifest,
                                       safetensors_bytes, tensor_bytes)
from glassbert.runfiles import atomic_write_text, atomic_write_with
from glassbert.tokenizer import IGNORE_INDEX

DEFAULT_MAX_BYTES = 200_000_000
DEFAULT_EXPECTED_SNAPSHOTS = 20
FULL_VOCAB_LIMIT = 5000
TOPK = 5
_MANIFEST_RESERVE = 256_000  # room kept for the manifest inside the bound


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
def _to_cpu_batch(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.detach().cpu()
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple, int)):
            out[k] = torch.as_tensor(v)
    return out


def _accepts(model: torch.nn.Module, arg: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return arg in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _has_role(model: torch.nn.Module, role: str) -> bool:
    """Does any module of ``model`` declare a capture point with this role (e.g. an MLM head's logits)?"""
    return any(p.role == role for m in model.modules() if (t := points_of(m)) is not None for p in t.points)


def _storage_dtype(dtype: str, config: Mapping[str, Any]) -> torch.dtype:
    if dtype == "auto":
        big = int(config.get("hidden_size", 0)) >= 256
        return torch.float16 if big else torch.float32
    return {"float16": torch.float16, "fp16": torch.float16, "float32": torch.float32,
            "fp32": torch.float32}[dtype]


@dataclass
class _Plan:
    dropped: list[str] = field(default_factory=list)
    per_snapshot: int = 0
    expected: int = 0


class Recorder:
    """Record snapshots of a model's capture points for a fixed set of samples.

    ``samples`` is a batch dict (``input_ids``, ``token_type_ids``, ``attention_mask`` and, for
    pretraining, ``labels`` with IGNORE_INDEX (-100) on unmasked tokens and ``next_sentence_label``), e.g. the
    tokenizer's Batch or one pretraining batch. ``spec`` (a :class:`RecordSpec` or its string) picks
    rows (``samples=``) and the epochs/steps; ``include`` (fnmatch globs or a callable) restricts
    the activations and weights recorded. ``texts`` (one per row, optional) is shown as the input
    text; without it the text is decoded from the ids with the masked tokens restored.
    """

    def __init__(self, run_dir: str | Path, samples: Mapping[str, Any], tokenizer: Any = None,
                 spec: RecordSpec | str | None = None, *,
                 include: Sequence[str] | Callable[[str], bool] | None = None,
                 max_bytes: int | float = DEFAULT_MAX_BYTES, dtype: str = "auto",
                 expected_snapshots: int | None = None, texts: Sequence[str] | None = None,
                 weights: bool = True, metrics: str | None = "metrics.jsonl", resume: bool = False):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / RECORD_DIR
        self.spec = spec if isinstance(spec, RecordSpec) else RecordSpec.parse(spec)
        self.tokenizer = tokenizer
        self.max_bytes = int(max_bytes)
        if self.max_bytes <= 0:
            raise InputError("max_bytes must be positive")
        self.dtype_name = dtype
        self.expected_snapshots = expected_snapshots
        self.include = include
        self.record_weights = weights
        self.metrics = metrics

        batch = _to_cpu_batch(samples)
        if "input_ids" not in batch:
            raise InputError("samples must contain input_ids")
        n = batch["input_ids"].shape[0]
        rows = list(range(n)) if self.spec.samples is None else list(self.spec.samples)
        bad = [r for r in rows if not 0 <= r < n]
        if bad:
            raise InputError(f"--record samples {bad} outside the {n} samples available")
        self.rows = rows
        idx = torch.tensor(rows, dtype=torch.long)
        self.batch = {k: v.index_select(0, idx) for k, v in batch.items() if v.dim() >= 1 and v.shape[0] == n}
        ids = self.batch["input_ids"]
        self.batch.setdefault("attention_mask", torch.ones_like(ids))
        self.batch.setdefault("token_type_ids", torch.zeros_like(ids))
        self.texts = list(texts) if texts is not None else None
        if self.texts is not None and len(self.texts) == n and n != len(rows):
            self.texts = [self.texts[r] for r in rows]

        self._seen_epochs: set[int] = set()
        self._seen_steps: set[int] = set()
        self._wanted = 0
        self._stride = 1
        self._plan: _Plan | None = None
        self._sample_info = self._describe_samples()
        self.manifest: dict[str, Any] | None = None
        if resume and (self.dir / MANIFEST).exists():
            self._resume()

    # -- samples -------------------------------------------------------------------------------
    def _tokens(self, ids: Sequence[int]) -> list[str]:
        if self.tokenizer is None:
            return [str(i) for i in ids]
        return list(self.tokenizer.convert_ids_to_tokens(list(ids)))

    def _masked_positions(self) -> list[list[int]]:
        ids, labels = self.batch["input_ids"], self.batch.get("labels")
        mask_id = getattr(self.tokenizer, "mask_token_id", None)
        out = []
        for i in range(ids.shape[0]):
            if labels is not None:
                out.append([int(p) for p in (labels[i] != IGNORE_INDEX).nonzero().flatten()])
            elif mask_id is not None:
                out.append([int(p) for p in (ids[i] == mask_id).nonzero().flatten()])
            else:
                out.append([])
        return out

    def _describe_samples(self) -> list[dict[str, Any]]:
        ids, tt, am = self.batch["input_ids"], self.batch["token_type_ids"], self.batch["attention_mask"]
        labels, nsp = self.batch.get("labels"), self.batch.get("next_sentence_label")
        self.masked_positions = self._masked_positions()
        info = []
        for i, row in enumerate(self.rows):
            real = int(am[i].sum())
            id_list = [int(x) for x in ids[i]]
            pos = self.masked_positions[i]
            true_ids = [int(labels[i, p]) for p in pos] if labels is not None else []
            original = list(id_list)
            for p, t in zip(pos, true_ids):
                original[p] = t
            if self.texts is not None:
                text = self.texts[i]
            elif self.tokenizer is not None:
                text = self.tokenizer.decode(original[:real], skip_special_tokens=True)
            else:
                text = " ".join(map(str, original[:real]))
            info.append({
                "index": row,
                "text": text,
                "tokens": self._tokens(id_list),
                "input_ids": id_list,
                "token_type_ids": [int(x) for x in tt[i]],
                "attention_mask": [int(x) for x in am[i]],
                "length": real,
                "masked_positions": pos,
                "masked_ids": true_ids,
                "masked_tokens": self._tokens(true_ids) if true_ids else [],
                "is_next": None if nsp is None else bool(int(nsp[i]) == 0),
            })
        return info

    # -- when ----------------------------------------------------------------------------------
    def wants(self, epoch: int, step: int, last: bool = False) -> bool:
        s = self.spec
        if last and s.last:
            return True
        if s.unconditional:
            return epoch not in self._seen_epochs
        by_epoch = epoch not in self._seen_epochs and (
            epoch in s.epochs or (s.every is not None and epoch % s.every == 0))
        by_step = step not in self._seen_steps and (
            step in s.steps or (s.every_steps is not None and step % s.every_steps == 0))
        return by_epoch or by_step

    def maybe_record(self, epoch: int, step: int, model: torch.nn.Module, last: bool = False) -> bool:
        """Record a snapshot if the spec asks for this (epoch, step); returns whether it did.

        Call it once per epoch (or per step); pass ``last=True`` on the final call so that
        ``epochs=...,last`` records the trained model.
        """
        if not self.wants(epoch, step, last):
            return False
        snaps = self.manifest["snapshots"] if self.manifest is not None else []
        if last and snaps and (snaps[-1]["epoch"], snaps[-1]["step"]) == (epoch, step):
            return False  # the trained model is already the latest snapshot
        self._seen_epochs.add(epoch)
        self._seen_steps.add(step)
        self._wanted += 1
        if not last and (self._wanted - 1) % self._stride:
            return False
        return self.record(model, epoch, step)

    # -- capture -------------------------------------------------------------------------------
    def _included(self, name: str) -> bool:
        inc = self.include
        if inc is None:
            return True
        if callable(inc):
            return bool(inc(name))
        return any(fnmatch.fnmatchcase(name, g) for g in inc)

    def _forward(self, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Point], Any]:
        device = next(model.parameters()).device
        inputs = {k: self.batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
        # MLM labels only for models with an MLM head (a classifier's `labels` mean something else)
        if "labels" in self.batch and _has_role(model, "mlm_logits") and _accepts(model, "labels") \
                and self.batch["labels"].shape == self.batch["input_ids"].shape:
            inputs["labels"] = self.batch["labels"].to(device)
        if "next_sentence_label" in self.batch and _accepts(model, "next_sentence_label"):
            inputs["next_sentence_label"] = self.batch["next_sentence_label"].to(device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), Capture(model) as cap:
                out = model(**inputs)
        finally:
            model.train(was_training)
        return dict(cap.records), dict(cap.points), out

    def _per_sample(self, records: Mapping[str, torch.Tensor], points: Mapping[str, Point],
                    out: Any) -> dict[str, torch.Tensor]:
        """Capture records → tensors with a leading sample axis (rows of ``masked`` points split per sample)."""
        B, T = self.batch["input_ids"].shape
        counts = [len(p) for p in self.masked_positions]
        mmax = max(counts) if counts else 0
        # flat (b*T + t) index of every masked row, in the order BERT gathers them
        masked_flat = getattr(out, "masked_index", None)
        gathered = masked_flat is not None  # the MLM head ran on the masked rows only
        if masked_flat is None:
            masked_flat = torch.tensor([b * T + p for b, ps in enumerate(self.masked_positions) for p in ps],
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

    def _derived(self, model: torch.nn.Module, acts: dict[str, torch.Tensor]) -> dict[str, Point]:
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

    def _snapshot_tensors(self, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict, Any, dict[str, str]]:
        records, points, out = self._forward(model)
        acts = self._per_sample(records, points, out)
        points.update(self._derived(model, acts))
        dtype = _storage_dtype(self.dtype_name, self._config_dict(model))
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, dict[str, Any]] = {}
        for name, t in acts.items():
            if not self._included(name):
                continue
            t = t.to(dtype) if t.is_floating_point() else t.to(torch.int32)
            tensors[name] = t.clone(memory_format=torch.contiguous_format)  # no shared storage (views)
            point = points[name]
            dims = list(point.dims) if len(point.dims) == t.dim() - 1 else [f"d{i}" for i in range(t.dim() - 1)]
            meta[name] = {"shape": list(t.shape[1:]), "dims": dims, "kind": "activation",
                          "label": point.label, "priority": point.priority}
        if self.record_weights:
            vocab = int(self._config_dict(model).get("vocab_size", -1))
            for pname, p in model.named_parameters():
                if not self._included(pname):
                    continue
                if pname in tensors:
                    raise InputError(f"parameter name {pname!r} collides with a capture point")
                w = p.detach().cpu()
                w = w.to(dtype) if w.is_floating_point() else w
                tensors[pname] = w.clone(memory_format=torch.contiguous_format)
                dims, label, prio = describe_weight(pname, list(w.shape), vocab)
                meta[pname] = {"shape": list(w.shape), "dims": dims, "kind": "weight", "label": label,
                               "priority": prio}
        roles = {point.role: name for name, point in points.items() if point.role}
        return tensors, meta, out, roles

    @staticmethod
    def _aliases(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, str]:
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

    # -- predictions ---------------------------------------------------------------------------
    def _predictions(self, acts: Mapping[str, torch.Tensor], roles: Mapping[str, str]) -> list[dict[str, Any]]:
        logits_name = roles.get("mlm_logits") if roles.get("mlm_logits") in acts else None
        nsp_name = roles.get("nsp_logits") if roles.get("nsp_logits") in acts else None
        preds = []
        for i, info in enumerate(self._sample_info):
            p: dict[str, Any] = {"masked_true_ids": info["masked_ids"]}
            k = len(info["masked_positions"])
            if logits_name is not None and k:
                logits = acts[logits_name][i, :k].float()
                probs = torch.softmax(logits, dim=-1)
                top = probs.topk(min(TOPK, probs.shape[-1]), dim=-1)
                p["masked_pred_ids"] = [int(x) for x in logits.argmax(-1)]
                p["masked_topk_ids"] = [[int(x) for x in row] for row in top.indices]
                p["masked_topk_probs"] = [[round(float(x), 4) for x in row] for row in top.values]
                for row in p["masked_topk_ids"]:
                    self._note_vocab(row)
            if nsp_name is not None:
                nl = acts[nsp_name][i].float()
                prob = torch.softmax(nl, dim=-1)
                p["is_next_pred"] = bool(int(nl.argmax()) == 0)
                p["is_next_prob"] = round(float(prob[0]), 4)
            preds.append(p)
        return preds

    def _note_vocab(self, ids: Iterable[int]) -> None:
        if self.manifest is None or isinstance(self.manifest["vocab"], list):
            return
        vocab = self.manifest["vocab"]
        new = [i for i in ids if str(i) not in vocab]
        for i, tok in zip(new, self._tokens(new)):
            vocab[str(i)] = tok

    # -- manifest ------------------------------------------------------------------------------
    @staticmethod
    def _config_dict(model: torch.nn.Module) -> dict[str, Any]:
        cfg = getattr(model, "config", None)
        if cfg is None:
            return {}
        d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
        d = dict(d)
        for key in ("attention_head_size", "intermediate_size"):
            if key not in d and hasattr(cfg, key):
                d[key] = getattr(cfg, key)
        return json.loads(json.dumps(d, default=str))

    def _new_manifest(self, model: torch.nn.Module) -> dict[str, Any]:
        cfg = self._config_dict(model)
        vocab_size = int(cfg.get("vocab_size", 0) or 0)
        tok = self.tokenizer
        if tok is not None and vocab_size and vocab_size <= FULL_VOCAB_LIMIT:
            size = min(vocab_size, getattr(tok, "vocab_size", vocab_size))
            vocab: Any = self._tokens(range(size))
        else:
            used = sorted({i for s in self._sample_info for i in s["input_ids"] + s["masked_ids"]})
            vocab = dict(zip(map(str, used), self._tokens(used)))
        prefix = "bert." if any(n.startswith("bert.") for n, _ in model.named_parameters()) else ""
        return {
            "version": MANIFEST_VERSION,
            "run_name": self.run_dir.resolve().name,
            "model": type(model).__name__,
            "prefix": prefix,
            "config": cfg,
            "record_spec": str(self.spec),
            "vocab": vocab,
            "special_tokens": sorted({t for s in self._sample_info for t in s["tokens"]
                                      if t.startswith("[") and t.endswith("]")}),
            "samples": self._sample_info,
            "snapshots": [],
            "skipped": [],
            "tensors": {},
            "metrics": self.metrics,
            "size_limit_bytes": self.max_bytes,
            "dtype": str(_storage_dtype(self.dtype_name, cfg)).replace("torch.", ""),
            "dropped": [],
            "snapshot_bytes": 0,
            "catalogue": catalogue(model),
        }

    def _resume(self) -> None:
        manifest = load_manifest(self.run_dir)
        if [s["input_ids"] for s in manifest["samples"]] != [s["input_ids"] for s in self._sample_info]:
            raise InputError(f"{self.dir}: an existing record has other samples; use another run dir")
        self.manifest = manifest
        self._plan = _Plan(dropped=list(manifest["dropped"]), per_snapshot=0, expected=0)
        for s in manifest["snapshots"]:
            self._seen_epochs.add(int(s["epoch"]))
            self._seen_steps.add(int(s["step"]))

    def _plan_sizes(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                    aliases: Mapping[str, str]) -> _Plan:
        expected = self.spec.planned() or self.expected_snapshots or DEFAULT_EXPECTED_SNAPSHOTS
        budget = (self.max_bytes - _MANIFEST_RESERVE) / max(1, expected)
        stored = {n: tensor_bytes(t) for n, t in tensors.items() if n not in aliases}
        # a tensor that stores the values of a core alias stays
        backs_core = frozenset(target for a, target in aliases.items() if meta[a]["priority"] >= CORE)
        dropped = choose_dropped(stored, meta, budget, keep_from=CORE, protected=backs_core)
        total = sum(stored.values()) - sum(stored[n] for n in dropped)
        # an alias of a dropped tensor must go too (its storage went with it)
        dropped += [a for a, target in aliases.items() if target in dropped]
        return _Plan(dropped=dropped, per_snapshot=int(total), expected=expected)

    # -- writing -------------------------------------------------------------------------------
    def _bytes_on_disk(self) -> int:
        assert self.manifest is not None
        return sum(int(s["bytes"]) for s in self.manifest["snapshots"])

    def _thin(self) -> None:
        """Delete every second snapshot after the first; future snapshots at twice the spacing."""
        assert self.manifest is not None
        snaps = self.manifest["snapshots"]
        keep, gone = [], []
        for i, s in enumerate(snaps):
            (keep if i == 0 or i % 2 == 0 else gone).append(s)
        for s in gone:
            (self.dir / s["file"]).unlink(missing_ok=True)
        self.manifest["snapshots"] = keep
        self.manifest.setdefault("thinned", []).extend(
            {"epoch": s["epoch"], "step": s["step"]} for s in gone)
        self._stride *= 2

    def record(self, model: torch.nn.Module, epoch: int = 0, step: int = 0) -> bool:
        """Record one snapshot now (whatever the spec says); False when the bound forced a skip."""
        tensors, meta, out, roles = self._snapshot_tensors(model)
        if self.manifest is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for old in self.dir.glob("snap-*.safetensors"):
                old.unlink()
            self.manifest = self._new_manifest(model)
        elif self.manifest["version"] != MANIFEST_VERSION:  # resuming a record of an older glassbert
            self.manifest.update(version=MANIFEST_VERSION, catalogue=catalogue(model))
        aliases = self._aliases(tensors, meta)
        if self._plan is None:
            self._plan = self._plan_sizes(tensors, meta, aliases)
            self.manifest["dropped"] = sorted(self._plan.dropped)
        acts = {n: t for n, t in tensors.items() if meta[n]["kind"] == "activation"}
        predictions = self._predictions(acts, roles)
        dropped = set(self._plan.dropped)
        aliases = {a: t for a, t in aliases.items() if a not in dropped and t not in dropped}
        store = {n: t for n, t in tensors.items() if n not in dropped and n not in aliases}
        for n, m in meta.items():
            if n in dropped:
                continue
            self.manifest["tensors"].setdefault(n, dict(m))
        metadata = {"epoch": str(epoch), "step": str(step)}
        size = safetensors_bytes(store, metadata)
        entry = {"epoch": int(epoch), "step": int(step), "file": "", "bytes": size,
                 "aliases": aliases, "predictions": predictions}

        def fits() -> bool:
            probe = dict(self.manifest, snapshots=self.manifest["snapshots"] + [entry])
            manifest_bytes = len(json.dumps(probe, ensure_ascii=False, separators=(",", ":")).encode()) + 64
            return self._bytes_on_disk() + size + manifest_bytes <= self.max_bytes

        while not fits() and len(self.manifest["snapshots"]) > 1:
            self._thin()
        if not fits():
            if not self.manifest["snapshots"]:
                raise InputError(
                    f"record size bound {self.max_bytes} bytes is too small for one snapshot "
                    f"({size} bytes after dropping {len(self._plan.dropped)} tensors); raise max_bytes "
                    "or record fewer samples")
            self.manifest["skipped"].append({"epoch": int(epoch), "step": int(step), "reason": "size bound"})
            self._write_manifest()
            return False
        index = self.manifest.get("next_index", 0)
        entry["file"] = f"snap-{index:06d}.safetensors"
        self.manifest["next_index"] = index + 1
        from safetensors.torch import save_file

        atomic_write_with(self.dir / entry["file"], lambda tmp: save_file(store, str(tmp), metadata=metadata))
        actual = (self.dir / entry["file"]).stat().st_size
        entry["bytes"] = actual
        self.manifest["snapshots"].append(entry)
        self._write_manifest()
        return True

    def _write_manifest(self) -> None:
        assert self.manifest is not None
        self.manifest["snapshot_bytes"] = self._bytes_on_disk()
        text = json.dumps(self.manifest, ensure_ascii=False, separators=(",", ":"))
        atomic_write_text(self.dir / MANIFEST, text)


def record_once(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str | tuple[str, str]],
                out_dir: str | Path, *, include: Sequence[str] | None = None,
                max_bytes: int | float = DEFAULT_MAX_BYTES, max_length: int | None = None,
                dtype: str = "auto") -> Path:
    """One snapshot of any checkpoint on the given texts (strings or (a, b) pairs) → ``out_dir``.

    Text with ``[MASK]`` tokens gets its MLM head recorded at those positions (for models with one).
    Returns the run directory, ready for :func:`glassbert.explorer.serve` / ``export_html``.
    """
    if not texts:
        raise InputError("record_once needs at least one text")
    firsts = [t[0] if isinstance(t, (tuple, list)) else t for t in texts]
    seconds = [t[1] if isinstance(t, (tuple, list)) else None for t in texts]
    kwargs: dict[str, Any] = {"padding": True}
    if max_length is not None:
        kwargs.update(max_length=max_length, truncation=True)
    if any(s is not None for s in seconds):
        if not all(s is not None for s in seconds):
            raise InputError("mix of single texts and pairs: give all as pairs or all as single texts")
        batch = tokenizer(firsts, text_pair=seconds, **kwargs)
    else:
        batch = tokenizer(firsts, **kwargs)
    shown = [f"{a} ‖ {b}" if b is not None else a for a, b in zip(firsts, seconds)]
    rec = Recorder(out_dir, dict(batch), tokenizer, RecordSpec(), include=include, max_bytes=max_bytes,
                   expected_snapshots=1, texts=shown, dtype=dtype, metrics=None)
    if not rec.record(model, epoch=0, step=0):
        raise InputError(f"the recording does not fit in {int(max_bytes)} bytes")
    return Path(out_dir)


def record_model(model: str | Path, texts: Sequence[str], out_dir: str | Path, *, pair: bool = False) -> Path:
    """Load a model directory (or an alias such as ``minilm``) as the class its config names, and record one
    snapshot of it on ``texts`` (``pair``: the two texts are one sentence pair) into ``out_dir``."""
    from glassbert.heads import load_model
    from glassbert.tokenizer import Tokenizer

    if not texts:
        raise InputError(f"{model} holds no recording ({RECORD_DIR}/{MANIFEST}): give one or more texts to "
                         "record a snapshot of the model, or record a run with `glassbert demo` / "
                         "`glassbert pretrain --record ...`")
    if pair and len(texts) != 2:
        raise InputError(f"a pair is two texts, got {len(texts)}")
    tokenizer = Tokenizer.from_pretrained(model)
    items: list = [tuple(texts)] if pair else list(texts)
    return record_once(load_model(model), tokenizer, items, out_dir)


class RecordCallback:
    """The Trainer callback that feeds a :class:`Recorder`: pretraining, the demo and fine-tuning use it.

    It offers every (epoch, step) to ``maybe_record`` — before the first step, after each step, and
    at the end with ``last=True`` — on rank 0 only; the recorder's spec decides what is recorded.
    """

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def _offer(self, trainer: Any, last: bool = False) -> None:
        if trainer.is_main:
            self.recorder.maybe_record(trainer.state.epoch, trainer.state.step, trainer.model, last=last)

    def on_train_begin(self, trainer: Any) -> None:
        self._offer(trainer)

    def on_step_end(self, trainer: Any, loss: float) -> None:
        self._offer(trainer)

    def on_train_end(self, trainer: Any, summary: Any) -> None:
        self._offer(trainer, last=True)
