"""Attribution on Captum: which tokens, and which layers, made a prediction.

    text ─▶ Tokenizer ─▶ input ids                 baseline ids: [PAD] for every token but [CLS] [SEP] [MASK]
    f = the model's probability of the target (softmax over the head's classes: labels, words, IsNext/NotNext,
        tags, answer start/end positions; the raw output of a one-output regression head)

    integrated gradients   Captum ``LayerIntegratedGradients`` on the embedding module's output (the path from
                           the baseline's embeddings to the input's; positions and segments are the input's own,
                           as in Captum's BERT tutorial); per sub-embedding on request: on the word, position
                           and segment embeddings at once, with baselines [PAD] ids, position 0 and segment 0
    layer conductance      Captum ``LayerConductance`` on each encoder layer's output, along the same path. The
                           path starts at the embedding module's *output*: the forward given to Captum replaces
                           that output (a forward hook) instead of feeding it back as input embeddings, which
                           would add the positions, the segments and LayerNorm a second time (Captum issue #506)

Per token, an attribution is the sum over the hidden dimension. Completeness: the attributions of one text
sum to f(input) − f(baseline) up to Captum's convergence delta; for conductance, each layer's row does
(every path from the embeddings to the output crosses every layer's output). Without ``steps``, the number
of integration steps doubles from 16 until |delta| ≤ tolerance × |f(input) − f(baseline)| (0.05 of it,
and never less than 0.001), up to 1024; a result that did not get there says so (``converged`` False).

    from glassbert.explain import explain, render_terminal, plot
    [r] = explain("runs/sentiment", "the soup was great .")           # the predicted label, by IG
    print(render_terminal(r, color=False))
    plot(r, "ig.png")
    explain("runs/mlm", "the cat [MASK] the mouse .", target="chased", method="conductance")

Targets (``Target.parse``: ``NAME``, ``NAME@POSITION`` or ``@POSITION``; positions count the tokens shown,
[CLS] = 0): a classifier's label (name or index; default the predicted one); the word at a [MASK] (default
the first [MASK], the predicted word); IsNext/NotNext (or an ALBERT's InOrder/Swapped) for a sentence pair;
a tagger's tag at a position (default: the first token tagged other than O); a QA model's ``start`` or
``end`` at a position (default ``start`` at its predicted position).
"""
from __future__ import annotations

import math
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from captum.attr import LayerConductance, LayerIntegratedGradients
from torch import nn

from .errors import InputError
from .runfiles import atomic_write_json, atomic_write_with, check_target_file
from .tokenizer import IGNORE_INDEX, check_count, check_text

METHODS = ("ig", "conductance")
TOLERANCE = 0.05          # |delta| allowed, as a fraction of |f(input) − f(baseline)|
MIN_TOLERANCE = 1e-3      # … but never asked below this (0.1 percentage point of probability)
START_STEPS = 16
MAX_STEPS = 1024
TOKENS_PER_BATCH = 4096   # Captum's internal batch: at most this many tokens per forward/backward
ROWS_PER_BATCH = 16       # texts explained together (padded to the longest)
PAIR_LABELS = {"nsp": ("IsNext", "NotNext"), "sop": ("InOrder", "Swapped")}  # class 0, class 1
PARTS = ("word", "position", "segment")


# ─── what to explain ────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Target:
    """What to explain: ``label`` (a label name or index, a word, IsNext/NotNext, a tag, start/end) and/or
    ``position`` (a token index, [CLS] = 0). Both None: the model's own prediction (see the module doc)."""

    label: str | None = None
    position: int | None = None

    @classmethod
    def parse(cls, text: "str | int | Target | None") -> "Target":
        """``NAME``, ``NAME@POSITION``, ``@POSITION`` (``@`` followed by digits; any other ``@`` is part of
        the name), an int (a label index), or nothing."""
        if text is None or isinstance(text, Target):
            return text or cls()
        if isinstance(text, bool) or not isinstance(text, (str, int)):
            raise InputError(f"target {text!r}: give a label, word, tag or start/end, optionally @POSITION")
        text = str(text).strip()
        name, at, pos = text.rpartition("@")
        if at and re.fullmatch(r"[0-9]{1,9}", pos):
            return cls(name.strip() or None, int(pos))
        return cls(text or None)

    def __str__(self) -> str:
        return (self.label or "") + ("" if self.position is None else f"@{self.position}")


@dataclass(frozen=True)
class _Goal:
    """A target resolved against one text: the head, the class explained, and the token it is read at."""

    head: str              # label | word | nsp | sop | tag | start | end
    index: int             # the class: label id, word id, NSP/SOP class, tag id, answer start/end position
    position: int | None   # the token whose output is explained (word, tag)
    name: str              # the class in words
    description: str


@dataclass
class Parts:
    """Integrated gradients per sub-embedding, on the path from ([PAD] ids, position 0, segment 0)."""

    word: list[float]
    position: list[float]
    segment: list[float]
    baseline_probability: float
    delta: float
    steps: int
    converged: bool


@dataclass
class Explanation:
    """One text's attribution. ``attributions`` (IG, per token) and each row of ``layers`` (conductance,
    one row per encoder layer, per token) sum to ``probability − baseline_probability`` up to ``delta``."""

    text: str
    pair: str | None
    tokens: list[str]
    method: str                       # ig | conductance
    target: str                       # what was explained, in words
    target_kind: str                  # label | word | nsp | sop | tag | start | end
    target_class: str                 # the label, word, tag, NSP/SOP class or position explained
    target_position: int | None       # the token whose output was explained (word, tag)
    prediction: str                   # what the model predicts for the same head (and token)
    predicted_probability: float
    probability: float                # f(input): the model's probability of the target
    baseline_probability: float       # f(baseline)
    delta: float                      # Captum's convergence delta (the worst layer's, for conductance)
    steps: int                        # integration steps (the most any layer needed, for conductance)
    converged: bool                   # |delta| within the tolerance
    tolerance: float                  # the |delta| allowed
    seconds: float
    attributions: list[float] | None = None     # ig: per token
    layers: list[list[float]] | None = None     # conductance: layers × tokens
    layer_deltas: list[float] | None = None
    layer_steps: list[int] | None = None
    parts: Parts | None = None                  # ig per sub-embedding, on request
    notes: list[str] = field(default_factory=list)

    @property
    def difference(self) -> float:
        return self.probability - self.baseline_probability

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ─── the model's heads, read from its output ────────────────────────────────────────────────
def _pair_head(model: nn.Module, out: Any) -> tuple[str, torch.Tensor] | None:
    """("nsp" | "sop", logits (B, 2)) of a sentence-pair head, or None."""
    sop = getattr(out, "sop_logits", None)
    if isinstance(sop, torch.Tensor):
        return "sop", sop
    logits = getattr(out, "seq_relationship_logits", None)
    if isinstance(logits, torch.Tensor):
        return ("sop" if hasattr(model, "sop_classifier") else "nsp"), logits
    return None


def _heads(model: nn.Module, out: Any) -> list[str]:
    """The heads an output offers: label, tag, word (MLM), nsp/sop, span (start and end)."""
    heads = []
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        heads.append("label" if logits.dim() == 2 else "tag")
    if isinstance(getattr(out, "prediction_logits", None), torch.Tensor):
        heads.append("word")
    pair = _pair_head(model, out)
    if pair is not None:
        heads.append(pair[0])
    if isinstance(getattr(out, "start_logits", None), torch.Tensor):
        heads.append("span")
    return heads


def _class_logits(model: nn.Module, out: Any, head: str, where: torch.Tensor) -> torch.Tensor:
    """(B, C) logits of ``head``; a tagger's at token ``where[b]`` of row b."""
    if head == "label":
        return out.logits
    if head == "tag":
        return out.logits[torch.arange(out.logits.shape[0], device=where.device), where]
    if head == "word":
        return out.prediction_logits.reshape(-1, out.prediction_logits.shape[-1])  # one masked row per sample
    if head in ("nsp", "sop"):
        return _pair_head(model, out)[1]
    return out.start_logits if head == "start" else out.end_logits


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes; a one-output (regression) head's raw value."""
    return logits.float() if logits.shape[-1] == 1 else torch.softmax(logits.float(), dim=-1)


def _base(model: nn.Module) -> nn.Module:
    return getattr(model, "base_model", model)  # BertPreTrainedModel.base_model; any other module as it is


def _layer_outputs(model: nn.Module) -> list[nn.Module]:
    """One module per encoder layer whose output is that layer's output (BertOutput: the last add & norm)."""
    encoder = getattr(_base(model), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList) or not all(hasattr(layer, "output") for layer in layers):
        raise InputError(f"layer conductance needs one module per encoder layer, and {type(model).__name__} "
                         "has none (ALBERT shares one module among its layers): use method 'ig'")
    return [layer.output for layer in layers]


@contextmanager
def _hooked(module: nn.Module, *, pre: Callable | None = None, post: Callable | None = None) -> Iterator[None]:
    handles = []
    if pre is not None:
        handles.append(module.register_forward_pre_hook(pre))
    if post is not None:
        handles.append(module.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ─── the explainer ──────────────────────────────────────────────────────────────────────────
class Explainer:
    """Attributions for a loaded model and its tokenizer (see the module doc). ``max_length``: texts are
    truncated to it (default: the tokenizer's and the model's limit)."""

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int | None = None,
                 tolerance: float = TOLERANCE, max_steps: int = MAX_STEPS):
        self.model = model
        self.tok = tokenizer
        self.config = model.config
        limit = min(getattr(tokenizer, "model_max_length", 512), self.config.max_position_embeddings)
        self.max_length = limit if max_length is None else min(check_count("max_length", max_length, 2), limit)
        if not 0 < tolerance < 1:
            raise InputError(f"tolerance must be between 0 and 1 (a fraction of f(input) − f(baseline)), "
                             f"got {tolerance!r}")
        self.tolerance = tolerance
        self.max_steps = check_count("max_steps", max_steps, START_STEPS)
        self.embeddings = _base(model).embeddings

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int | None = None) -> "Explainer":
        """A model directory (or an alias such as ``minilm``) loaded as the class its config names."""
        from .checkpoint import resolve_model_path
        from .heads import load_model
        from .tokenizer import Tokenizer

        directory = resolve_model_path(path)
        model = load_model(directory).eval()
        return cls(model, Tokenizer.from_pretrained(directory), max_length)

    # -- texts -----------------------------------------------------------------------------
    def explain(self, text: str, pair: str | None = None, target: "str | Target | None" = None,
                method: str = "ig", steps: int | None = None, parts: bool = False) -> Explanation:
        """Attribute the model's probability of ``target`` on ``text`` (and ``pair``) by ``method``."""
        return self.explain_texts([text], None if pair is None else [pair], target, method, steps, parts)[0]

    def explain_texts(self, texts: Sequence[str], pairs: Sequence[str | None] | None = None,
                      target: "str | Target | None" = None, method: str = "ig", steps: int | None = None,
                      parts: bool = False) -> list[Explanation]:
        """:meth:`explain` for several texts at once (padded batches: one Captum call per head and layer)."""
        items = []
        for i, text in enumerate(texts):
            pair = None if pairs is None else pairs[i]
            check_text(text, i)
            if pair is not None:
                check_text(pair, i, "text pair")
            batch = self.tok(text, pair, padding=False, max_length=self.max_length)
            items.append(Item(batch["input_ids"][0].tolist(), batch["token_type_ids"][0].tolist(), target, text, pair))
        return self.explain_batch(items, method, steps, parts)

    def explain_ids(self, input_ids: Sequence[int], token_type_ids: Sequence[int] | None = None,
                    target: "str | Target | None" = None, method: str = "ig", steps: int | None = None,
                    parts: bool = False) -> Explanation:
        """:meth:`explain` from token ids (no padding) already packed as [CLS] A [SEP] (B [SEP])."""
        return self.explain_batch([Item(input_ids, token_type_ids, target)], method, steps, parts)[0]

    def explain_batch(self, items: Sequence["Item"], method: str = "ig", steps: int | None = None,
                      parts: bool = False, errors: str = "raise") -> "list[Explanation | InputError]":
        """Each item explained by ``method``; items whose targets fall on the same head run as one padded batch
        (``seconds`` is then each one's share of the batch's time). ``errors="return"``: an item whose
        target does not fit gets its InputError in its place instead of stopping the others."""
        if method not in METHODS:
            raise InputError(f"method {method!r}: choose one of {', '.join(METHODS)}")
        if steps is not None:
            check_count("steps", steps, 2, "integration steps")
        if parts and method != "ig":
            raise InputError("the per-sub-embedding split (parts) is an integrated-gradients result: use method 'ig'")
        model = self.model
        was_training = model.training
        model.eval()
        out: list[Explanation | InputError | None] = [None] * len(items)
        try:
            groups: dict[str, list[tuple[int, _Row]]] = {}
            for k, item in enumerate(items):
                try:
                    row = self._prepare(item)
                except InputError as e:
                    if errors == "raise":
                        raise
                    out[k] = e
                    continue
                groups.setdefault(row.goal.head, []).append((k, row))
            for members in groups.values():
                for first in range(0, len(members), ROWS_PER_BATCH):
                    chunk = members[first:first + ROWS_PER_BATCH]
                    done = self._explain_rows([row for _, row in chunk], method, steps, parts)
                    for (k, _), result in zip(chunk, done):
                        out[k] = result
        finally:
            model.train(was_training)
        return out  # type: ignore[return-value]

    def _prepare(self, item: "Item") -> "_Row":
        """An item with its target resolved against the model's output on it (InputError when it does not fit)."""
        ids = [int(i) for i in item.input_ids]
        segments = [0] * len(ids) if item.token_type_ids is None else [int(t) for t in item.token_type_ids]
        if not ids:
            raise InputError("no tokens to explain")
        if len(segments) != len(ids):
            raise InputError(f"{len(ids)} input ids but {len(segments)} token type ids")
        device = next(self.model.parameters()).device
        tensor = torch.tensor([ids], device=device)
        with torch.no_grad():
            first = self.model(input_ids=tensor, token_type_ids=torch.tensor([segments], device=device))
        tokens = self.tok.convert_ids_to_tokens(ids)
        goal = self.resolve(Target.parse(item.target), ids, tokens, first)
        return _Row(ids, segments, tokens, goal, "word" in _heads(self.model, first), item.text, item.pair)

    def _explain_rows(self, rows: Sequence["_Row"], method: str, steps: int | None, parts: bool) -> list[Explanation]:
        """One padded batch of rows whose goals share a head."""
        started = time.perf_counter()
        b = _Batch.of(rows, self, next(self.model.parameters()).device)
        with torch.no_grad():
            p_in = self.forward(b.head, b.ids, *b.args).cpu()
            p_base = self.forward(b.head, b.baseline, *b.args).cpu()
        rows_ = torch.arange(len(rows))
        target = p_in[rows_, b.targets]
        base = p_base[rows_, b.targets]
        allowed = self.tolerance * torch.clamp((target - base).abs(), min=MIN_TOLERANCE / self.tolerance)
        best = p_in.argmax(-1) if p_in.shape[-1] > 1 else torch.zeros(len(rows), dtype=torch.long)
        results = []
        for i, row in enumerate(rows):
            results.append(Explanation(
                text=row.text, pair=row.pair, tokens=row.tokens, method=method, target=row.goal.description,
                target_kind=row.goal.head, target_class=row.goal.name, target_position=row.goal.position,
                prediction=self._shown(row, int(best[i])), predicted_probability=float(p_in[i, best[i]]),
                probability=float(target[i]), baseline_probability=float(base[i]), delta=0.0, steps=0,
                converged=True, tolerance=float(allowed[i]), seconds=0.0))
        if method == "ig":
            self._integrated_gradients(results, b, steps, allowed)
            if parts:
                self._parts(results, b, steps)
        else:
            self._conductance(results, b, steps, allowed)
        share = round((time.perf_counter() - started) / len(rows), 3)
        for r in results:
            r.seconds = share
            self._notes(r, steps)
        return results

    def _notes(self, r: Explanation, steps: int | None) -> None:
        if abs(r.difference) < MIN_TOLERANCE:
            r.notes.append(f"f(input) − f(baseline) is only {r.difference:+.2g}: the baseline already gets this "
                           "output, so there is next to nothing to attribute")
        if not r.converged:
            r.notes.append(f"|delta| {abs(r.delta):.3g} is above the tolerance {r.tolerance:.3g} after {r.steps} "
                           "steps: read the attributions as approximate"
                           + ("" if steps else f" (steps stop at {self.max_steps}; pass more steps)"))
        if r.parts is not None and not r.parts.converged:
            r.notes.append(f"per-part |delta| {abs(r.parts.delta):.3g} after {r.parts.steps} steps")

    def _shown(self, row: "_Row", best: int) -> str:
        """The head's prediction in words."""
        head = row.goal.head
        if head == "word":
            return self.tok.convert_ids_to_tokens([best])[0]
        if head in ("start", "end"):
            return f"{best} ({row.tokens[best]!r})" if best < len(row.tokens) else str(best)
        if head in PAIR_LABELS:
            return PAIR_LABELS[head][best]
        return self._names(best + 1)[best]

    # -- targets ---------------------------------------------------------------------------
    def resolve(self, target: Target, ids: Sequence[int], tokens: Sequence[str], out: Any) -> _Goal:
        """``target`` against one text, given the model's output on it: InputError when it does not fit."""
        heads = _heads(self.model, out)
        name = type(self.model).__name__
        if not heads:
            raise InputError(f"{name} has no head to explain (a bare encoder): explain a fine-tuned classifier, "
                             "tagger or QA model, or a model with an MLM or NSP head")
        label, position = target.label, target.position
        if position is not None and not 0 <= position < len(ids):
            raise InputError(f"target position {position} is out of range: the text has {len(ids)} tokens "
                             f"(positions 0..{len(ids) - 1}, [CLS] = 0)")
        pair = next((h for h in heads if h in PAIR_LABELS), None)
        mask_id = getattr(self.tok, "mask_token_id", None)
        has_mask = mask_id in ids
        if "label" in heads:
            return self._label_goal(label, position, out)
        if "tag" in heads:
            return self._tag_goal(label, position, tokens, out)
        if "span" in heads:
            return self._span_goal(label, position, tokens, out)
        wants_pair = pair is not None and label is not None and _match(label, PAIR_LABELS[pair]) is not None
        if "word" in heads and not wants_pair and (has_mask or position is not None or pair is None):
            return self._word_goal(label, position, ids, tokens, out)
        if pair is None:  # pragma: no cover - every head is handled above
            raise InputError(f"{name}: no head fits target {target}")
        return self._pair_goal(pair, label, position, out)

    def _label_goal(self, label: str | None, position: int | None, out: Any) -> _Goal:
        if position is not None:
            raise InputError(f"a sequence classifier labels the whole text: give the label without @{position}")
        names = self._names(out.logits.shape[-1])
        index = int(out.logits[0].argmax()) if label is None else _class_index(label, names, "label", "classifier")
        return _Goal("label", index, None, names[index], f"label {names[index]!r}")

    def _tag_goal(self, label: str | None, position: int | None, tokens: Sequence[str], out: Any) -> _Goal:
        names = self._names(out.logits.shape[-1])
        predicted = out.logits[0].argmax(-1).tolist()
        if position is None:  # the first real token tagged as something other than O, else the first token
            real = [p for p in range(len(tokens)) if tokens[p] not in self._special_tokens()]
            position = next((p for p in real if names[predicted[p]] != "O"), real[0] if real else 0)
        index = predicted[position] if label is None else _class_index(label, names, "tag", "tagger")
        return _Goal("tag", index, position, names[index],
                     f"tag {names[index]!r} at position {position} ({tokens[position]!r})")

    def _span_goal(self, label: str | None, position: int | None, tokens: Sequence[str], out: Any) -> _Goal:
        side = "start" if label is None else label.lower()
        if side not in ("start", "end"):
            raise InputError(f"target {label!r}: a QA model explains the answer's start or end "
                             "(start, end, start@POSITION or end@POSITION)")
        logits = out.start_logits if side == "start" else out.end_logits
        position = int(logits[0].argmax()) if position is None else position
        return _Goal(side, position, None, str(position),
                     f"answer {side} at position {position} ({tokens[position]!r})")

    def _word_goal(self, label: str | None, position: int | None, ids: Sequence[int], tokens: Sequence[str],
                   out: Any) -> _Goal:
        mask_id = self.tok.mask_token_id
        masks = [p for p, i in enumerate(ids) if i == mask_id]
        if not masks:
            raise InputError("the text has no [MASK]: an MLM target is the word at a [MASK] position; put [MASK] "
                             "where the word to explain goes (e.g. 'the cat [MASK] the mouse .')")
        if position is None:
            position = masks[0]
        elif ids[position] != mask_id:
            raise InputError(f"position {position} holds {tokens[position]!r}, not [MASK]: an MLM target is a "
                             f"[MASK] position (this text's: {', '.join(map(str, masks))})")
        if label is None:
            index = int(out.prediction_logits[0, position].argmax())
        else:
            index = self._word_id(label)
        word = self.tok.convert_ids_to_tokens([index])[0]
        return _Goal("word", index, position, word, f"word {word!r} at [MASK] position {position}")

    def _pair_goal(self, pair: str, label: str | None, position: int | None, out: Any) -> _Goal:
        if position is not None:
            raise InputError(f"{pair.upper()} labels the whole pair: give the label without @{position}")
        names = PAIR_LABELS[pair]
        logits = _pair_head(self.model, out)[1]
        index = int(logits[0].argmax()) if label is None else _class_index(label, names, pair.upper() + " label",
                                                                           pair.upper() + " head")
        return _Goal(pair, index, None, names[index], f"{pair.upper()} {names[index]!r}")

    def _names(self, n: int) -> list[str]:
        id2label = getattr(self.config, "id2label", None) or {}
        return [str(id2label.get(i, i)) for i in range(n)]

    def _special_tokens(self) -> set[str]:
        return set(getattr(self.tok, "specials", {}).values())

    def _word_id(self, word: str) -> int:
        vocab = self.tok.vocab
        for candidate in (word, word.lower() if getattr(self.tok, "do_lower_case", False) else word):
            if candidate in vocab:
                return vocab[candidate]
        pieces = self.tok.tokenize(word)
        hint = f" (it is {len(pieces)} pieces: {' '.join(pieces)})" if len(pieces) > 1 else ""
        raise InputError(f"word {word!r} is not in the model's vocabulary{hint}: an MLM target is one word piece")

    # -- the function Captum differentiates ------------------------------------------------
    def forward(self, head: str, input_ids: torch.Tensor, token_type_ids: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor, labels: torch.Tensor | None, where: torch.Tensor) -> torch.Tensor:
        """(B, C) probabilities of ``head`` (read at token ``where`` of each row for a tagger). The position ids
        are the given ones (a pre-hook on the position embedding: the model makes its own otherwise); a padded
        batch takes the model's padded path, so that every layer's output is (B, T, H) for Captum's hooks."""
        kwargs = {} if labels is None else {"labels": labels}
        padded = not bool(attention_mask.all())
        with _hooked(self.embeddings.position_embeddings, pre=lambda module, args: (position_ids,)):
            out = self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                             output_attentions=padded, **kwargs)
        return _probabilities(_class_logits(self.model, out, head, where))

    def forward_from_embeddings(self, head: str, embedding_output: torch.Tensor, *rest: torch.Tensor | None
                                ) -> torch.Tensor:
        """As :meth:`forward` with the embedding module's output replaced by ``embedding_output``: the
        layers see it as it is (nothing is added to it, nothing normalised again)."""
        with _hooked(self.embeddings, post=lambda module, args, output: embedding_output):
            return self.forward(head, *rest)

    def baseline_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """[PAD] for every token but [CLS], [SEP] and [MASK] (a [MASK] marks where the MLM head reads)."""
        keep = [getattr(self.tok, f"{name}_token_id", None) for name in ("cls", "sep", "mask")]
        kept = torch.zeros_like(ids, dtype=torch.bool)
        for k in keep:
            if k is not None:
                kept |= ids == k
        return torch.where(kept, ids, torch.full_like(ids, self.tok.pad_token_id))

    # -- the methods -----------------------------------------------------------------------
    def _attribute(self, method: Any, inputs: Any, baselines: Any, b: "_Batch", args: tuple, steps: int | None,
                   allowed: torch.Tensor) -> tuple[Any, torch.Tensor, int]:
        """``method.attribute`` with steps doubled from 16 until every row's |delta| ≤ its ``allowed`` (at most
        ``max_steps``), or with ``steps`` when given. Returns (attributions, deltas (B,), steps)."""
        n = steps or START_STEPS
        while True:
            attr, delta = method.attribute(inputs, baselines=baselines, target=b.targets, additional_forward_args=args,
                                           n_steps=n, internal_batch_size=max(1, TOKENS_PER_BATCH // b.ids.shape[1]),
                                           return_convergence_delta=True)
            delta = delta.detach().reshape(-1).float().cpu()
            if steps is not None or n >= self.max_steps or bool((delta.abs() <= allowed).all()):
                return attr, delta, n
            n = min(2 * n, self.max_steps)

    def _integrated_gradients(self, results: list[Explanation], b: "_Batch", steps: int | None,
                              allowed: torch.Tensor) -> None:
        lig = LayerIntegratedGradients(lambda *a: self.forward(b.head, *a), self.embeddings)
        attr, delta, n = self._attribute(lig, b.ids, b.baseline, b, b.args, steps, allowed)
        for i, r in enumerate(results):
            r.attributions = _per_token(attr, i, len(r.tokens))
            r.delta, r.steps, r.converged = float(delta[i]), n, bool(abs(delta[i]) <= allowed[i])

    def _parts(self, results: list[Explanation], b: "_Batch", steps: int | None) -> None:
        e = self.embeddings
        with warnings.catch_warnings():  # "ensure that each layer is not solely dependent on another": they are not
            warnings.filterwarnings("ignore", "Multiple layers provided", UserWarning)
            lig = LayerIntegratedGradients(lambda *a: self.forward(b.head, *a),
                                           [e.word_embeddings, e.position_embeddings, e.token_type_embeddings])
        zeros = torch.zeros_like(b.ids)
        tt, positions, mask, labels, where = b.args
        with torch.no_grad():
            p_base = self.forward(b.head, b.baseline, zeros, zeros, mask, labels, where)[torch.arange(len(results)),
                                                                                         b.targets].cpu()
        p_input = torch.tensor([r.probability for r in results])
        allowed = self.tolerance * torch.clamp((p_input - p_base).abs(), min=MIN_TOLERANCE / self.tolerance)
        # the inputs in the forward's order (ids, segments, positions); the attributions in the layers' order
        attrs, delta, n = self._attribute(lig, (b.ids, tt, positions), (b.baseline, zeros, zeros), b,
                                          (mask, labels, where), steps, allowed)
        for i, r in enumerate(results):
            word, position, segment = (_per_token(a, i, len(r.tokens)) for a in attrs)
            r.parts = Parts(word, position, segment, float(p_base[i]), float(delta[i]), n,
                            bool(abs(delta[i]) <= allowed[i]))

    def _conductance(self, results: list[Explanation], b: "_Batch", steps: int | None, allowed: torch.Tensor) -> None:
        tt = b.args[0]
        with torch.no_grad():
            start = self.embeddings(b.baseline, tt)   # the path's two ends: the embedding module's outputs
            end = self.embeddings(b.ids, tt)
        for r in results:
            r.layers, r.layer_deltas, r.layer_steps = [], [], []
        for module in _layer_outputs(self.model):
            lc = LayerConductance(lambda emb, *rest: self.forward_from_embeddings(b.head, emb, *rest), module)
            attr, delta, n = self._attribute(lc, end, start, b, (b.ids, *b.args), steps, allowed)
            for i, r in enumerate(results):
                r.layers.append(_per_token(attr, i, len(r.tokens)))
                r.layer_deltas.append(float(delta[i]))
                r.layer_steps.append(n)
        for i, r in enumerate(results):
            r.delta = max(r.layer_deltas, key=abs)
            r.steps = max(r.layer_steps)
            r.converged = all(abs(d) <= allowed[i] for d in r.layer_deltas)


@dataclass(frozen=True)
class Item:
    """One text to explain, as token ids ([CLS] A [SEP] (B [SEP]), no padding), with its target."""

    input_ids: Sequence[int]
    token_type_ids: Sequence[int] | None = None
    target: "str | Target | None" = None
    text: str = ""
    pair: str | None = None


@dataclass
class _Row:
    ids: list[int]
    segments: list[int]
    tokens: list[str]
    goal: _Goal
    mlm: bool            # the model has an MLM head (its labels then say which rows it decodes)
    text: str
    pair: str | None


@dataclass
class _Batch:
    """Rows of one head, padded: the inputs, the baselines and the forward's other arguments."""

    head: str
    ids: torch.Tensor        # (B, T)
    baseline: torch.Tensor   # (B, T)
    targets: list[int]       # the class explained, per row
    args: tuple              # (token_type_ids, position_ids, attention_mask, labels | None, where): the rest

    @classmethod
    def of(cls, rows: Sequence[_Row], explainer: Explainer, device: torch.device) -> "_Batch":
        B, T = len(rows), max(len(r.ids) for r in rows)
        ids = torch.full((B, T), explainer.tok.pad_token_id, dtype=torch.long)
        tt = torch.zeros((B, T), dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r.ids)] = torch.tensor(r.ids)
            tt[i, :len(r.ids)] = torch.tensor(r.segments)
            mask[i, :len(r.ids)] = 1
        labels = None
        if rows[0].mlm and rows[0].goal.head in ("word", *PAIR_LABELS):
            # the MLM head decodes the explained [MASK] only (not the vocabulary at every token), none for NSP/SOP
            labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
            if rows[0].goal.head == "word":
                for i, r in enumerate(rows):
                    labels[i, r.goal.position] = r.goal.index
        where = torch.tensor([r.goal.position or 0 for r in rows])
        positions = torch.arange(T).expand(B, T).contiguous()
        ids, tt, mask, positions, where = (t.to(device) for t in (ids, tt, mask, positions, where))
        return cls(rows[0].goal.head, ids, explainer.baseline_ids(ids), [r.goal.index for r in rows],
                   (tt, positions, mask, None if labels is None else labels.to(device), where))


def _per_token(attr: torch.Tensor, row: int, length: int) -> list[float]:
    """Row ``row`` of (B, T, H) attributions, its first ``length`` tokens: the sum over the hidden dimension."""
    return [float(x) for x in attr[row, :length].detach().reshape(length, -1).sum(-1).cpu()]


def _match(name: str, names: Sequence[str]) -> int | None:
    """The index of ``name`` among ``names``: exact, else the one case-insensitive match."""
    if name in names:
        return list(names).index(name)
    folded = [i for i, n in enumerate(names) if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _class_index(name: str, names: Sequence[str], what: str, owner: str) -> int:
    found = _match(name, names)
    if found is not None:
        return found
    listed = ", ".join(names) if len(names) <= 20 else ", ".join(names[:20]) + f", … ({len(names)} in all)"
    if re.fullmatch(r"[0-9]+", name):
        if int(name) < len(names):
            return int(name)
        raise InputError(f"{what} index {name} is out of range: this {owner} has {len(names)} {what}s "
                         f"(0..{len(names) - 1}: {listed})")
    raise InputError(f"unknown {what} {name!r}: this {owner}'s {what}s are {listed} "
                     f"(or their indices 0..{len(names) - 1})")


# ─── the API the CLI calls ──────────────────────────────────────────────────────────────────
def explain(model: str | Path, texts: str | Sequence[str], target: "str | Target | None" = None,
            method: str = "ig", steps: int | None = None, pair: str | Sequence[str] | None = None,
            parts: bool = False, max_length: int | None = None) -> list[Explanation]:
    """Explain ``model``'s prediction (a directory or an alias) on each of ``texts`` (with ``pair``: one second
    text for all, or one per text) for ``target`` by ``method`` ("ig" or "conductance")."""
    if method not in METHODS:
        raise InputError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise InputError("no texts to explain")
    texts = [check_text(t, i) for i, t in enumerate(texts)]
    pairs: list[str | None]
    if pair is None or isinstance(pair, str):
        pairs = [pair] * len(texts)
    else:
        pairs = list(pair)
        if len(pairs) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(pairs)} pairs: give one pair for all, or one per text")
    explainer = Explainer.from_pretrained(model, max_length)
    return explainer.explain_texts(texts, pairs, Target.parse(target), method, steps, parts)


def write_json(results: Explanation | Sequence[Explanation], path: str | Path, *, overwrite: bool = False) -> Path:
    """The explanations as a JSON list (one object each), written atomically; an existing file needs
    ``overwrite``."""
    out = check_target_file(path, overwrite=overwrite, option="--json")
    items = [results] if isinstance(results, Explanation) else list(results)
    return atomic_write_json(out, [r.to_json() for r in items], indent=1)


# ─── the terminal ───────────────────────────────────────────────────────────────────────────
# xterm-256 backgrounds, faint to strong: green pushes the target up, red pulls it down (Captum's colours)
_GREENS = (194, 157, 120, 77, 34)
_REDS = (224, 217, 210, 203, 160)


def _shade(value: float, scale: float) -> str:
    """The background for ``value`` on a scale whose largest |value| is ``scale``; none below 5 % of it."""
    if scale <= 0 or abs(value) < 0.05 * scale:
        return ""
    level = min(4, int(abs(value) / scale * 5))
    code = (_GREENS if value > 0 else _REDS)[level]
    return f"\x1b[48;5;{code}m\x1b[38;5;{16 if level < 3 else 231}m"


def _decimals(scale: float) -> int:
    """Decimals that show the largest |value| with three significant digits (at least 3, at most 8)."""
    return 3 if scale <= 0 else min(8, max(3, 2 - math.floor(math.log10(scale))))


def _headline(r: Explanation) -> list[str]:
    text = r.text if r.pair is None else f"{r.text} ‖ {r.pair}"
    what = "integrated gradients" if r.method == "ig" else "layer conductance"
    lines = [f"text: {text}",
             f"{what} · target: {r.target} · p = {r.probability:.4f} (baseline {r.baseline_probability:.4f}, "
             f"difference {r.difference:+.4f}) · predicted: {r.prediction} ({r.predicted_probability:.4f})",
             f"delta {r.delta:+.2g} after {r.steps} steps ({'within' if r.converged else 'ABOVE'} the tolerance "
             f"{r.tolerance:.2g}) · {r.seconds:.2f} s"]
    return lines


def _wrap(cells: Sequence[tuple[str, str]], width: int) -> list[str]:
    """Lay out (shown, visible) cells on lines of at most ``width`` visible characters."""
    lines, line, used = [], "", 0
    for shown, visible in cells:
        if used and used + 1 + len(visible) > width:
            lines.append(line)
            line, used = "", 0
        line += (" " if used else "") + shown
        used += (1 if used else 0) + len(visible)
    if line:
        lines.append(line)
    return lines


def render_terminal(result: Explanation, color: bool = False, width: int | None = None) -> str:
    """The tokens with their attributions. ``color``: tokens on green (for the target) or red (against)
    backgrounds, stronger for larger |attribution|; without it plain text with the numbers. Conductance:
    one line per token, one column per layer."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    reset = "\x1b[0m"
    lines = _headline(result)
    floor = MIN_TOLERANCE  # colours never finer than 0.001 of probability: noise stays uncoloured
    if result.method == "ig":
        values = result.attributions or []
        scale = max((abs(v) for v in values), default=0.0)
        shade_scale = max(scale, floor)
        d = _decimals(scale)
        lines.append(f"attribution per token (sum {sum(values):+.{d}f}; the largest |value| is {scale:.{d}f}):")
        cells = []
        for tok, v in zip(result.tokens, values):
            if color:
                shade = _shade(v, shade_scale)
                cells.append((f"{shade}{tok}{reset}" if shade else tok, tok))
            else:
                cells.append((f"{tok}({v:+.{d}f})",) * 2)
        lines += ["  " + line for line in _wrap(cells, width - 2)]
        if result.parts is not None:
            p = result.parts
            lines.append(f"per sub-embedding (baseline [PAD] ids, position 0, segment 0: p = "
                         f"{p.baseline_probability:.4f}; delta {p.delta:+.2g} after {p.steps} steps):")
            w = max(len(t) for t in result.tokens)
            d = _decimals(max(abs(v) for v in p.word + p.position + p.segment))
            c = d + 4
            lines.append(f"  {'token':<{w}}  {'word':>{c}} {'position':>{c}} {'segment':>{c}}")
            for i, tok in enumerate(result.tokens):
                lines.append(f"  {tok:<{w}}  {p.word[i]:>+{c}.{d}f} {p.position[i]:>+{c}.{d}f} "
                             f"{p.segment[i]:>+{c}.{d}f}")
    else:
        layers = result.layers or []
        scale = max((abs(v) for row in layers for v in row), default=0.0)
        shade_scale = max(scale, floor)
        w = max([5, *(len(t) for t in result.tokens)])
        d = _decimals(scale)
        c = d + 4
        lines.append(f"conductance per layer (columns) and token (rows); each column sums to about "
                     f"{result.difference:+.{d}f}:")
        lines.append(f"  {'#':>3} {'token':<{w}} " + " ".join(f"{'L' + str(i + 1):>{c}}" for i in range(len(layers))))
        for t, tok in enumerate(result.tokens):
            cells = []
            for row in layers:
                text = f"{row[t]:>+{c}.{d}f}"
                shade = _shade(row[t], shade_scale) if color else ""
                cells.append(f"{shade}{text}{reset}" if shade else text)
            lines.append(f"  {t:>3} {tok:<{w}} " + " ".join(cells))
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


# ─── pictures ───────────────────────────────────────────────────────────────────────────────
def plot(results: Explanation | Sequence[Explanation], path: str | Path, *, overwrite: bool = False) -> Path:
    """A PNG: per explanation, a bar chart of the tokens' IG attributions, or a layers × tokens heatmap of
    the conductance (green for the target, pink against, 0 white). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = check_target_file(path, overwrite=overwrite, option="--png")
    items = [results] if isinstance(results, Explanation) else list(results)
    if not items:
        raise InputError("nothing to plot: no explanations")
    longest = max(len(r.tokens) for r in items)
    width = min(40.0, max(7.0, 0.28 * longest + 2.0))
    panels = [p for r in items for p in ([(r, False)] + ([(r, True)] if r.parts is not None else []))]
    heights = [3.6 if r.method == "ig" else 1.2 + 0.35 * len(r.layers or []) + 1.1 for r, _ in panels]
    fig = Figure(figsize=(width, sum(heights) + 0.4 * len(panels)))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    for k, (r, split) in enumerate(panels):
        ax = fig.add_subplot(grid[k])
        if split:
            _plot_parts(ax, r, longest)
            continue
        title = (f"{'integrated gradients' if r.method == 'ig' else 'layer conductance'} · {r.target} · "
                 f"p {r.probability:.3f} (baseline {r.baseline_probability:.3f}) · delta {r.delta:+.1g}, "
                 f"{r.steps} steps")
        text = r.text if len(r.text) <= 110 else r.text[:108] + "…"
        ax.set_title(f"{text}\n{title}", fontsize=9, loc="left")
        x = range(len(r.tokens))
        if r.method == "ig":
            values = r.attributions or []
            ax.bar(x, values, color=["#1a9641" if v >= 0 else "#c51b7d" for v in values], width=0.8)
            ax.axhline(0, color="#555555", linewidth=0.6)
            ax.set_ylabel("attribution")
            ax.set_xlim(-0.6, len(r.tokens) - 0.4)
        else:  # each layer on its own scale (a pooler's last layer puts it all on [CLS]); its largest |value| beside
            import numpy as np

            data = np.array(r.layers, dtype=float)
            largest = np.maximum(np.abs(data).max(axis=1, keepdims=True), MIN_TOLERANCE)
            image = ax.imshow(data / largest, cmap="PiYG", vmin=-1, vmax=1, aspect="auto", origin="lower",
                              interpolation="nearest")
            ax.set_yticks(range(len(data)), [f"layer {i + 1} (max {m:.2g})" for i, m in enumerate(largest[:, 0])],
                          fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="÷ the layer's largest |value|")
        ax.set_xticks(list(x), r.tokens, rotation=60 if len(r.tokens) > 8 else 0, ha="right" if len(r.tokens) > 8
                      else "center", fontsize=8 if longest <= 80 else 6)
    fig.tight_layout()
    return atomic_write_with(out, lambda tmp: fig.savefig(tmp, dpi=100))


def _plot_parts(ax: Any, r: Explanation, longest: int) -> None:
    """Integrated gradients per sub-embedding: three bars per token."""
    p = r.parts
    ax.set_title(f"per sub-embedding (baseline [PAD] ids, position 0, segment 0: p {p.baseline_probability:.3f}) · "
                 f"delta {p.delta:+.1g}, {p.steps} steps", fontsize=9, loc="left")
    for k, (name, values, colour) in enumerate(zip(PARTS, (p.word, p.position, p.segment),
                                                   ("#333333", "#3182bd", "#e6550d"))):
        ax.bar([i + (k - 1) * 0.27 for i in range(len(values))], values, width=0.27, color=colour, label=name)
    ax.axhline(0, color="#555555", linewidth=0.6)
    ax.set_ylabel("attribution")
    ax.set_xlim(-0.6, len(r.tokens) - 0.4)
    ax.legend(fontsize=8, ncols=3, loc="best")
    ax.set_xticks(range(len(r.tokens)), r.tokens, rotation=60 if len(r.tokens) > 8 else 0,
                  ha="right" if len(r.tokens) > 8 else "center", fontsize=8 if longest <= 80 else 6)


__all__ = ["explain", "Explainer", "Explanation", "Item", "Parts", "Target", "render_terminal", "plot", "write_json",
           "METHODS", "TOLERANCE", "PAIR_LABELS"]
