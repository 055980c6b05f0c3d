"""`glassbert answer`: a fine-tuned extractive QA model applied to questions on a context, or to a SQuAD file.

    questions + context | SQuAD v1.1 JSON ─▶ prepare_qa_features (the run's max_length, doc_stride) ─▶
    BertForQuestionAnswering (qa_logits) ─▶ decode_nbest (the run's n_best, max_answer_length) ─▶
    answers with character spans ─▶ {id: answer} (the official predictions file) and an n-best file;
    EM/F1 when the SQuAD file holds answers
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import metrics as M
from ..errors import InputError
from ..heads import BertForQuestionAnswering
from ..precision import check_precision, precision_context
from ..quantize import for_inference
from ..runfiles import atomic_write_text
from ..tokenizer import check_count, check_text
from . import qa
from .common import FineTuned, about, load_fine_tuned, pad_id_of
from .qa import SpanCandidate, SquadExample


@dataclass(frozen=True)
class Answer:
    """The answers to one question, best first (``candidates[0]`` is the answer)."""

    id: str
    question: str
    candidates: list[SpanCandidate]

    @property
    def best(self) -> SpanCandidate:
        return self.candidates[0]


@dataclass(frozen=True)
class Answers:
    """Every question's answers, in input order; ``scores`` (exact_match, f1 in percent) when the input
    held gold answers."""

    answers: list[Answer]
    scores: dict[str, float] | None = None

    def predictions(self) -> dict[str, str]:
        """Question id → answer text: the official SQuAD predictions file."""
        return {a.id: a.best.text for a in self.answers}

    def nbest(self, k: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """Question id → its first ``k`` (all when None) candidates, as transformers' nbest_predictions.json."""
        return {a.id: [c.to_dict() for c in a.candidates[:k]] for a in self.answers}


def questions_on(context: str, questions: Sequence[str]) -> list[SquadExample]:
    """``questions`` on one ``context``, with ids q1, q2, … (no gold answers)."""
    context = check_text(context, 0, "context")
    if not context.strip():
        raise InputError("the context is empty: give the passage that holds the answer")
    if not questions:
        raise InputError("no question to answer")
    examples = []
    for i, question in enumerate(questions):
        if not check_text(question, i, "question").strip():
            raise InputError(f"question {i + 1} is empty")
        examples.append(SquadExample(f"q{i + 1}", question, context, []))
    return examples


def load_answerer(model: str | Path | FineTuned, device: str | torch.device = "cpu") -> FineTuned:
    """The QA model ``model`` (a `finetune --task qa` run) loaded once, for :func:`answer` to apply as often as
    asked."""
    return load_fine_tuned(model, qa.NAME, BertForQuestionAnswering, device)


def answer(model: str | Path | FineTuned, questions: Sequence[str] | None = None, context: str | None = None,
           input: str | Path | None = None, n_best: int | None = None, batch_size: int = 64,
           progress: bool | None = None, device: str = "cpu", precision: str = "fp32",
           max_length: int | None = None) -> Answers:
    """Answer ``questions`` on ``context``, or every question of the SQuAD v1.1 file ``input``, with the QA
    model ``model`` (a `finetune --task qa` run: its max_length, doc_stride, n_best and max_answer_length; or
    the run :func:`load_answerer` loaded: ``device`` is then its own).

    Each answer keeps ``n_best`` candidates (default: the run's n_best, 20). When ``input`` holds gold
    answers, ``scores`` gives SQuAD exact match and F1 against them. ``max_length``: the tokens of a window
    (default: the run's). ``precision``: fp32 (default), bf16 or auto (the model under bf16 autocast:
    glassbert.precision; the logits are decoded in float32).
    """
    check_precision(precision)
    run = load_answerer(model, device)
    for_inference(run.model, precision, run.device)  # once (glassbert.quantize)
    info = run.info
    if input is not None:
        if questions or context is not None:
            raise InputError("give questions and a context, or an input file (one of them)")
        examples = qa.read_squad(input)
        progress = True if progress is None else progress
    elif context is None or not questions:
        raise InputError("give questions and a context (both), or an input file")
    else:
        examples = questions_on(context, [questions] if isinstance(questions, str) else questions)
        progress = False if progress is None else progress
    keep = info.get("n_best") or qa.DEFAULT_N_BEST
    if n_best is not None:
        keep = max(keep, check_count("n_best", n_best, 1))
    max_length = min(max_length or info.get("max_length") or qa.DEFAULT_MAX_LENGTH, run.config.max_position_embeddings)
    with about(Path(input)) if input is not None else contextlib.nullcontext():
        features = qa.prepare_qa_features(examples, run.tokenizer, max_length,
                                          info.get("doc_stride") or qa.DEFAULT_DOC_STRIDE)
    with precision_context(precision, run.device):
        starts, ends = qa.qa_logits(run.model, features, pad_id_of(run.tokenizer), batch_size, progress, "answer")
    decoded = qa.decode_nbest(starts, ends, features, examples, keep,
                              info.get("max_answer_length") or qa.DEFAULT_MAX_ANSWER_LENGTH)
    answers = [Answer(ex.id, ex.question, decoded[ex.id][:n_best] if n_best else decoded[ex.id]) for ex in examples]
    result = Answers(answers)
    if any(ex.answers for ex in examples):
        result = Answers(answers, M.squad_evaluate(result.predictions(), M.squad_gold(examples)))
    return result


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented UTF-8 JSON in ``path``, atomically (predictions and n-best files)."""
    return atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def format_answers(result: Answers, k: int = 1) -> str:
    """Each question and its first ``k`` answers with their character spans, scores and probabilities."""
    blocks = []
    for a in result.answers:
        lines = [f"[{a.id}] {a.question}"]
        for rank, c in enumerate(a.candidates[:k], start=1):
            where = f"characters {c.start}:{c.end}" if c.start is not None else "no answer found"
            lines.append(f"  {rank}. {c.text!r}  ({where}, score {c.score:.2f}, probability {c.probability:.3f})")
        blocks.append("\n".join(lines))
    if result.scores is not None:
        blocks.append(f"exact match {result.scores['exact_match']:.2f}  F1 {result.scores['f1']:.2f} "
                      f"({len(result.answers)} questions)")
    return "\n\n".join(blocks)


__all__ = ["Answer", "Answers", "questions_on", "answer", "load_answerer", "write_json", "format_answers"]
