"""Sequence classification: CSV/TSV/JSONL rows of text (and a second text) with a label.

    read_classification (each row's line kept) ─▶ encode_classification ─▶ BertForSequenceClassification
    ─▶ evaluate_classification: labels by argmax; accuracy, macro-F1, loss and the confusion matrix
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics as M
from ..errors import InputError
from ..heads import BertForSequenceClassification
from ..textfiles import field_name, iter_table, table_cell
from ..tokenizer import Tokenizer
from .common import (EncodedDataset, Evaluation, TaskData, existing_file, forward_sorted, pad_id_of,
                     truncating_copy)
from .common import choose_pooling as common_choose_pooling

NAME = "classify"
MODEL = BertForSequenceClassification
KEEP_BEST = "accuracy"
DEFAULT_MAX_LENGTH = 128
APPLY_COMMAND = "glassbert classify"
RECORD_KEYS = ("labels",)  # the gold label: the explorer shows each eval prediction right or wrong
TAKES_POOLING = True
CONFUSION_FILE = "confusion.png"


# ─── reading ────────────────────────────────────────────────────────────────────────────────
@dataclass
class ClassificationData:
    """Texts (and optional second texts) with integer labels; ``label_names[id]`` names each id.

    ``lines[i]`` is the line of row i in ``path`` (None for data not read from a file).
    """

    texts: list[str]
    pairs: list[str] | None
    label_ids: list[int]
    label_names: list[str]
    lines: list[int] | None = None
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))


# Reading tables is glassbert.textfiles' (the one reader of a user's files): iter_table, and cell as table_cell.
cell = table_cell


def label_cell(path: Path, line: int, row: dict[str, Any], column: str, header: list[str],
               option: str = "--label-column") -> str:
    """The label in ``column`` of one row, stripped; an empty cell (or JSON null) is an error, not a
    class named ''."""
    if column in row and row[column] is None:
        label = ""
    else:
        label = cell(path, line, row, column, header, option).strip()
    if not label:
        raise InputError(f"{path} line {line}: empty label in {field_name(path)} {column!r}; every row needs a "
                         f"label (fill it in or remove the row)")
    return label


def _sorted_label_names(names: set[str]) -> list[str]:
    """Sorted label names; numerically when they are all integers ('2' before '10')."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def read_classification(path: str | Path, text_column: str, label_column: str,
                        text_pair_column: str | None = None,
                        labels: Sequence[str] | None = None) -> ClassificationData:
    """Read a CSV/TSV/JSONL classification file.

    Texts may be empty ([CLS] [SEP] is an input like any other); labels may not. ``labels`` fixes
    the id of each label name (pass the training set's ``label_names`` when reading the evaluation
    set; an unknown label is then an error naming its line); when omitted, the names found are
    sorted into ids.
    """
    path = existing_file(path, "data")
    rows: list[tuple[int, str, str | None, str]] = []
    for line, row, header in iter_table(path):
        text = cell(path, line, row, text_column, header, "--text-column")
        pair = cell(path, line, row, text_pair_column, header, "--text-pair-column") if text_pair_column else None
        label = label_cell(path, line, row, label_column, header)
        rows.append((line, text, pair, label))
    if not rows:
        raise InputError(f"{path}: no examples (the file has no data rows)")
    if not any(text.strip() or (pair or "").strip() for _, text, pair, _ in rows):
        columns = repr(text_column) + (f" and {text_pair_column!r}" if text_pair_column else "")
        raise InputError(f"{path}: every text in {field_name(path)} {columns} is blank ({len(rows)} rows): there is "
                         "nothing to learn from; check --text-column")
    if labels is None:
        label_names = _sorted_label_names({label for *_, label in rows})
    else:
        label_names = [str(name) for name in labels]
        if len(set(label_names)) != len(label_names):
            raise InputError(f"duplicate label names in {label_names}")
    label2id = {name: i for i, name in enumerate(label_names)}
    for line, _, _, label in rows:
        if label not in label2id:
            raise InputError(f"{path} line {line}: unknown label {label!r}; known labels: {label_names}")
    return ClassificationData(
        texts=[text for _, text, _, _ in rows],
        pairs=[pair for _, _, pair, _ in rows] if text_pair_column else None,  # type: ignore[misc]
        label_ids=[label2id[label] for *_, label in rows],
        label_names=label_names,
        lines=[line for line, *_ in rows],
        path=path,
    )


# ─── encoding ───────────────────────────────────────────────────────────────────────────────
def encode_classification(data: ClassificationData, tokenizer: Any, max_length: int) -> EncodedDataset:
    """Tokenize every text (pair) to at most ``max_length`` tokens; items carry ``labels``."""
    backend = truncating_copy(tokenizer, max_length)
    inputs = list(zip(data.texts, data.pairs)) if data.pairs is not None else data.texts
    items: list[dict[str, list[int] | int]] = [
        {"input_ids": enc.ids, "token_type_ids": enc.type_ids, "attention_mask": [1] * len(enc.ids),
         "labels": label}
        for enc, label in zip(backend.encode_batch(inputs), data.label_ids)
    ]
    return EncodedDataset(items, pad_id_of(tokenizer))


# ─── evaluation and decoding ────────────────────────────────────────────────────────────────
def class_logits(model: nn.Module, dataset: EncodedDataset, batch_size: int = 64, progress: bool = False,
                 desc: str = "eval") -> np.ndarray:
    """(N, num_labels) logits of every item, in the dataset's order."""
    items = [dataset[i] for i in range(len(dataset))]
    return np.stack(forward_sorted(model, items, dataset.pad_id, batch_size,
                                   lambda output, row, length: output.logits[row].float().cpu().numpy(),
                                   progress, desc))


def evaluate_classification(model: nn.Module, dataset: EncodedDataset, label_names: Sequence[str],
                            batch_size: int = 64, progress: bool = False) -> Evaluation:
    """Accuracy, macro-F1, mean loss and the confusion matrix of ``model`` on ``dataset``.

    ``details``: report (per-class scores, for eval.json), confusion (the matrix), text (printable).
    """
    logits = class_logits(model, dataset, batch_size, progress)
    return score_logits(logits, [int(item["labels"]) for item in dataset.items], label_names)  # type: ignore[arg-type]


def score_logits(logits: np.ndarray, gold: Sequence[int], label_names: Sequence[str]) -> Evaluation:
    """:func:`evaluate_classification`'s scores of (N, labels) ``logits`` against the ``gold`` label ids (fine-tuning's
    evaluation, and `classify` of a labelled file)."""
    gold = np.asarray(gold, dtype=np.int64)
    loss = float(F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(gold)))
    report = M.classification_report(gold, logits.argmax(-1), label_names=list(label_names))
    return Evaluation(
        {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "loss": loss},
        {"report": report.to_dict(), "confusion": report.confusion,
         "text": f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}  loss {loss:.4f}\n"
                 + format_confusion(report.confusion, list(label_names))},
    )


def format_confusion(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """The confusion matrix as text: rows gold, columns predicted."""
    width = max(7, *(len(str(x)) + 1 for x in labels), len(str(int(matrix.max(initial=0)))) + 2)
    lines = ["confusion matrix (rows: gold, columns: predicted)",
             " " * width + "".join(f"{label:>{width}}" for label in labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:>{width}}" + "".join(f"{int(n):>{width}}" for n in row))
    return "\n".join(lines)


# ─── the task, for the job ──────────────────────────────────────────────────────────────────
def prepare(args: Any, tok: Tokenizer, max_length: int) -> TaskData:
    """Read and encode ``args.train`` (and ``args.eval``, with the training labels)."""
    data = read_classification(args.train, args.text_column, args.label_column, args.text_pair_column)
    if len(data.label_names) < 2:
        raise InputError(f"{data.path}: every row has the label {data.label_names[0]!r}; a classifier "
                         f"needs at least two labels")
    dataset = encode_classification(data, tok, max_length)
    if args.eval is None:
        return TaskData(dataset, data.id2label, None, len(data))
    eval_data = read_classification(args.eval, args.text_column, args.label_column, args.text_pair_column,
                                    labels=data.label_names)
    eval_set = encode_classification(eval_data, tok, max_length)

    def evaluate(model: nn.Module, progress: bool) -> Evaluation:
        return evaluate_classification(model, eval_set, data.label_names, 2 * args.batch_size, progress)
    return TaskData(dataset, data.id2label, evaluate, len(data), len(eval_data), eval_set)


def choose_pooling(args: Any, model_dir: Path, freeze: str) -> tuple[str | None, str]:
    """How the classifier pools the sentence, and why (see common.choose_pooling)."""
    return common_choose_pooling(model_dir, freeze, args.pooling)


def run_info(args: Any) -> dict[str, Any]:
    """The columns `glassbert classify` reads by default, as the training file had them."""
    return {"text_column": args.text_column, "label_column": args.label_column,
            "text_pair_column": args.text_pair_column}


def eval_record(final: Evaluation, out: Path, labels: list[str], step: int | None) -> dict[str, Any]:
    """What eval.json adds for this task (the per-class report); draws out/confusion.png."""
    M.plot_confusion(final.details["confusion"], labels, out / CONFUSION_FILE, title=f"confusion matrix (step {step})")
    return {"classification": final.details["report"]}


def hint(final: Evaluation | None, labels: list[str] | None, lr: float, trainable: int) -> str | None:
    """What to try when the classifier gives one label to every eval example although the gold labels differ
    (it learned nothing yet: a small model at base-size BERT's 5e-5 does this); None otherwise."""
    if final is None or final.details is None or labels is None:
        return None
    confusion = np.asarray(final.details["confusion"])  # rows gold, columns predicted
    predicted, gold = np.flatnonzero(confusion.sum(0)), np.flatnonzero(confusion.sum(1))
    if len(predicted) != 1 or len(gold) < 2:
        return None
    suggested = 1e-3 if trainable < 20_000_000 else 1e-4  # BERT-small sizes and below; base and larger
    how = (f"a larger --lr (this run's {lr:g} suits base-size BERTs; a model of {trainable / 1e6:.1f} M trainable "
           f"parameters often needs {suggested:g}) or more --epochs") if lr < suggested else "more --epochs or data"
    return (f"hint: the model answers {labels[int(predicted[0])]!r} for every eval example: it has not learned to "
            f"tell the labels apart yet. Try {how}.")


__all__ = ["NAME", "MODEL", "KEEP_BEST", "DEFAULT_MAX_LENGTH", "APPLY_COMMAND", "RECORD_KEYS", "TAKES_POOLING",
           "choose_pooling", "run_info", "hint", "CONFUSION_FILE", "ClassificationData",
           "iter_table", "cell", "label_cell", "read_classification", "encode_classification", "class_logits",
           "evaluate_classification", "score_logits", "format_confusion", "prepare", "eval_record"]
