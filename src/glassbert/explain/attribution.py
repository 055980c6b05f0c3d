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

    from glassbert.explain import Explainer, explain
    [r] = explain("runs/sentiment", "the soup was great .")           # the predicted label, by IG
    explain("runs/mlm", "the cat [MASK] the mouse .", target="chased", method="conductance")

What a target is and how it is resolved: :mod:`glassbert.explain.targets`; how a result is shown:
:mod:`glassbert.explain.render`.
"""
from __future__ import annotations

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

from ..errors import InputError
from ..precision import check_precision, model_device, precision_context
from ..runfiles import atomic_write_json, check_target_file
from ..threads import set_threads_for
from ..tokenizer import IGNORE_INDEX, check_count, check_text, pad_rows
from .targets import PAIR_LABELS, Goal, Target, Targets

METHODS = ("ig", "conductance")
TOLERANCE = 0.05          # |delta| allowed, as a fraction of |f(input) − f(baseline)|
MIN_TOLERANCE = 1e-3      # … but never asked below this (0.1 percentage point of probability)
START_STEPS = 16
MAX_STEPS = 1024
TOKENS_PER_BATCH = 4096   # Captum's internal batch: at most this many tokens per forward/backward
ROWS_PER_BATCH = 16       # texts explained together (padded to the longest)
PARTS = ("word", "position", "segment")


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


def _class_logits(out: Any, head: str, where: torch.Tensor) -> torch.Tensor:
    """(B, C) logits of ``head``; a tagger's at token ``where[b]`` of row b."""
    if head == "label":
        return out.logits
    if head == "tag":
        return out.logits[torch.arange(out.logits.shape[0], device=where.device), where]
    if head == "word":
        return out.prediction_logits.reshape(-1, out.prediction_logits.shape[-1])  # one masked row per sample
    if head in PAIR_LABELS:
        return out.seq_relationship_logits  # NSP's, or SOP's (an ALBERT output's sop_logits is the same)
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
        self.targets = Targets(model, tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int | None = None) -> "Explainer":
        """A model directory (or an alias such as ``minilm``) loaded as the class its config names."""
        from ..modeldir import resolve_model_path
        from ..registry import load_model
        from ..tokenizer import Tokenizer

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
        return _Row(ids, segments, tokens, goal, "mlm" in getattr(self.model, "heads", ()), item.text, item.pair)

    def resolve(self, target: Target, ids: Sequence[int], tokens: Sequence[str], out: Any) -> Goal:
        """``target`` against one text, given the model's output on it: InputError when it does not fit."""
        return self.targets.resolve(target, ids, tokens, out)

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
                prediction=self.targets.shown(row.goal, row.tokens, int(best[i])),
                predicted_probability=float(p_in[i, best[i]]),
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
        return _probabilities(_class_logits(out, head, where))

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
    goal: Goal
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
        # the MLM head decodes the explained [MASK] only (not the vocabulary at every token), none for NSP/SOP
        decode = rows[0].mlm and rows[0].goal.head in ("word", *PAIR_LABELS)
        items = []
        for r in rows:
            item = {"input_ids": r.ids, "token_type_ids": r.segments}
            if decode:
                item["labels"] = [IGNORE_INDEX] * len(r.ids)
                if r.goal.head == "word":
                    item["labels"][r.goal.position] = r.goal.index
            items.append(item)
        padded = pad_rows(items, explainer.tok.pad_token_id)
        ids, tt, mask, labels = (padded.get(k) for k in ("input_ids", "token_type_ids", "attention_mask", "labels"))
        B, T = ids.shape
        where = torch.tensor([r.goal.position or 0 for r in rows])
        positions = torch.arange(T).expand(B, T).contiguous()
        ids, tt, mask, positions, where = (t.to(device) for t in (ids, tt, mask, positions, where))
        return cls(rows[0].goal.head, ids, explainer.baseline_ids(ids), [r.goal.index for r in rows],
                   (tt, positions, mask, None if labels is None else labels.to(device), where))


def _per_token(attr: torch.Tensor, row: int, length: int) -> list[float]:
    """Row ``row`` of (B, T, H) attributions, its first ``length`` tokens: the sum over the hidden dimension."""
    return [float(x) for x in attr[row, :length].detach().reshape(length, -1).sum(-1).cpu()]


# ─── the API the CLI calls ──────────────────────────────────────────────────────────────────
def explain(model: str | Path, texts: str | Sequence[str], target: "str | Target | None" = None,
            method: str = "ig", steps: int | None = None, pair: str | Sequence[str] | None = None,
            parts: bool = False, max_length: int | None = None, precision: str = "fp32",
            threads: int | None = None) -> list[Explanation]:
    """Explain ``model``'s prediction (a directory or an alias) on each of ``texts`` (with ``pair``: one second
    text for all, or one per text) for ``target`` by ``method`` ("ig" or "conductance"). ``precision``: fp32
    (default), or bf16 autocast for the forward and backward passes (bf16 | auto; glassbert.precision).
    ``threads``: this process's intra-op threads (default: chosen for the model, as the command chooses:
    glassbert.threads)."""
    check_precision(precision)
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
    set_threads_for(threads, model)
    explainer = Explainer.from_pretrained(model, max_length)
    with precision_context(precision, model_device(explainer.model)):
        return explainer.explain_texts(texts, pairs, Target.parse(target), method, steps, parts)


def write_json(results: Explanation | Sequence[Explanation], path: str | Path, *, overwrite: bool = False) -> Path:
    """The explanations as a JSON list (one object each), written atomically; an existing file needs
    ``overwrite``."""
    out = check_target_file(path, overwrite=overwrite, option="--json")
    items = [results] if isinstance(results, Explanation) else list(results)
    return atomic_write_json(out, [r.to_json() for r in items], indent=1)


__all__ = ["explain", "Explainer", "Explanation", "Item", "Parts", "write_json", "METHODS", "TOLERANCE",
           "MIN_TOLERANCE", "PARTS"]
