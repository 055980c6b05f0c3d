"""Live what-if: the explorer's server runs the model on a sentence (or a pair) the user types, with the tokens
they clicked replaced by [MASK], at a recorded snapshot, and records every tensor of that one input.

    whatif = WhatIf(RecordStore("runs/demo"), model=None, scratch=Path(tmp))
    answer = whatif.run(WhatIfInput(text="the cat chased the mouse", pair="it was a fast chase", mask=[2]), snap=3)
    answer.directory     # a recording of one snapshot (record_batch: the recorder's own code), read by RecordStore

Which weights answer: the model the run saved (``RUN/config.json`` + weights, or the model ``explore`` was given)
supplies the architecture and the tokenizer; at snapshot k its parameters are replaced by snapshot k's. A
recording that keeps its weights as a float32 base and changes (:mod:`glassbert.recording.weights`) rebuilds
them at every snapshot, the last one too: exactly (bit for bit) where the size bound allowed it, else within the
error the recorder measured and the answer names (float16 or int8 differences of the matrices; the embedding
tables stay exact); a snapshot the bound left without weights is refused. An older recording answers an earlier
snapshot with the weights it stored (float32 for small models, float16 for hidden sizes ≥ 256) and the last one
with the saved model; when a snapshot lacks some weights (dropped to respect the recorder's size bound) the
what-if there is refused (:class:`WhatIfRefused` names the missing weight): one model's numbers are never
labelled with another snapshot's epoch.
``WhatIf.status(manifest)["snaps"]`` lists the snapshots it runs at, so the page can grey the others out.

``whatif.attribute(given, snap)`` explains the same input with the same weights: integrated gradients and layer
conductance by the recorder's own :func:`~glassbert.recording.attribution.record_attributions` (targets:
:func:`~glassbert.recording.attribution.input_targets`), so the page's attribution view shows the typed input.

Limits: at most :data:`MAX_CHARS` characters per text and :data:`MAX_TOKENS` tokens (or the model's
``max_position_embeddings`` when smaller); :class:`WhatIfRefused` says which limit and what to change.
"""
from __future__ import annotations

import shutil
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glassbert.errors import InputError
from glassbert.recording.store import RecordStore, load_manifest
from glassbert.tokenizer import IGNORE_INDEX

MAX_CHARS = 2000   # characters per text
MAX_TOKENS = 128   # tokens of one what-if input ([CLS] … [SEP] … [SEP])
MAX_MASKS = 20     # clicked tokens per input
KEEP_ANSWERS = 6   # the latest answers kept on disk (the page reads their tensors lazily)
KEEP_EXPLAINED = 16  # the latest attributions kept in memory (the page asks again as the slider comes back)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class WhatIfRefused(InputError):
    """An input the what-if does not run: too long, a bad mask position, … (the server answers 400)."""


@dataclass
class WhatIfInput:
    text: str
    pair: str | None = None
    mask: Sequence[int] = ()           # token positions to replace with [MASK]


@dataclass
class Answer:
    id: int
    directory: Path                    # a recording of one snapshot (RecordStore reads it)
    weights: str                       # which weights answered, in words
    snap: int | None                   # the run's snapshot whose weights answered; None: the saved model
    manifest: dict[str, Any] = field(default_factory=dict)
    note: str = ""                     # e.g. the typed words that are not in the vocabulary (each became [UNK])


def _snap_words(entry: Mapping[str, Any]) -> str:
    return f"epoch {entry['epoch']} · step {entry['step']}"


def unknown_words(tokenizer: Any, text: str, pair: str | None = None) -> list[str]:
    """The words of ``text`` (and ``pair``) that the tokenizer cannot split into its vocabulary: each became one
    [UNK] (a typed "[UNK]" is not counted). In order, each once."""
    unk = tokenizer.specials["unk_token"]
    enc = tokenizer.backend.encode(text, pair) if pair is not None else tokenizer.backend.encode(text)
    texts = (text, pair)
    words: list[str] = []
    for token, (a, b), seq in zip(enc.tokens, enc.offsets, enc.sequence_ids):
        if token != unk or seq is None:
            continue
        word = texts[seq][a:b]
        if word and word != unk and word not in words:
            words.append(word)
    return words


def unknown_note(words: Sequence[str]) -> str:
    """The what-if's note for the words that became [UNK] (the exported page says the same)."""
    return ("not in the vocabulary, so [UNK]: " + ", ".join(f'"{w}"' for w in words)) if words else ""


def model_source(store: RecordStore, model: str | Path | None) -> str | Path | None:
    """The model the what-if runs: ``model`` when given, else the run directory when it holds one."""
    if model is not None:
        from glassbert.modeldir import resolve_model_path
        directory = resolve_model_path(model)  # a path that is not there, or an unknown alias: one line now
        if not (directory / "config.json").is_file():
            raise InputError(f"--model {model}: {directory} holds no config.json (a model directory has "
                             "config.json and its weights)")
        return model
    run = store.run_dir
    if (run / "config.json").is_file() and any((run / f).is_file() for f in _WEIGHT_FILES):
        return run
    return None


def runnable_snaps(manifest: Mapping[str, Any]) -> list[int]:
    """The snapshots the what-if runs at. A recording that keeps its weights as a base and changes: every snapshot
    that holds weights (the size bound may leave a later one without). An older one: every snapshot when it holds
    every weight, else the last one, which the saved model answers."""
    snaps = manifest.get("snapshots") or []
    if not snaps:
        return []
    if manifest.get("weights"):
        return [i for i, s in enumerate(snaps) if s.get("weights", "none") != "none"]
    dropped_weight = any(name.endswith((".weight", ".bias")) or
                         (manifest.get("tensors") or {}).get(name, {}).get("kind") == "weight"
                         for name in manifest.get("dropped") or [])
    has_weights = any(m.get("kind") == "weight" for m in (manifest.get("tensors") or {}).values())
    if has_weights and not dropped_weight:
        return list(range(len(snaps)))
    return [len(snaps) - 1]


class WhatIf:
    """The model of one explorer server, loaded at the first request; one what-if runs at a time."""

    def __init__(self, store: RecordStore, model: str | Path | None, scratch: Path):
        self.store = store
        self.source = model_source(store, model)
        self.scratch = Path(scratch)
        self._lock = threading.Lock()
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None
        self._saved: dict[str, torch.Tensor] | None = None   # the saved model's parameters
        self._loaded: int | None = None                      # the snapshot whose weights are in the model
        self._answers: deque[Answer] = deque()
        self._next = 0
        self._explained: dict[tuple, dict[str, Any]] = {}    # (text, pair, mask, snap) → attribute()'s answer

    # -- what the page is told -------------------------------------------------------------------
    def status(self, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if self.source is None:
            return {"available": False, "reason": f"{self.store.run_dir} holds no model (config.json and weights): "
                                                  "start `glassbert explore RUN --model DIR` to name one"}
        manifest = manifest if manifest is not None else self.store.manifest()
        positions = (manifest.get("config") or {}).get("max_position_embeddings") or MAX_TOKENS
        out = {"available": True, "model": str(self.source), "max_chars": MAX_CHARS,
               "max_tokens": min(MAX_TOKENS, int(positions)), "snaps": runnable_snaps(manifest)}
        n = len(manifest.get("snapshots") or [])
        if len(out["snaps"]) < n and manifest.get("weights"):
            bare = [_snap_words(s) for k, s in enumerate(manifest["snapshots"]) if k not in out["snaps"]]
            out["refused"] = (f"the recorder's size bound left no room for the weights of {len(bare)} snapshot"
                              f"{'s' * (len(bare) != 1)} ({', '.join(bare[:3])}{', …' if len(bare) > 3 else ''}), so "
                              "the what-if does not run there")
        elif len(out["snaps"]) < n:
            gone = [name for name in manifest.get("dropped") or []
                    if (manifest.get("tensors") or {}).get(name, {}).get("kind") == "weight"
                    or name.endswith((".weight", ".bias"))]
            out["refused"] = (f"the recording left out {len(gone) or 'some'} weight tensors "
                              f"({', '.join(gone[:3])}{', …' if len(gone) > 3 else ''}) to fit its size bound, so the "
                              "what-if runs only at the last snapshot (the saved model)")
        return out

    def answer(self, answer_id: int) -> Answer:
        for a in self._answers:
            if a.id == answer_id:
                return a
        raise LookupError(f"what-if {answer_id} is gone (the server keeps the latest {KEEP_ANSWERS}): run it again")

    # -- running ---------------------------------------------------------------------------------
    def _load(self) -> None:
        from glassbert.registry import load_model
        from glassbert.tokenizer import Tokenizer

        self._tokenizer = Tokenizer.from_pretrained(self.source)
        self._model = load_model(self.source).eval()
        self._saved = {n: p.detach().clone() for n, p in self._model.named_parameters()}
        self._loaded = None

    def _use_weights(self, manifest: Mapping[str, Any], snap: int | None) -> tuple[str, int | None]:
        """Put snapshot ``snap``'s recorded weights into the model (the saved model's at the last snapshot, or
        when the snapshot lacks some); returns (what answered, in words; the snapshot used or None)."""
        assert self._model is not None and self._saved is not None
        snaps = manifest["snapshots"]
        saved = f"the model saved in {self.source}"
        if snap is not None and manifest.get("weights"):
            return self._use_rebuilt(manifest, snap)
        if snap is not None and snap < len(snaps) - 1:
            params = dict(self._model.named_parameters())
            recorded: dict[str, torch.Tensor] = {}
            for name, p in params.items():
                try:
                    arr, _ = self.store.tensor(snap, name, manifest=manifest)
                except LookupError:
                    raise WhatIfRefused(
                        f"no what-if at {_snap_words(snaps[snap])}: that snapshot did not record {name} (the "
                        "recorder's size bound left it out), and another snapshot's weights would not be this "
                        "epoch's numbers; move the slider to the last snapshot, or record fewer snapshots or "
                        "samples to keep the weights") from None
                if tuple(arr.shape) != tuple(p.shape):
                    raise WhatIfRefused(f"no what-if at {_snap_words(snaps[snap])}: it holds {name} as "
                                        f"{list(arr.shape)}, the model {list(p.shape)}")
                recorded[name] = torch.from_numpy(np.ascontiguousarray(arr)).to(p.dtype)
            if self._loaded != snap:
                with torch.no_grad():
                    for name, p in params.items():
                        p.copy_(recorded[name])
                self._loaded = snap
            return (f"the weights recorded at {_snap_words(snaps[snap])} ({manifest.get('dtype', 'float32')})", snap)
        if self._loaded is not None:
            with torch.no_grad():
                for name, p in self._model.named_parameters():
                    p.copy_(self._saved[name])
            self._loaded = None
        return saved, None

    def _use_rebuilt(self, manifest: Mapping[str, Any], snap: int) -> tuple[str, int]:
        """Snapshot ``snap``'s weights rebuilt from a base+changes recording (recording.weights) into the model."""
        assert self._model is not None
        entry = manifest["snapshots"][snap]
        where = _snap_words(entry)
        if entry.get("weights", "none") == "none":
            raise WhatIfRefused(f"no what-if at {where}: that snapshot holds no weights (the recorder's size bound "
                                "left no room for them), and another snapshot's weights would not be this epoch's "
                                "numbers; move the slider to a snapshot that has them, or record fewer snapshots")
        if self._loaded != snap:
            params = dict(self._model.named_parameters())
            rebuilt: dict[str, torch.Tensor] = {}
            for name, p in params.items():
                try:
                    t = self.store.weight(snap, name, manifest=manifest)
                except LookupError as e:
                    raise WhatIfRefused(f"no what-if at {where}: {e}") from None
                if tuple(t.shape) != tuple(p.shape):
                    raise WhatIfRefused(f"no what-if at {where}: it holds {name} as {list(t.shape)}, the model "
                                        f"{list(p.shape)}")
                rebuilt[name] = t.to(p.dtype)
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(rebuilt[name])
            self._loaded = snap
        if entry["weights"] == "exact":
            how = "float32, exact"
        else:
            how = (f"within {float(entry.get('weights_error', 0.0)):.1e} of the trained ones: the matrices kept as "
                   f"{entry['weights']} differences from the first snapshot")
        return f"the weights recorded at {where} ({how})", snap

    def _batch(self, given: WhatIfInput) -> tuple[dict[str, torch.Tensor], str]:
        tok = self._tokenizer
        texts = [("text", given.text)] + ([("pair", given.pair)] if given.pair is not None else [])
        for key, text in texts:
            if not isinstance(text, str) or not text.strip():
                raise WhatIfRefused(f"{key} is empty: type a sentence")
            if len(text) > MAX_CHARS:
                raise WhatIfRefused(f"{key} is {len(text)} characters: shorten it to at most {MAX_CHARS}")
        cfg = getattr(self._model, "config", None)
        limit = min(MAX_TOKENS, int(getattr(cfg, "max_position_embeddings", MAX_TOKENS)))
        batch = tok(given.text, text_pair=given.pair, padding=True, truncation=False)
        ids = batch["input_ids"]                                                      # (1, T)
        if ids.shape[1] > limit:
            which = "this model reads" if limit < MAX_TOKENS else "the what-if takes"
            raise WhatIfRefused(f"the input is {ids.shape[1]} tokens; {which} at most {limit}: shorten the text")
        mask = list(given.mask)
        if len(mask) > MAX_MASKS:
            raise WhatIfRefused(f"{len(mask)} masked tokens: mask at most {MAX_MASKS}")
        special = batch.special_tokens_mask[0]
        for p in mask:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < ids.shape[1]:
                raise WhatIfRefused(f"mask position {p!r} is not a token of this input (0..{ids.shape[1] - 1})")
            if special[p] and ids[0, p] != tok.mask_token_id:
                raise WhatIfRefused(f"mask position {p} is {tok.convert_ids_to_tokens([int(ids[0, p])])[0]}: "
                                    "mask a word, not a special token")
        out = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        typed = ids[0] == tok.mask_token_id
        if mask:  # the clicked words become [MASK]; their own ids are the MLM labels (the "actual" words)
            labels = torch.full_like(ids, IGNORE_INDEX)
            labels[0, typed] = tok.mask_token_id  # a [MASK] typed in the text: its word is not known
            for p in mask:
                labels[0, p] = ids[0, p]
            ids = ids.clone()
            ids[0, mask] = tok.mask_token_id
            out.update(input_ids=ids, labels=labels)
        shown = given.text if given.pair is None else f"{given.text} ‖ {given.pair}"
        return out, shown

    def run(self, given: WhatIfInput, snap: int | None = None) -> Answer:
        """Record ``given`` at snapshot ``snap`` of the run (None: the saved model) into a new answer."""
        from glassbert.recording.oneshot import record_batch

        if self.source is None:
            raise WhatIfRefused(self.status()["reason"])
        manifest = self.store.manifest()
        if snap is not None and not 0 <= snap < len(manifest["snapshots"]):
            raise WhatIfRefused(f"snap {snap} does not exist (this run has {len(manifest['snapshots'])} snapshots)")
        with self._lock:
            if self._model is None:
                self._load()
            batch, shown = self._batch(given)
            weights, used = self._use_weights(manifest, snap)
            self._next += 1
            directory = self.scratch / f"whatif-{self._next}"
            # the recorder's own code: every tensor of this input, float32 (the numbers the library computes),
            # no weights (they are the snapshot's, which the page reads from the run), no attributions
            record_batch(self._model, self._tokenizer, batch, directory, texts=[shown], dtype="float32",
                         explain="none", weights=False)
            note = unknown_note(unknown_words(self._tokenizer, given.text, given.pair))
            answer = Answer(self._next, directory, weights, used, load_manifest(directory), note)
            self._answers.append(answer)
            while len(self._answers) > KEEP_ANSWERS:
                shutil.rmtree(self._answers.popleft().directory, ignore_errors=True)
        return answer

    def attribute(self, given: WhatIfInput, snap: int | None = None) -> dict[str, Any]:
        """Attributions of ``given`` at snapshot ``snap`` with the weights :meth:`run` would use there (refused
        where it refuses): {snap, weights, tokens, attributions: one entry per target, as a recording's
        ``snapshots[k].attributions[sample]`` holds them, about: what f, the baseline and the methods are}."""
        from glassbert.recording.attribution import ABOUT, RECORD_STEPS, has_head, input_targets, record_attributions

        if self.source is None:
            raise WhatIfRefused(self.status()["reason"])
        manifest = self.store.manifest()
        if snap is not None and not 0 <= snap < len(manifest["snapshots"]):
            raise WhatIfRefused(f"snap {snap} does not exist (this run has {len(manifest['snapshots'])} snapshots)")
        key = (given.text, given.pair, tuple(given.mask), snap)
        with self._lock:
            if key in self._explained:
                self._explained[key] = self._explained.pop(key)  # the latest used is kept longest
                return self._explained[key]
            if self._model is None:
                self._load()
            batch, _ = self._batch(given)
            weights, used = self._use_weights(manifest, snap)
            model, tok = self._model, self._tokenizer
            ids = batch["input_ids"][0].tolist()
            if "labels" in batch:   # the clicked words (a typed [MASK]'s label is [MASK] itself: its word is unknown)
                positions = (batch["labels"][0] != IGNORE_INDEX).nonzero().flatten().tolist()
                true_ids = batch["labels"][0, positions].tolist()
            else:
                positions = [p for p, i in enumerate(ids) if i == tok.mask_token_id]
                true_ids = [tok.mask_token_id] * len(positions)
            info = {"input_ids": ids, "token_type_ids": batch["token_type_ids"][0].tolist(), "length": len(ids),
                    "masked_positions": positions, "masked_tokens": tok.convert_ids_to_tokens(true_ids)}
            if not has_head(model):
                entries = [{"target": "predicted", "error": f"{type(model).__name__} has no head to explain (a bare "
                                                            "encoder): nothing to attribute"}]
            else:
                with torch.no_grad():
                    out = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                attention_mask=batch["attention_mask"])
                pair_logits = getattr(out, "seq_relationship_logits", None)
                pair_prediction = int(pair_logits[0].argmax()) if pair_logits is not None else None
                targets = input_targets(model, info, tok.mask_token_id, pair_prediction)
                [entries] = record_attributions(model, tok, [info], "all", RECORD_STEPS, targets=[targets])
            answer = {"snap": snap if snap is not None else len(manifest["snapshots"]) - 1, "weights": weights,
                      "tokens": tok.convert_ids_to_tokens(ids), "attributions": entries,
                      "about": dict(ABOUT, methods=["ig", "conductance"])}
            self._explained[key] = answer
            while len(self._explained) > KEEP_EXPLAINED:
                self._explained.pop(next(iter(self._explained)))
        return answer

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
