"""Recorder: snapshots of every named tensor inside BERT, for chosen samples at chosen epochs/steps.

A snapshot (:mod:`glassbert.recording.snapshot`) is one eval-mode forward pass under Capture plus the
model's weights, written as one safetensors file (the layout is in :mod:`glassbert.recording.store`);
the manifest carries what each tensor is and the model's whole capture catalogue for the page.
Activations are stored under their capture name with a leading sample axis ``(S, ...)``; MLM rows are
padded per sample (``samples[i]["masked_positions"]`` says how many rows are real).
Weights are stored under their parameter names (``bert.encoder.layer.0.attention.self.query.weight``): every
one in float32 in the first snapshot (the base) and, in each later one, what changed since
(:mod:`glassbert.recording.weights`: an embedding table's rows that training touched, the other weights whole or,
when the bound has no room, as float16 or int8 differences), so that every snapshot's model can be rebuilt exactly,
or within an error the snapshot states; readers see them whole through :class:`~glassbert.recording.store.RecordStore`.
A tensor that is bit-identical to an earlier one in the same snapshot (dropout in eval mode, a
block's input that is the previous block's output) is stored once and listed in the snapshot's
``aliases``.

Size bound (``max_bytes``, the whole record directory, manifest included), in this order:

1. At the first snapshot the recorder measures one snapshot and plans for the number of snapshots
   the spec will take (finite ``epochs``/``steps`` lists, else ``expected_snapshots`` — which
   RecordCallback counts from the run's length when the run has one — else 20).
   When the float32 base, every planned snapshot's activations and the smallest changes (int8) of the later
   ones fit, it keeps the weights as base and changes: each later snapshot then stores the most exact encoding
   (exact, float16, int8) that fits its share of the room left, or no weights (``"weights": "none"``: the
   what-if is refused there). Otherwise the weights are stored whole in the storage dtype (the older layout),
   and while the plan does not fit it drops whole tensors, lowest priority first and, within a
   priority, the largest first: weights with a vocabulary axis (word embeddings / tied decoder),
   then the other weight matrices, then redundant activations (``*.hidden_states``, ``*.dropout``,
   ``key_transposed``, ``context_permute``, raw ``scores``), then the per-layer linear outputs
   before the head split and the FFN intermediates, then biases and LayerNorm weights. The core
   activations (embeddings, per-head Q/K/V, scaled scores, probabilities, context, add & norm,
   layer outputs, pooler, MLM/NSP heads) and the inputs are never dropped. Dropped names are listed
   in ``manifest["dropped"]``, and dropped weights are said in one line (``say``; W tok, W_1, … and how
   many snapshots would keep them: :func:`dropped_weights_note`).
2. When a snapshot would still overflow the bound it *thins*: every second snapshot after the first
   is deleted and from then on only every second wanted snapshot is taken (the stride doubles).
   A snapshot that cannot fit even then is skipped and listed in ``manifest["skipped"]``.
   The bound is never exceeded; a bound too small for a single snapshot raises ``ValueError``.

Attributions (models with a head, unless the spec says ``explain=none``): each snapshot entry also holds
every sample's integrated gradients and layer conductance by the model as it is at that moment
(:mod:`glassbert.recording.attribution`); they cost training time, a few forward and backward passes of
the recorded samples per snapshot.

Recording never touches the global torch RNG: the forward runs in eval mode under ``no_grad``
(dropout off), the attributions in eval mode too (gradients with respect to the embeddings only, never
accumulated into the parameters' ``.grad``), and the model's train/eval mode is restored afterwards.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from glassbert.capture import CORE, catalogue
from glassbert.errors import InputError
from glassbert.registry import architecture_of
from glassbert.recording.attribution import ABOUT, has_head, record_attributions
from glassbert.recording.snapshot import (PAIR_LABEL_ARGS, config_dict, find_aliases, storage_dtype, take,
                                          to_cpu_batch)
from glassbert.recording.spec import RecordSpec
from glassbert.recording.store import (MANIFEST, MANIFEST_RESERVE, MANIFEST_VERSION, RECORD_DIR, SizePlan, choose_dropped,
                                      dropped_weights_note, load_manifest, safetensors_bytes, tensor_bytes)
from glassbert.recording.weights import (DECAY_FILE, ENCODINGS, DecayLog, Track, encode, plan_later_bytes, step_factors,
                                         table_names, tied_names)
from glassbert.runfiles import atomic_write_text, atomic_write_with
from glassbert.tokenizer import IGNORE_INDEX

DEFAULT_MAX_BYTES = 200_000_000
DEFAULT_EXPECTED_SNAPSHOTS = 20
FULL_VOCAB_LIMIT = 5000
TOPK = 5


def pair_labels(model: torch.nn.Module) -> list[str]:
    """The names of the sentence-pair head's classes 0 and 1: ALBERT's SOP (InOrder, Swapped), else NSP's."""
    return list(architecture_of(model).pair_names)


class Recorder:
    """Record snapshots of a model's capture points for a fixed set of samples.

    ``samples`` is a batch dict (``input_ids``, ``token_type_ids``, ``attention_mask`` and, for
    pretraining, ``labels`` with IGNORE_INDEX (-100) on unmasked tokens and the pair labels: BERT's
    ``next_sentence_label`` or ALBERT's ``sentence_order_label``, 0 = IsNext / in order), e.g. the
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
                 weights: bool = True, metrics: str | None = "metrics.jsonl", resume: bool = False,
                 say: Callable[[str], None] | None = None):
        self.run_dir = Path(run_dir)
        self.say = say or logging.getLogger(__name__).warning  # the line on weights the size bound leaves out
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

        batch = to_cpu_batch(samples)
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
        self._plan: SizePlan | None = None
        self._track: Track | None = None              # the weights as a base and changes (recording.weights)
        self._decay: DecayLog | None = None           # the tables' decay factors, step by step (RecordCallback)
        self._had_grad: dict[str, bool] = {}
        self._said_weights: set[str] = set()          # the encodings less than exact already said (one line each)
        self._sample_info = self._describe_samples()
        self.manifest: dict[str, Any] | None = None
        if resume and (self.dir / MANIFEST).exists():
            self._resume()

    # -- samples -------------------------------------------------------------------------------
    def _tokens(self, ids: Sequence[int]) -> list[str]:
        if self.tokenizer is None:
            return [str(i) for i in ids]
        return list(self.tokenizer.convert_ids_to_tokens(list(ids)))

    def _mlm_labels(self) -> torch.Tensor | None:
        """The batch's MLM labels (B, T), or None (none given, or a classifier's labels (B,))."""
        labels = self.batch.get("labels")
        return labels if labels is not None and labels.shape == self.batch["input_ids"].shape else None

    def _class_labels(self) -> torch.Tensor | None:
        """A classifier's gold labels (B,), when the batch holds them."""
        labels = self.batch.get("labels")
        return labels if labels is not None and labels.dim() == 1 else None

    def _masked_positions(self) -> list[list[int]]:
        ids, labels = self.batch["input_ids"], self._mlm_labels()
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
        labels, gold = self._mlm_labels(), self._class_labels()
        nsp = next((self.batch[k] for k in PAIR_LABEL_ARGS if k in self.batch), None)  # NSP or SOP: 0 = first class
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
                **({} if gold is None else {"label": int(gold[i])}),
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

    # -- predictions ---------------------------------------------------------------------------
    def _predictions(self, acts: Mapping[str, torch.Tensor], roles: Mapping[str, str],
                     meta: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Per sample: the MLM head's top words at the masked positions, the pair head's class 0 probability
        (IsNext / InOrder) and a sequence classifier's label (its logits are the activation with dims
        ``(label,)``) with every class's probability."""
        logits_name = roles.get("mlm_logits") if roles.get("mlm_logits") in acts else None
        nsp_name = roles.get("nsp_logits") if roles.get("nsp_logits") in acts else None
        clf_name = roles.get("class_logits") if roles.get("class_logits") in acts else None
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
            if clf_name is not None:
                prob = torch.softmax(acts[clf_name][i].float(), dim=-1)
                p["label_pred"] = int(prob.argmax())
                p["label_probs"] = [round(float(x), 4) for x in prob]
            preds.append(p)
        return preds

    def _attributions(self, model: torch.nn.Module) -> list[list[dict[str, Any]]] | None:
        """Each sample's attributions by the model as it is now (see recording.attribution), or None: not asked
        for (``explain=none``), a bare encoder, or no tokenizer to name the tokens."""
        if self.spec.explain == "none" or self.tokenizer is None or not has_head(model):
            return None
        return record_attributions(model, self.tokenizer, self._sample_info, self.spec.explain)

    def _note_vocab(self, ids: Iterable[int]) -> None:
        if self.manifest is None or isinstance(self.manifest["vocab"], list):
            return
        vocab = self.manifest["vocab"]
        new = [i for i in ids if str(i) not in vocab]
        for i, tok in zip(new, self._tokens(new)):
            vocab[str(i)] = tok

    # -- manifest ------------------------------------------------------------------------------
    def _new_manifest(self, model: torch.nn.Module) -> dict[str, Any]:
        cfg = config_dict(model)
        vocab_size = int(cfg.get("vocab_size", 0) or 0)
        tok = self.tokenizer
        if tok is not None and vocab_size and vocab_size <= FULL_VOCAB_LIMIT:
            size = min(vocab_size, getattr(tok, "vocab_size", vocab_size))
            vocab: Any = self._tokens(range(size))
        else:
            used = sorted({i for s in self._sample_info for i in s["input_ids"] + s["masked_ids"]})
            vocab = dict(zip(map(str, used), self._tokens(used)))
        # the task model's backbone ("bert." | "albert."), "" for a bare encoder
        base = getattr(model, "base_model_prefix", "")
        prefix = f"{base}." if base and any(n.startswith(f"{base}.") for n, _ in model.named_parameters()) else ""
        return {
            "version": MANIFEST_VERSION,
            "run_name": self.run_dir.resolve().name,
            "model": type(model).__name__,
            "prefix": prefix,
            "pair_labels": pair_labels(model),
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
            "dtype": str(storage_dtype(self.dtype_name, cfg)).replace("torch.", ""),
            "dropped": [],
            "snapshot_bytes": 0,
            "catalogue": catalogue(model),
        }

    def _resume(self) -> None:
        manifest = load_manifest(self.run_dir)
        if [s["input_ids"] for s in manifest["samples"]] != [s["input_ids"] for s in self._sample_info]:
            raise InputError(f"{self.dir}: an existing record has other samples; use another run dir")
        self.manifest = manifest
        self._plan = SizePlan(dropped=list(manifest["dropped"]), per_snapshot=0, expected=0)
        for s in manifest["snapshots"]:
            self._seen_epochs.add(int(s["epoch"]))
            self._seen_steps.add(int(s["step"]))
        layout = manifest.get("weights")
        if layout and manifest["snapshots"]:
            from safetensors import safe_open
            self._decay = DecayLog.read(self.dir / DECAY_FILE) or DecayLog(list(layout["tables"]))
            with safe_open(str(self.dir / layout["base"]), framework="pt") as f:
                tables = {n: f.get_tensor(n) for n in layout["tables"]}
            self._track = Track(self._decay, int(layout["base_step"]), tables)

    # -- the weights' decay, step by step (RecordCallback calls these) --------------------------
    def _tables(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        params = dict(model.named_parameters())
        if self._decay is None:
            self._decay = DecayLog(table_names(model))
        return {n: params[n] for n in self._decay.tables if n in params}

    def note_gradients(self, model: torch.nn.Module) -> None:
        """Before an optimizer step: which tables have a gradient (AdamW leaves one without any alone)."""
        self._had_grad = {n: p.grad is not None for n, p in self._tables(model).items()}

    def note_step(self, step: int, model: torch.nn.Module, optimizer: Any) -> None:
        """After optimizer step ``step``: each table's weight-decay factor in it, which the rebuild replays."""
        tables = self._tables(model)
        assert self._decay is not None
        self._decay.note(step, step_factors(optimizer, tables, self._had_grad))
        self._had_grad = {}

    def resumed_at(self, step: int) -> None:
        """A resumed run goes on from ``step``: factors logged after it belong to steps it takes again."""
        if self._decay is not None:
            self._decay.truncate(step)

    def flush(self) -> None:
        """Write the decay log (at each checkpoint, so that a resumed run has every step's factor); a run without
        weight decay on its tables writes none."""
        path = self.dir / DECAY_FILE
        if self._track is not None and self.manifest is not None and (self._track.log.steps or path.is_file()):
            atomic_write_text(path, self._track.log.to_json())

    def _plan_sizes(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                    aliases: Mapping[str, str]) -> SizePlan:
        expected = self.spec.planned() or self.expected_snapshots or DEFAULT_EXPECTED_SNAPSHOTS
        budget = (self.max_bytes - MANIFEST_RESERVE) / max(1, expected)
        stored = {n: tensor_bytes(t) for n, t in tensors.items() if n not in aliases}
        # a tensor that stores the values of a core alias stays
        backs_core = frozenset(target for a, target in aliases.items() if meta[a]["priority"] >= CORE)
        dropped = choose_dropped(stored, meta, budget, keep_from=CORE, protected=backs_core)
        total = sum(stored.values()) - sum(stored[n] for n in dropped)
        # an alias of a dropped tensor must go too (its storage went with it)
        dropped += [a for a, target in aliases.items() if target in dropped]
        return SizePlan(dropped=dropped, per_snapshot=int(total), expected=expected, whole=sum(stored.values()))

    # -- writing -------------------------------------------------------------------------------
    def _bytes_on_disk(self) -> int:
        assert self.manifest is not None
        return sum(int(s["bytes"]) for s in self.manifest["snapshots"]) + self._decay_bytes()

    def _decay_bytes(self) -> int:
        """The decay log's size once written (it is written with every snapshot and checkpoint)."""
        path = self.dir / DECAY_FILE
        if self._track is not None and (self._track.log.steps or path.is_file()):
            return len(self._track.log.to_json().encode())
        return path.stat().st_size if path.is_file() else 0

    def _expected(self) -> int:
        return self.spec.planned() or self.expected_snapshots or DEFAULT_EXPECTED_SNAPSHOTS

    def _base_fits(self, model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                   aliases: Mapping[str, str]) -> bool:
        """Keep the weights as a float32 base plus changes (recording.weights)? When every parameter is recorded and
        the base, every planned snapshot's activations and the smallest changes (int8) of the later ones fit."""
        params = {n: list(p.shape) for n, p in model.named_parameters()}
        weights = {n for n in tensors if meta[n]["kind"] == "weight"}
        if not self.record_weights or not params or weights != set(params):
            return False
        expected = self._expected()
        acts = sum(tensor_bytes(t) for n, t in tensors.items() if meta[n]["kind"] == "activation" and n not in aliases)
        base = sum(4 * tensors[n].numel() for n in weights)
        later = plan_later_bytes(params, table_names(model), tied_names(model), "int8")
        return MANIFEST_RESERVE + base + expected * acts + (expected - 1) * later <= self.max_bytes

    def _start_weights(self, model: torch.nn.Module, entry_file: str, step: int,
                       weights: Mapping[str, torch.Tensor]) -> None:
        assert self.manifest is not None
        tables = table_names(model)
        if self._decay is None or self._decay.tables != tables:
            self._decay = DecayLog(tables)
        self._decay.steps = {s: f for s, f in self._decay.steps.items() if s > step}  # the base has them
        self._track = Track(self._decay, step, {n: weights[n] for n in tables})
        self.manifest["weights"] = {"layout": "base+changes", "base": entry_file, "base_step": int(step),
                                    "tables": tables, "decay": DECAY_FILE}

    def _later_weights(self, weights: Mapping[str, torch.Tensor], step: int, store: Mapping[str, torch.Tensor],
                       metadata: Mapping[str, str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What a later snapshot stores of its weights: the most exact encoding whose bytes fit the snapshot's share
        of the room left (the bound less what is on disk, over the snapshots still planned), else none."""
        from safetensors import safe_open

        assert self._track is not None and self.manifest is not None
        self._track.advance(step)
        left = max(1, self._expected() - len(self.manifest["snapshots"]))
        room = (self.max_bytes - MANIFEST_RESERVE - self._bytes_on_disk()) / left
        with safe_open(str(self.dir / self.manifest["weights"]["base"]), framework="pt") as f:
            base = {n: f.get_tensor(n) for n in weights}
        for encoding in ENCODINGS:
            enc = encode(weights, base, self._track.shadows, encoding)
            if safetensors_bytes({**store, **enc.tensors}, metadata) <= room:
                info = {"weights": encoding, "weights_error": enc.error,
                        "decay": self._track.log.fingerprint(self._track.base_step, step)}
                self._say_weights(encoding, step, enc.error)
                return enc.tensors, info
        self._say_weights("none", step, 0.0)
        return {}, {"weights": "none"}

    def _say_weights(self, encoding: str, step: int, error: float) -> None:
        """One line the first time the bound makes a snapshot's weights less than exact (per kind)."""
        if encoding == "exact" or encoding in self._said_weights:
            return
        self._said_weights.add(encoding)
        what = ("keeps no weights: the what-if is refused there" if encoding == "none" else
                f"keeps its weight matrices as {encoding} differences from the first snapshot (within {error:.1e}; "
                "the embedding tables stay exact)")
        self.say(f"--record: to fit its {self.max_bytes / 1e6:.0f} MB bound, the snapshot of step {step} {what}; "
                 "a larger bound or fewer snapshots keep them exact")

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
        snap = take(model, self.batch, self.masked_positions, include=self.include,
                             dtype_name=self.dtype_name, weights=self.record_weights, weight_dtype=torch.float32)
        tensors, meta, roles = snap.tensors, snap.meta, snap.roles
        weights = {n: t for n, t in tensors.items() if meta[n]["kind"] == "weight"}
        if self.manifest is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for old in self.dir.glob("snap-*.safetensors"):
                old.unlink()
            self.manifest = self._new_manifest(model)
        elif self.manifest["version"] != MANIFEST_VERSION:  # resuming a record of an older glassbert
            self.manifest.update(version=MANIFEST_VERSION, catalogue=catalogue(model))
        aliases = find_aliases(tensors, meta)
        first = self._plan is None
        if first and self._base_fits(model, tensors, meta, aliases):
            self._plan = SizePlan(dropped=[], per_snapshot=0, expected=self._expected())
        if self._track is None and not (first and self._plan is not None):  # the weights whole, in the storage dtype
            dtype = storage_dtype(self.dtype_name, config_dict(model))
            tensors = {n: t.to(dtype) if n in weights and t.is_floating_point() else t for n, t in tensors.items()}
            weights = {}
        if self._plan is None:
            self._plan = self._plan_sizes(tensors, meta, aliases)
            self.manifest["dropped"] = sorted(self._plan.dropped)
            note = dropped_weights_note(self._plan, meta, self.manifest["catalogue"], self.max_bytes)
            if note:
                self.say(note)
        acts = {n: t for n, t in tensors.items() if meta[n]["kind"] == "activation"}
        predictions = self._predictions(acts, roles, meta)
        attributions = self._attributions(model)
        dropped = set(self._plan.dropped)
        aliases = {a: t for a, t in aliases.items() if a not in dropped and t not in dropped}
        store = {n: t for n, t in tensors.items() if n not in dropped and n not in aliases and n not in weights}
        weight_info: dict[str, Any] = {}
        if weights and self._track is None:  # the first snapshot of a base+changes recording: the base, float32
            store.update(weights)
            weight_info = {"weights": "exact", "weights_error": 0.0}
        elif weights:
            stored, weight_info = self._later_weights(weights, step, store, {"epoch": str(epoch), "step": str(step)})
            store.update(stored)
        for n, m in meta.items():
            if n in dropped:
                continue
            self.manifest["tensors"].setdefault(n, dict(m))
        metadata = {"epoch": str(epoch), "step": str(step)}
        size = safetensors_bytes(store, metadata)
        entry = {"epoch": int(epoch), "step": int(step), "file": "", "bytes": size,
                 "aliases": aliases, "predictions": predictions, **weight_info}
        if attributions is not None:
            entry["attributions"] = attributions
            self.manifest["attribution"] = dict(ABOUT, methods=["ig", "conductance"] if self.spec.explain == "all"
                                                else ["ig"])

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
        if weights and self._track is None:
            self._start_weights(model, entry["file"], step, weights)
        self.manifest["snapshots"].append(entry)
        self.flush()
        self._write_manifest()
        return True

    def _write_manifest(self) -> None:
        assert self.manifest is not None
        self.manifest["snapshot_bytes"] = self._bytes_on_disk()
        text = json.dumps(self.manifest, ensure_ascii=False, separators=(",", ":"))
        atomic_write_text(self.dir / MANIFEST, text)


class RecordCallback:
    """The Trainer callback that feeds a :class:`Recorder`: pretraining, the demo and fine-tuning use it.

    It offers every (epoch, step) to ``maybe_record`` — before the first step, after each step, and
    at the end with ``last=True`` — on rank 0 only; the recorder's spec decides what is recorded. It also tells
    the recorder each step's weight decay of the embedding tables (what rebuilds their untouched rows exactly:
    :mod:`glassbert.recording.weights`) and writes that log with every checkpoint.
    """

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def _offer(self, trainer: Any, last: bool = False) -> None:
        if trainer.is_main:
            self.recorder.maybe_record(trainer.state.epoch, trainer.state.step, trainer.model, last=last)

    def on_train_begin(self, trainer: Any) -> None:
        rec = self.recorder
        if rec.expected_snapshots is None and rec.spec.planned() is None and getattr(trainer, "total_steps", None):
            rec.expected_snapshots = rec.spec.planned_for(trainer.total_steps, trainer.steps_per_epoch)
        if getattr(trainer, "resumed", False):
            rec.resumed_at(trainer.state.step)
        self._offer(trainer)

    def on_before_optimizer_step(self, trainer: Any) -> None:
        if trainer.is_main:
            self.recorder.note_gradients(trainer.model)

    def on_step_end(self, trainer: Any, loss: float) -> None:
        if trainer.is_main:
            self.recorder.note_step(trainer.state.step, trainer.model, trainer.optimizer)
        self._offer(trainer)

    def on_save(self, trainer: Any, path: Any) -> None:
        if trainer.is_main:
            self.recorder.flush()

    def on_train_end(self, trainer: Any, summary: Any) -> None:
        self._offer(trainer, last=True)
