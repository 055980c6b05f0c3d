"""Extractive question answering: SQuAD v1.1 JSON.

    read_squad (each question's line kept) ─▶ prepare_qa_features: [CLS] question [SEP] context window
    [SEP] (Tokenizer.pack), overlapping windows like transformers' run_qa.py ─▶ BertForQuestionAnswering
    ─▶ decode_nbest: the best spans across an example's windows ─▶ evaluate_qa: exact match and F1
"""
from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import metrics as M
from ..errors import InputError
from ..heads import BertForQuestionAnswering
from ..textfiles import parse_json, read_text
from ..tokenizer import Tokenizer, check_count
from .common import (NO_POOLING, EncodedDataset, Evaluation, TaskData, about, existing_file, forward_sorted,
                     pad_id_of)

NAME = "qa"
MODEL = BertForQuestionAnswering
KEEP_BEST = "exact_match"
DEFAULT_MAX_LENGTH = 384
APPLY_COMMAND = "glassbert answer"
RECORD_KEYS: tuple[str, ...] = ()
TAKES_POOLING = False
DEFAULT_DOC_STRIDE = 128         # context tokens two neighbouring windows share
DEFAULT_N_BEST = 20              # start and end candidates per window, and answers kept per question
DEFAULT_MAX_ANSWER_LENGTH = 30   # tokens
MAX_QUERY_LENGTH = 64  # question word pieces kept, as the original BERT does


# ─── reading: JSON that remembers lines ─────────────────────────────────────────────────────
class _Located(dict):
    """A JSON object that knows the line of each key's value (``key_lines``) and of its ``{``."""

    line: int = 0
    key_lines: dict[str, int]


def load_json_with_lines(text: str) -> Any:
    """``json.loads(text)``, with every object a dict that knows its lines (see :class:`_Located`)."""
    newlines = [match.start() for match in re.finditer("\n", text)]

    def line_of(index: int) -> int:
        return bisect.bisect_left(newlines, index) + 1

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):
        _, start = s_and_end
        starts: list[int] = []

        def scan(string: str, index: int):  # the values of this object (nested ones use scan_once)
            starts.append(index)
            return scan_once(string, index)

        pairs, end = json.decoder.JSONObject(s_and_end, strict, scan, None, list, memo)
        located = _Located(pairs)
        located.line = line_of(start - 1)
        located.key_lines = {key: line_of(at) for (key, _), at in zip(pairs, starts)}
        return located, end

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder.decode(text)


@dataclass(frozen=True)
class SquadExample:
    """One question on one context; ``answers`` are (text, start character in context).

    ``line`` is the line of the question's id in the file it was read from (0 when not read).
    """

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]]
    title: str = ""
    line: int = field(default=0, compare=False)


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """obj[key], checked to be a ``kind``; errors say where in the file."""
    if not isinstance(obj, dict) or key not in obj:
        raise InputError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(k.__name__ for k in kinds)
        raise InputError(f"{where}: {key!r} must be {wanted}, got {type(value).__name__}")
    return value


def _at(path: Path, obj: Any, key: str | None = None) -> str:
    """'<path> line <n>' of ``obj`` (of its ``key`` when given)."""
    if not isinstance(obj, _Located):
        return str(path)
    return f"{path} line {obj.key_lines.get(key, obj.line) if key else obj.line}"


def read_squad(path: str | Path) -> list[SquadExample]:
    """Read SQuAD v1.1 JSON; every answer must appear in its context at ``answer_start``.

    A question with an empty ``answers`` list is kept (a question to predict, not to train on).
    Errors about a question name the line of its id: ``<file> line <n>: question id '<id>': …``.
    """
    path = existing_file(path, "SQuAD")
    text = read_text(path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    try:
        root = parse_json(text, path, load_json_with_lines)
    except InputError as e:  # e.g. a CSV given where SQuAD's JSON goes
        raise InputError(f'{e}: expected SQuAD v1.1 JSON ({{"version": "1.1", "data": [articles]}})') from None
    examples: list[SquadExample] = []
    seen: set[str] = set()
    for a, article in enumerate(_require(root, "data", list, str(path))):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_require(article, "paragraphs", list, f"{_at(path, article)}: data[{a}]")):
            where = f"{_at(path, paragraph)}: data[{a}].paragraphs[{p}]"
            context = _require(paragraph, "context", str, where)
            for q, qa in enumerate(_require(paragraph, "qas", list, where)):
                qid = str(_require(qa, "id", (str, int), f"{_at(path, qa)}: data[{a}].paragraphs[{p}].qas[{q}]"))
                line = qa.key_lines.get("id", 0) if isinstance(qa, _Located) else 0
                qa_where = f"{_at(path, qa, 'id')}: question id {qid!r}"
                if qid in seen:
                    raise InputError(f"{qa_where}: duplicate question id")
                seen.add(qid)
                question = _require(qa, "question", str, qa_where)
                answers = []
                for answer in _require(qa, "answers", list, qa_where):
                    answer_text = _require(answer, "text", str, qa_where)
                    start = _require(answer, "answer_start", int, qa_where)
                    found = context[start : start + len(answer_text)]
                    if start < 0 or found != answer_text:
                        raise InputError(f"{qa_where}: answer {answer_text!r} is not at answer_start {start} "
                                         f"of the context (the context there reads {found!r})")
                    answers.append((answer_text, start))
                examples.append(SquadExample(qid, question, context, answers, title, line))
    if not examples:
        raise InputError(f"{path}: no questions")
    return examples


# ─── features: overlapping windows ──────────────────────────────────────────────────────────
@dataclass(frozen=True)
class QAFeature:
    """One window of [CLS] question [SEP] context-slice [SEP].

    ``offsets[i]`` is the (start, end) character span of token i in the example's context, or None
    for question and special tokens. ``start_position``/``end_position`` index the answer's first
    and last token, or 0 ([CLS]) when the answer is not wholly inside this window.
    """

    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]
    start_position: int
    end_position: int
    example_index: int
    offsets: list[tuple[int, int] | None]

    def to_item(self) -> dict[str, list[int] | int]:
        return {"input_ids": self.input_ids, "token_type_ids": self.token_type_ids,
                "attention_mask": self.attention_mask, "start_positions": self.start_position,
                "end_positions": self.end_position}


def _windows(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) windows of ``size`` tokens overlapping by ``overlap`` (as `tokenizers` does)."""
    if length <= size:
        return [(0, length)]
    windows = []
    for start in range(0, length, size - overlap):
        stop = min(start + size, length)
        windows.append((start, stop))
        if stop == length:
            break
    return windows


def _answer_tokens(answers: Sequence[tuple[str, int]], offsets: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """(first, last) index into ``offsets`` covering the first answer, or None if it is not inside."""
    if not answers or not offsets:
        return None
    text, start_char = answers[0]
    end_char = start_char + len(text)
    if offsets[0][0] > start_char or offsets[-1][1] < end_char:
        return None
    first = max(i for i, (s, _) in enumerate(offsets) if s <= start_char)
    last = min(i for i, (_, e) in enumerate(offsets) if e >= end_char)
    return first, last


def prepare_qa_features(examples: Sequence[SquadExample], tokenizer: Tokenizer, max_length: int = DEFAULT_MAX_LENGTH,
                        doc_stride: int = DEFAULT_DOC_STRIDE, max_query_length: int = MAX_QUERY_LENGTH
                        ) -> list[QAFeature]:
    """Split each example into overlapping windows of at most ``max_length`` tokens.

    Windows are exactly those of transformers' ``BertTokenizerFast(question, context,
    truncation="only_second", max_length=max_length, stride=doc_stride,
    return_overflowing_tokens=True)``: ``doc_stride`` is the number of context tokens two
    neighbouring windows share (transformers' meaning, not the original BERT's step size).
    Questions are first cut to ``max_query_length`` word pieces, as the original BERT does.
    """
    _check_windows(max_length, doc_stride, max_query_length)
    backend = tokenizer.backend
    features: list[QAFeature] = []
    for index, example in enumerate(examples):
        question = backend.encode(example.question, add_special_tokens=False).ids[:max_query_length]
        context = backend.encode(example.context, add_special_tokens=False)
        size = max_length - len(question) - 3
        if size < 1 or (len(context.ids) > size and size <= doc_stride):
            where = f"line {example.line}: " if example.line else ""
            raise InputError(f"{where}question id {example.id!r}: max_length {max_length} leaves {size} context "
                             f"tokens per window after a {len(question)}-token question; doc_stride {doc_stride} "
                             f"must be smaller")
        head = len(question) + 2  # [CLS] question [SEP]
        for start, stop in _windows(len(context.ids), size, doc_stride):
            ids, type_ids = tokenizer.pack(question, context.ids[start:stop])
            span_offsets = [tuple(o) for o in context.offsets[start:stop]]
            answer = _answer_tokens(example.answers, span_offsets)  # type: ignore[arg-type]
            start_position, end_position = (answer[0] + head, answer[1] + head) if answer else (0, 0)
            features.append(QAFeature(
                input_ids=ids, token_type_ids=type_ids, attention_mask=[1] * len(ids),
                start_position=start_position, end_position=end_position, example_index=index,
                offsets=[None] * head + span_offsets + [None],  # type: ignore[list-item]
            ))
    return features


def _check_windows(max_length: int, doc_stride: int, max_query_length: int) -> None:
    """The window options are whole numbers that leave room for [CLS] question [SEP] context [SEP]."""
    check_count("max_length", max_length, 4, "[CLS] question [SEP] context [SEP]")
    check_count("doc_stride", doc_stride, 0)
    check_count("max_query_length", max_query_length, 1)


def qa_dataset(features: Sequence[QAFeature], tokenizer: Any) -> EncodedDataset:
    """Model-ready items (input_ids, token_type_ids, attention_mask, start/end_positions)."""
    return EncodedDataset([feature.to_item() for feature in features], pad_id_of(tokenizer))


# ─── decoding: n-best spans ─────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class SpanCandidate:
    """One candidate answer: its text, score = start_logit + end_logit, softmax probability (over the
    candidates kept), and its characters ``context[start:end]`` (None for the empty answer of a question
    with no valid span)."""

    text: str
    score: float
    start_logit: float
    end_logit: float
    probability: float
    feature_index: int
    start_token: int
    end_token: int
    start: int | None = None
    end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """What an n-best file holds for it (transformers' nbest_predictions.json keys, plus the span)."""
        return {"text": self.text, "probability": self.probability, "start_logit": self.start_logit,
                "end_logit": self.end_logit, "score": self.score, "start": self.start, "end": self.end}


def _to_numpy(row: Any) -> np.ndarray:
    if isinstance(row, torch.Tensor):
        return row.detach().float().cpu().numpy()
    return np.asarray(row)


def decode_nbest(start_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
                 end_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
                 features: Sequence[QAFeature], examples: Sequence[SquadExample], n_best: int = DEFAULT_N_BEST,
                 max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH) -> dict[str, list[SpanCandidate]]:
    """Question id -> up to ``n_best`` candidates, best first (transformers' postprocess, v1.1).

    For every window of an example: take the ``n_best`` highest start and end logits, drop
    pairs outside the context, with end < start, or longer than ``max_answer_length`` tokens;
    rank what is left across all windows by start + end logit. An example with no valid span
    gets one empty candidate ("").
    """
    check_count("n_best", n_best, 1)
    check_count("max_answer_length", max_answer_length, 1)
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise InputError(f"{len(features)} features but {len(start_logits)} start and {len(end_logits)} "
                         f"end logit rows")
    by_example: dict[int, list[int]] = {}
    for feature_index, feature in enumerate(features):
        by_example.setdefault(feature.example_index, []).append(feature_index)
    results: dict[str, list[SpanCandidate]] = {}
    for example_index, example in enumerate(examples):
        candidates: list[tuple[float, float, float, int, int, int]] = []
        for feature_index in by_example.get(example_index, []):
            starts = np.asarray(_to_numpy(start_logits[feature_index]), dtype=np.float64)
            ends = np.asarray(_to_numpy(end_logits[feature_index]), dtype=np.float64)
            offsets = features[feature_index].offsets
            top_starts = np.argsort(starts)[-1 : -n_best - 1 : -1].tolist()
            top_ends = np.argsort(ends)[-1 : -n_best - 1 : -1].tolist()
            for s in top_starts:
                for e in top_ends:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    candidates.append((starts[s] + ends[e], starts[s], ends[e], feature_index, s, e))
        candidates.sort(key=lambda c: c[0], reverse=True)
        candidates = candidates[:n_best]
        if not candidates:
            results[example.id] = [SpanCandidate("", 0.0, 0.0, 0.0, 1.0, -1, 0, 0)]
            continue
        scores = np.array([c[0] for c in candidates])
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        spans = []
        for (score, s_logit, e_logit, feature_index, s, e), probability in zip(candidates, probabilities):
            offsets = features[feature_index].offsets
            first, last = offsets[s][0], offsets[e][1]  # type: ignore[index]
            spans.append(SpanCandidate(example.context[first:last], float(score), float(s_logit), float(e_logit),
                                       float(probability), feature_index, s, e, first, last))
        results[example.id] = spans
    return results


def decode_spans(start_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
                 end_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
                 features: Sequence[QAFeature], examples: Sequence[SquadExample], n_best: int = DEFAULT_N_BEST,
                 max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH) -> dict[str, str]:
    """Question id -> best answer text (the top candidate of :func:`decode_nbest`)."""
    nbest = decode_nbest(start_logits, end_logits, features, examples, n_best, max_answer_length)
    return {qid: spans[0].text for qid, spans in nbest.items()}


# ─── evaluation ─────────────────────────────────────────────────────────────────────────────
def qa_logits(model: nn.Module, features: Sequence[QAFeature], pad_id: int, batch_size: int = 64,
              progress: bool = False, desc: str = "eval") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(start logits, end logits) of every window's tokens, in the features' order (length-sorted batches)."""
    def read(output: Any, row: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        return (output.start_logits[row, :length].float().cpu().numpy(),
                output.end_logits[row, :length].float().cpu().numpy())

    spans = forward_sorted(model, [feature.to_item() for feature in features], pad_id, batch_size, read, progress,
                           desc)
    return [s for s, _ in spans], [e for _, e in spans]


def evaluate_qa(model: nn.Module, features: Sequence[QAFeature], examples: Sequence[SquadExample], pad_id: int,
                batch_size: int = 64, n_best: int = DEFAULT_N_BEST, max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
                progress: bool = False) -> Evaluation:
    """SQuAD v1.1 exact match and F1 (percent) of the best span of every question.

    ``details``: predictions (question id → answer), text (printable).
    """
    starts, ends = qa_logits(model, features, pad_id, batch_size, progress)
    predictions = decode_spans(starts, ends, features, examples, n_best=n_best, max_answer_length=max_answer_length)
    scores = M.squad_evaluate(predictions, M.squad_gold(examples))
    return Evaluation(
        {"exact_match": scores["exact_match"], "f1": scores["f1"]},
        {"predictions": predictions, "text": f"exact match {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}"},
    )


# ─── the task, for the job ──────────────────────────────────────────────────────────────────
def prepare(args: Any, tok: Tokenizer, max_length: int) -> TaskData:
    """Read ``args.train`` (the answered questions) and ``args.eval`` into overlapping windows."""
    _check_windows(max_length, args.doc_stride, MAX_QUERY_LENGTH)  # an option's error, not the data file's
    examples = read_squad(args.train)
    answered = [ex for ex in examples if ex.answers]
    if not answered:
        raise InputError(f"{args.train}: no question has an answer to train on")
    with about(args.train):
        features = prepare_qa_features(answered, tok, max_length, args.doc_stride)
    dataset = qa_dataset(features, tok)
    if args.eval is None:
        return TaskData(dataset, None, None, len(answered))
    eval_examples = read_squad(args.eval)
    with about(args.eval):
        eval_features = prepare_qa_features(eval_examples, tok, max_length, args.doc_stride)

    def evaluate(model: nn.Module, progress: bool) -> Evaluation:
        return evaluate_qa(model, eval_features, eval_examples, dataset.pad_id, 2 * args.batch_size,
                           args.n_best, args.max_answer_length, progress)
    return TaskData(dataset, None, evaluate, len(answered), len(eval_examples), qa_dataset(eval_features, tok))


def choose_pooling(args: Any, model_dir: Path, freeze: str) -> tuple[str | None, str]:
    return NO_POOLING  # a start and an end score for each token: nothing pooled


def run_info(args: Any) -> dict[str, Any]:
    """How `glassbert answer` cuts contexts into windows and decodes spans, as training did."""
    return {"doc_stride": args.doc_stride, "n_best": args.n_best, "max_answer_length": args.max_answer_length}


def eval_record(final: Evaluation, out: Path, labels: list[str] | None, step: int | None) -> dict[str, Any]:
    """What eval.json adds for this task: nothing (the predictions stay out of it, as before)."""
    return {}


def hint(final: Evaluation | None, labels: list[str] | None, lr: float, trainable: int) -> str | None:
    return None


__all__ = ["NAME", "MODEL", "KEEP_BEST", "DEFAULT_MAX_LENGTH", "APPLY_COMMAND", "RECORD_KEYS", "TAKES_POOLING",
           "choose_pooling", "run_info", "hint", "DEFAULT_DOC_STRIDE", "DEFAULT_N_BEST",
           "DEFAULT_MAX_ANSWER_LENGTH", "load_json_with_lines", "SquadExample", "read_squad", "QAFeature",
           "prepare_qa_features", "qa_dataset", "SpanCandidate", "decode_nbest", "decode_spans", "qa_logits",
           "evaluate_qa", "prepare", "eval_record"]
