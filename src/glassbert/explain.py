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
and never less than 0.0005), up to 256; a result that did not get there says so (``converged`` False).

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
MIN_TOLERANCE = 5e-4      # … but never asked below this (a probability difference near 0)
START_STEPS = 16
MAX_STEPS = 1024
TOKENS_PER_BATCH = 4096   # Captum's internal batch: at most this many tokens per forward/backward
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


def _class_logits(model: nn.Module, out: Any, goal: _Goal) -> torch.Tensor:
    """(B, C) logits of the head ``goal`` explains, at its token."""
    if goal.head == "label":
        return out.logits
    if goal.head == "tag":
        return out.logits[:, goal.position]
    if goal.head == "word":
        return out.prediction_logits.reshape(-1, out.prediction_logits.shape[-1])  # one masked row per sample
    if goal.head in ("nsp", "sop"):
        return _pair_head(model, out)[1]
    return out.start_logits if goal.head == "start" else out.end_logits


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes; a one-output (regression) head's raw value."""
    return logits.float() if logits.shape[-1] == 1 else torch.softmax(logits.float(), dim=-1)


def _base(model: nn.Module) -> nn.Module:
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix) if prefix and hasattr(model, prefix) else model


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
                 tolerance: float = TOLERANCE):
        self.model = model
        self.tok = tokenizer
        self.config = model.config
        limit = min(getattr(tokenizer, "model_max_length", 512), self.config.max_position_embeddings)
        self.max_length = limit if max_length is None else min(check_count("max_length", max_length, 2), limit)
        if not 0 < tolerance < 1:
            raise InputError(f"tolerance must be between 0 and 1 (a fraction of f(input) − f(baseline)), "
                             f"got {tolerance!r}")
        self.tolerance = tolerance
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

    # -- one text --------------------------------------------------------------------------
    def explain(self, text: str, pair: str | None = None, target: "str | Target | None" = None,
                method: str = "ig", steps: int | None = None, parts: bool = False) -> Explanation:
        """Attribute the model's probability of ``target`` on ``text`` (and ``pair``) by ``method``."""
        check_text(text, 0)
        if pair is not None:
            check_text(pair, 0, "text pair")
        batch = self.tok(text, pair, padding=False, max_length=self.max_length)
        return self.explain_ids(batch["input_ids"][0].tolist(), batch["token_type_ids"][0].tolist(),
                                target, method, steps, parts, text=text, pair=pair)

    def explain_ids(self, input_ids: Sequence[int], token_type_ids: Sequence[int] | None = None,
                    target: "str | Target | None" = None, method: str = "ig", steps: int | None = None,
                    parts: bool = False, text: str = "", pair: str | None = None) -> Explanation:
        """As :meth:`explain`, from token ids (no padding) already packed as [CLS] A [SEP] (B [SEP])."""
        if method not in METHODS:
            raise InputError(f"method {method!r}: choose one of {', '.join(METHODS)}")
        if steps is not None:
            check_count("steps", steps, 2, "integration steps")
        if parts and method != "ig":
            raise InputError("the per-sub-embedding split (parts) is an integrated-gradients result: use method 'ig'")
        started = time.perf_counter()
        model = self.model
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)
            T = ids.shape[1]
            tt = (torch.zeros_like(ids) if token_type_ids is None
                  else torch.tensor([list(token_type_ids)], dtype=torch.long, device=device))
            if tt.shape != ids.shape:
                raise InputError(f"{T} input ids but {tt.shape[1]} token type ids")
            mask = torch.ones_like(ids)
            tokens = self.tok.convert_ids_to_tokens(ids[0].tolist())
            with torch.no_grad():
                first = model(input_ids=ids, token_type_ids=tt, attention_mask=mask)
            goal = self.resolve(Target.parse(target), ids[0].tolist(), tokens, first)
            labels = _mlm_labels(goal, ids) if "word" in _heads(model, first) else None
            positions = torch.arange(T, device=device)[None]
            baseline = self.baseline_ids(ids)
            p_input, prediction, p_predicted = self._read(goal, ids, tt, positions, mask, labels)
            p_baseline = self._read(goal, baseline, tt, positions, mask, labels)[0]
            allowed = self.tolerance * max(abs(p_input - p_baseline), MIN_TOLERANCE / self.tolerance)
            result = Explanation(
                text=text, pair=pair, tokens=tokens, method=method, target=goal.description, target_kind=goal.head,
                target_class=goal.name, target_position=goal.position, prediction=prediction,
                predicted_probability=p_predicted, probability=p_input, baseline_probability=p_baseline,
                delta=0.0, steps=0, converged=True, tolerance=allowed, seconds=0.0)
            common = (goal, ids, tt, positions, mask, labels, baseline, steps, allowed)
            if method == "ig":
                self._integrated_gradients(result, *common)
                if parts:
                    result.parts = self._parts(*common)
            else:
                self._conductance(result, *common)
        finally:
            model.train(was_training)
        if not result.converged:
            result.notes.append(f"|delta| {abs(result.delta):.3g} is above the tolerance {result.tolerance:.3g} "
                                f"after {result.steps} steps: read the attributions as approximate"
                                + ("" if steps else f" (steps stop at {MAX_STEPS}; pass more steps)"))
        if result.parts is not None and not result.parts.converged:
            result.notes.append(f"per-part |delta| {abs(result.parts.delta):.3g} after {result.parts.steps} steps")
        result.seconds = round(time.perf_counter() - started, 3)
        return result

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
    def forward(self, goal: _Goal, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                position_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, C) probabilities of ``goal``'s head; the position ids are the given ones (a pre-hook on the
        position embedding: the model makes its own otherwise)."""
        kwargs = {} if labels is None else {"labels": labels}
        with _hooked(self.embeddings.position_embeddings, pre=lambda module, args: (position_ids,)):
            out = self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                             **kwargs)
        return _probabilities(_class_logits(self.model, out, goal))

    def forward_from_embeddings(self, goal: _Goal, embedding_output: torch.Tensor, *rest: torch.Tensor | None
                                ) -> torch.Tensor:
        """As :meth:`forward` with the embedding module's output replaced by ``embedding_output``: the
        layers see it as it is (nothing is added to it, nothing normalised again)."""
        with _hooked(self.embeddings, post=lambda module, args, output: embedding_output):
            return self.forward(goal, *rest)

    def _read(self, goal: _Goal, ids, tt, positions, mask, labels) -> tuple[float, str, float]:
        """(probability of the target, the head's prediction, its probability) on ``ids``."""
        with torch.no_grad():
            probs = self.forward(goal, ids, tt, positions, mask, labels)[0]
        best = int(probs.argmax()) if probs.numel() > 1 else 0
        if goal.head == "word":
            shown = self.tok.convert_ids_to_tokens([best])[0]
        elif goal.head in ("start", "end"):
            shown = f"{best} ({self.tok.convert_ids_to_tokens([int(ids[0, best])])[0]!r})"
        elif goal.head in PAIR_LABELS:
            shown = PAIR_LABELS[goal.head][best]
        else:
            shown = self._names(probs.numel())[best]
        return float(probs[goal.index]), shown, float(probs[best])

    def baseline_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """[PAD] for every token but [CLS], [SEP] and [MASK] (a [MASK] marks where the MLM head reads)."""
        keep = [getattr(self.tok, f"{name}_token_id", None) for name in ("cls", "sep", "mask")]
        kept = torch.zeros_like(ids, dtype=torch.bool)
        for k in keep:
            if k is not None:
                kept |= ids == k
        return torch.where(kept, ids, torch.full_like(ids, self.tok.pad_token_id))

    def _batch(self, T: int) -> int:
        return max(1, TOKENS_PER_BATCH // T)

    # -- the methods -----------------------------------------------------------------------
    def _integrated_gradients(self, result: Explanation, goal, ids, tt, positions, mask, labels, baseline, steps,
                              allowed) -> None:
        lig = LayerIntegratedGradients(lambda *a: self.forward(goal, *a), self.embeddings)

        def run(n: int) -> tuple[torch.Tensor, float]:
            attr, delta = lig.attribute(ids, baselines=baseline, target=goal.index,
                                        additional_forward_args=(tt, positions, mask, labels), n_steps=n,
                                        internal_batch_size=self._batch(ids.shape[1]), return_convergence_delta=True)
            return attr, float(delta.reshape(-1)[0])

        attr, result.delta, result.steps, result.converged = _converge(run, steps, allowed)
        result.attributions = _per_token(attr)

    def _parts(self, goal, ids, tt, positions, mask, labels, baseline, steps, allowed) -> Parts:
        e = self.embeddings
        with warnings.catch_warnings():  # "ensure that each layer is not solely dependent on another": they are not
            warnings.filterwarnings("ignore", "Multiple layers provided", UserWarning)
            lig = LayerIntegratedGradients(lambda *a: self.forward(goal, *a),
                                           [e.word_embeddings, e.position_embeddings, e.token_type_embeddings])
        zeros = torch.zeros_like(ids)
        with torch.no_grad():
            p_base = float(self.forward(goal, baseline, zeros, zeros, mask, labels)[0, goal.index])
            p_input = float(self.forward(goal, ids, tt, positions, mask, labels)[0, goal.index])
        wanted = self.tolerance * max(abs(p_input - p_base), MIN_TOLERANCE / self.tolerance)

        def run(n: int) -> tuple[list[torch.Tensor], float]:
            # the inputs in the forward's order (ids, segments, positions); the attributions in the layers' order
            attrs, delta = lig.attribute((ids, tt, positions.expand_as(ids)), baselines=(baseline, zeros, zeros),
                                         target=goal.index, additional_forward_args=(mask, labels), n_steps=n,
                                         internal_batch_size=self._batch(ids.shape[1]),
                                         return_convergence_delta=True)
            return attrs, float(delta.reshape(-1)[0])

        attrs, delta, n, ok = _converge(run, steps, wanted)
        word, position, segment = (_per_token(a) for a in attrs)
        return Parts(word, position, segment, p_base, delta, n, ok)

    def _conductance(self, result: Explanation, goal, ids, tt, positions, mask, labels, baseline, steps,
                     allowed) -> None:
        with torch.no_grad():
            start = self.embeddings(baseline, tt)   # the path's two ends: the embedding module's outputs
            end = self.embeddings(ids, tt)
        rows, deltas, used, ok = [], [], [], True
        for module in _layer_outputs(self.model):
            lc = LayerConductance(lambda emb, *rest: self.forward_from_embeddings(goal, emb, *rest), module)

            def run(n: int, lc=lc) -> tuple[torch.Tensor, float]:
                attr, delta = lc.attribute(end, baselines=start, target=goal.index,
                                           additional_forward_args=(ids, tt, positions, mask, labels), n_steps=n,
                                           internal_batch_size=self._batch(ids.shape[1]),
                                           return_convergence_delta=True)
                return attr, float(delta.reshape(-1)[0])

            attr, delta, n, converged = _converge(run, steps, allowed)
            rows.append(_per_token(attr))
            deltas.append(delta)
            used.append(n)
            ok = ok and converged
        worst = max(range(len(deltas)), key=lambda i: abs(deltas[i]))
        result.layers, result.layer_deltas, result.layer_steps = rows, deltas, used
        result.delta, result.steps, result.converged = deltas[worst], max(used), ok


def _mlm_labels(goal: _Goal, ids: torch.Tensor) -> torch.Tensor:
    """MLM labels for a model with an MLM head: the explained [MASK] only (the head then decodes that one row,
    not the whole vocabulary at every token), or none at all for its NSP/SOP head."""
    labels = torch.full_like(ids, IGNORE_INDEX)
    if goal.head == "word":
        labels[:, goal.position] = goal.index
    return labels


def _per_token(attr: torch.Tensor) -> list[float]:
    """(1, T, H) → T floats: the sum over the hidden dimension."""
    return [float(x) for x in attr.detach().reshape(attr.shape[0], attr.shape[1], -1).sum(-1)[0].cpu()]


def _converge(run: Callable[[int], tuple[Any, float]], steps: int | None, allowed: float
              ) -> tuple[Any, float, int, bool]:
    """``run(n)`` with ``steps`` when given, else with 16, 32, … steps until |delta| ≤ ``allowed`` (at most
    MAX_STEPS). Returns (attributions, delta, steps, converged)."""
    n = steps or START_STEPS
    while True:
        attr, delta = run(n)
        ok = abs(delta) <= allowed
        if ok or steps is not None or n >= MAX_STEPS:
            return attr, delta, n, ok
        n = min(2 * n, MAX_STEPS)


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
    goal = Target.parse(target)
    explainer = Explainer.from_pretrained(model, max_length)
    return [explainer.explain(t, p, goal, method, steps, parts) for t, p in zip(texts, pairs)]


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
    if scale <= 0 or value == 0:
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
    if result.method == "ig":
        values = result.attributions or []
        scale = max((abs(v) for v in values), default=0.0)
        d = _decimals(scale)
        lines.append(f"attribution per token (sum {sum(values):+.{d}f}; the largest |value| is {scale:.{d}f}):")
        cells = []
        for tok, v in zip(result.tokens, values):
            if color:
                shade = _shade(v, scale)
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
                cells.append(f"{_shade(row[t], scale)}{text}{reset}" if color and _shade(row[t], scale) else text)
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
    heights = [3.6 if r.method == "ig" else 1.2 + 0.35 * len(r.layers or []) + 1.1 for r in items]
    fig = Figure(figsize=(width, sum(heights) + 0.4 * len(items)))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(items), 1, height_ratios=heights)
    for k, r in enumerate(items):
        ax = fig.add_subplot(grid[k])
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
        else:
            import numpy as np

            data = np.array(r.layers, dtype=float)
            m = float(np.abs(data).max()) or 1.0
            image = ax.imshow(data, cmap="PiYG", vmin=-m, vmax=m, aspect="auto", origin="lower",
                              interpolation="nearest")
            ax.set_yticks(range(len(data)), [f"layer {i + 1}" for i in range(len(data))], fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="conductance")
        ax.set_xticks(list(x), r.tokens, rotation=60 if len(r.tokens) > 8 else 0, ha="right" if len(r.tokens) > 8
                      else "center", fontsize=8 if longest <= 80 else 6)
    fig.tight_layout()
    return atomic_write_with(out, lambda tmp: fig.savefig(tmp, dpi=100))


__all__ = ["explain", "Explainer", "Explanation", "Parts", "Target", "render_terminal", "plot", "write_json",
           "METHODS", "TOLERANCE", "PAIR_LABELS"]
