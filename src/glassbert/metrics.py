"""Evaluation metrics for the fine-tuning tasks.

- classification: accuracy, confusion matrix, per-class precision/recall/F1, macro-F1, a PNG plot;
- token classification: entity-level precision/recall/F1 in the conlleval way (as seqeval's default mode);
- question answering: SQuAD v1.1 exact match and F1, exactly as the official ``evaluate-v1.1.py``.

Everything is plain Python/numpy so the numbers can be checked by hand.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import InputError

# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def _as_int_array(values: Iterable[int], name: str) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if array.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    return array.astype(np.int64)


def _check_pair(y_true: Iterable[int], y_pred: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    true = _as_int_array(y_true, "y_true")
    pred = _as_int_array(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise InputError(f"y_true has {true.size} items but y_pred has {pred.size}")
    if true.size == 0:
        raise InputError("cannot score an empty set of predictions")
    return true, pred


def accuracy(y_true: Iterable[int], y_pred: Iterable[int]) -> float:
    """Fraction of predictions equal to the gold label."""
    true, pred = _check_pair(y_true, y_pred)
    return float((true == pred).mean())


def confusion_matrix(
    y_true: Iterable[int], y_pred: Iterable[int], num_labels: int | None = None
) -> np.ndarray:
    """Counts (num_labels, num_labels): row = gold class, column = predicted class."""
    true, pred = _check_pair(y_true, y_pred)
    if min(true.min(), pred.min()) < 0:
        raise InputError("class ids must be >= 0")
    needed = int(max(true.max(), pred.max())) + 1
    if num_labels is None:
        num_labels = needed
    elif needed > num_labels:
        raise InputError(f"class id {needed - 1} is out of range for num_labels={num_labels}")
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0 (sklearn's zero_division=0)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


@dataclass(frozen=True)
class ClassificationReport:
    """Per-class and summary scores; arrays are indexed by class id."""

    accuracy: float
    macro_f1: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    label_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly summary keyed by label name."""
        names = self.label_names or [str(i) for i in range(len(self.f1))]
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {
                name: {
                    "precision": float(self.precision[i]),
                    "recall": float(self.recall[i]),
                    "f1": float(self.f1[i]),
                    "support": int(self.support[i]),
                }
                for i, name in enumerate(names)
            },
            "confusion": self.confusion.tolist(),
        }


def classification_report(
    y_true: Iterable[int],
    y_pred: Iterable[int],
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
) -> ClassificationReport:
    """Accuracy, per-class precision/recall/F1/support and macro-F1.

    Macro-F1 averages over the classes that occur in y_true or y_pred (as sklearn's
    ``f1_score(average="macro")``); a class never seen on either side does not drag it down.
    """
    if label_names is not None and num_labels is None:
        num_labels = len(label_names)
    matrix = confusion_matrix(y_true, y_pred, num_labels)
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support.astype(np.float64))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    return ClassificationReport(
        accuracy=float(tp.sum() / matrix.sum()),
        macro_f1=float(f1[present].mean()),
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        confusion=matrix,
        label_names=list(label_names) if label_names is not None else [],
    )


def macro_f1(y_true: Iterable[int], y_pred: Iterable[int], num_labels: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in y_true or y_pred."""
    return classification_report(y_true, y_pred, num_labels).macro_f1


def confusion_cells(matrix: np.ndarray) -> tuple[np.ndarray, list[list[str]], str]:
    """What the confusion PNG shows: each cell's share of its gold row (0..1, the colour), its text
    ("count" and the row percentage) and the accuracy line of the title."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    count = (lambda v: f"{v:d}") if np.issubdtype(matrix.dtype, np.integer) else (lambda v: f"{v:.2f}")
    texts = [[f"{count(matrix[r, c])}\n{100 * share[r, c]:.1f}%" for c in range(matrix.shape[1])]
             for r in range(matrix.shape[0])]
    total, right = matrix.sum(), np.trace(matrix)
    accuracy = f"accuracy {100 * right / total:.1f}% ({count(right)}/{count(total)})" if total else "no examples"
    return share, texts, accuracy


def plot_confusion(
    matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> Path:
    """Save the confusion matrix as a PNG: every cell's count and its percentage of the gold row (the colour),
    the accuracy in the title; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"confusion matrix must be square, got shape {matrix.shape}")
    if len(labels) != matrix.shape[0]:
        raise InputError(f"{len(labels)} labels for a {matrix.shape[0]}x{matrix.shape[0]} matrix")
    n = matrix.shape[0]
    share, texts, accuracy = confusion_cells(matrix)
    size = max(4.5, 0.75 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    try:
        image = ax.imshow(100 * share, cmap="Blues", vmin=0, vmax=100)
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("% of the gold row")
        ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), labels=list(labels))
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{title}\n{accuracy}")
        for row in range(n):
            for col in range(n):
                color = "white" if share[row, col] > 0.5 else "black"
                ax.text(col, row, texts[row][col], ha="center", va="center", color=color,
                        fontsize=9 if n <= 8 else 7)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Entity-level scores for tagged sequences (conlleval semantics)
# ---------------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); anything else is an error."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES":
        return tag[0], tag[2:]
    raise InputError(f"tag {tag!r} is neither 'O' nor a B-/I-/E-/S- prefixed entity tag")


def _chunk_ends(prev_prefix: str, prev_type: str, prefix: str, type_: str) -> bool:
    """conlleval's endOfChunk: does a chunk end between the previous tag and this one?"""
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I"):
        return prefix in ("B", "S", "O") or type_ != prev_type
    return False


def _chunk_starts(prev_prefix: str, prev_type: str, prefix: str, type_: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at this tag?"""
    if prefix in ("B", "S"):
        return True
    if prefix in ("I", "E"):
        return prev_prefix in ("E", "S", "O") or type_ != prev_type
    return False


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities as (type, start, end_exclusive), conlleval style.

    An entity is B-X followed by I-X…; an I-X with no B-X before it (after O or another type)
    starts a new entity, as conlleval does (IOB1 and IOBES tags work too).
    """
    entities: list[tuple[str, int, int]] = []
    prev_prefix, prev_type = "O", ""
    start = -1
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, type_ = _split_tag(tag)
        if start >= 0 and _chunk_ends(prev_prefix, prev_type, prefix, type_):
            entities.append((prev_type, start, i))
            start = -1
        if _chunk_starts(prev_prefix, prev_type, prefix, type_):
            start = i
        prev_prefix, prev_type = prefix, type_
    return entities


@dataclass(frozen=True)
class EntityScores:
    """Micro-averaged entity precision/recall/F1 and the same per entity type."""

    precision: float
    recall: float
    f1: float
    per_type: dict[str, dict[str, float]]
    num_gold: int
    num_pred: int
    num_correct: int

    def to_dict(self) -> dict[str, object]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "per_type": self.per_type,
            "num_gold": self.num_gold,
            "num_pred": self.num_pred,
            "num_correct": self.num_correct,
        }


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_scores(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> EntityScores:
    """Entity-level P/R/F1: a predicted entity counts only if type, start and end all match."""
    if len(true_tags) != len(pred_tags):
        raise InputError(f"{len(true_tags)} gold sentences but {len(pred_tags)} predicted")
    gold: set[tuple[int, str, int, int]] = set()
    pred: set[tuple[int, str, int, int]] = set()
    for n, (t, p) in enumerate(zip(true_tags, pred_tags)):
        if len(t) != len(p):
            raise InputError(f"sentence {n}: {len(t)} gold tags but {len(p)} predicted")
        gold.update((n, *entity) for entity in get_entities(t))
        pred.update((n, *entity) for entity in get_entities(p))
    correct = gold & pred
    per_type: dict[str, dict[str, float]] = {}
    for type_ in sorted({e[1] for e in gold | pred}):
        g = sum(1 for e in gold if e[1] == type_)
        p = sum(1 for e in pred if e[1] == type_)
        c = sum(1 for e in correct if e[1] == type_)
        precision, recall, f1 = _prf(c, p, g)
        per_type[type_] = {"precision": precision, "recall": recall, "f1": f1, "support": g}
    precision, recall, f1 = _prf(len(correct), len(pred), len(gold))
    return EntityScores(precision, recall, f1, per_type, len(gold), len(pred), len(correct))


# ---------------------------------------------------------------------------------------------
# SQuAD v1.1 (the official evaluate-v1.1.py, function for function)
# ---------------------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop articles (a/an/the), collapse whitespace."""
    text = text.lower()
    punctuation = set(string.punctuation)
    text = "".join(ch for ch in text if ch not in punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 between normalized prediction and one gold answer."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 if the normalized strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def _max_over_ground_truths(metric, prediction: str, ground_truths: Sequence[str]) -> float:
    return max(metric(prediction, truth) for truth in ground_truths)


def squad_evaluate(
    predictions: Mapping[str, str], gold_answers: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """{'exact_match': %, 'f1': %} over every gold question, as evaluate-v1.1.py.

    ``gold_answers`` maps question id -> gold answer texts (see :func:`squad_gold`). A question
    with no prediction scores 0 (the official script's "Unanswered question" rule); questions
    without gold answers are skipped.
    """
    exact = f1 = 0.0
    total = 0
    for qid, truths in gold_answers.items():
        if not truths:
            continue
        total += 1
        if qid not in predictions:
            continue
        exact += _max_over_ground_truths(squad_exact_match, predictions[qid], truths)
        f1 += _max_over_ground_truths(squad_f1, predictions[qid], truths)
    if total == 0:
        raise InputError("no gold answers to evaluate against")
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def squad_gold(examples: Iterable[object]) -> dict[str, list[str]]:
    """Question id -> gold answer texts, from SquadExample-like objects (``.id``, ``.answers``)."""
    return {ex.id: [text for text, _ in ex.answers] for ex in examples}  # type: ignore[attr-defined]
