"""`glassbert classify`: a fine-tuned classifier applied to texts or to the rows of a file.

    texts | CSV/TSV/JSONL/.txt ─▶ encode_classification ─▶ BertForSequenceClassification (length-sorted
    batches) ─▶ softmax ─▶ rows of text, label, probability, probs ─▶ (CSV: prob_<label> columns)
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import BertConfig
from ..errors import InputError
from ..heads import BertForSequenceClassification
from ..precision import check_precision, precision_context
from ..quantize import for_inference
from ..textfiles import file_format, iter_table, read_input_texts
from ..tokenizer import check_count, check_text
from .classification import (ClassificationData, class_logits, encode_classification, read_classification,
                             score_logits)
from .common import Evaluation, FineTuned, existing_file, load_fine_tuned


def read_texts(path: Path, text_column: str, text_pair_column: str | None) -> tuple[list[str], list[str] | None]:
    """Texts (and second texts) from a .txt file (one per non-blank line) or a CSV/TSV/JSONL table
    (where a text may be empty: every row gets its prediction): glassbert.textfiles.read_input_texts."""
    return read_input_texts(path, text_column, text_pair_column)


def gather_texts(texts: Sequence[str] | str | None, input: str | Path | None, text_column: str = "text",
                 text_pair_column: str | None = None, verb: str = "classify"
                 ) -> tuple[list[str], list[str] | None, bool]:
    """(texts, second texts, whether they came from a file): ``texts`` (checked to be text) or those of the file
    ``input`` (see :func:`read_texts`); exactly one of them."""
    if (texts is None) == (input is None):
        raise InputError("give texts or an input file (one of them)")
    if input is not None:
        found, pairs = read_texts(existing_file(input, "input"), text_column, text_pair_column)
        return found, pairs, True
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise InputError(f"no texts to {verb}")
    return [check_text(text, i) for i, text in enumerate(texts)], None, False


def _check_labels(config: BertConfig, directory: Path) -> None:
    if config.id2label is None:
        raise InputError(f"{directory / 'config.json'}: no id2label; this is not a fine-tuned classifier")


def load_classifier(model: str | Path | FineTuned, device: str | torch.device = "cpu") -> FineTuned:
    """The classifier ``model`` (a `finetune --task classify` run, or a directory with id2label) loaded once, for
    :func:`classify` to apply as often as asked."""
    return load_fine_tuned(model, "classify", BertForSequenceClassification, device, _check_labels,
                           require_class=False)


def classify(model_dir: str | Path | FineTuned, texts: Sequence[str] | None = None, input: str | Path | None = None,
             output: str | Path | None = None, text_column: str = "text", text_pair_column: str | None = None,
             text_pairs: Sequence[str] | None = None, batch_size: int = 64, max_length: int | None = None,
             progress: bool | None = None, device: str = "cpu", precision: str = "fp32",
             label_column: str | None = None) -> Classified:
    """Labels and probabilities for ``texts`` or the rows of ``input`` (CSV/TSV/JSONL or .txt).

    An ``input`` table that holds the labels, in ``label_column`` (default: the one the run was trained on, its
    glassbert_task.json), is scored as fine-tuning's evaluation scores: the result's ``scores``.

    ``model_dir``: a run's directory, or the run :func:`load_classifier` loaded (``device`` is then its own).
    Returns one dict per text, in input order: text (and text_pair), label, probability (of that
    label) and probs (label → probability). With ``output``, also writes them as CSV: text, label,
    probability and one ``prob_<label>`` column per label. ``precision``: fp32 (default), bf16 or auto (the
    model under bf16 autocast: glassbert.precision; the softmax is float64 either way).
    """
    check_precision(precision)
    run = load_classifier(model_dir, device)
    for_inference(run.model, precision, run.device)  # once (glassbert.quantize)
    config, info = run.config, run.info
    if max_length is not None:
        check_count("max_length", max_length, 3, "[CLS] text [SEP]")
    texts, pairs, from_file = gather_texts(texts, input, text_column, text_pair_column, "classify")
    if from_file:
        text_pairs = pairs
    elif text_pairs is not None:
        text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
        if len(text_pairs) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
        text_pairs = [check_text(pair, i, "text pair") for i, pair in enumerate(text_pairs)]
    progress = from_file if progress is None else progress
    limit = min((info.get("max_length") or 512) if max_length is None else max_length, config.max_position_embeddings)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    data = ClassificationData(list(texts), list(text_pairs) if text_pairs is not None else None,
                              [0] * len(texts), labels)
    with precision_context(precision, run.device):
        logits = class_logits(run.model, encode_classification(data, run.tokenizer, limit), batch_size, progress,
                              "classify")
    probs = torch.from_numpy(logits).double().softmax(-1).numpy()
    rows = []
    for i, p in enumerate(probs):
        best = int(p.argmax())
        row: dict[str, Any] = {"text": texts[i]}
        if text_pairs is not None:
            row["text_pair"] = text_pairs[i]
        row.update(label=labels[best], probability=float(p[best]),
                   probs={label: float(p[k]) for k, label in enumerate(labels)})
        rows.append(row)
    if output is not None:
        write_predictions(rows, labels, output)
    scored = score_labelled(input, logits, labels, text_column, text_pair_column,
                            label_column or info.get("label_column")) if from_file else None
    return Classified(rows, scored)


class Classified(list):
    """What :func:`classify` returns: its rows (a list, one dict per text) and, for a labelled input file,
    ``scores`` (accuracy, macro_f1, loss) with ``scores_text`` (them and the confusion matrix, printable)."""

    def __init__(self, rows: Sequence[dict[str, Any]], evaluation: Evaluation | None = None) -> None:
        super().__init__(rows)
        self.scores = dict(evaluation.metrics) if evaluation is not None else None
        self.scores_text = evaluation.details["text"] if evaluation is not None else None


def score_labelled(path: str | Path, logits: Any, labels: Sequence[str], text_column: str,
                   text_pair_column: str | None, label_column: str | None) -> Evaluation | None:
    """The scores of ``logits`` against the labels of table ``path`` when it has ``label_column``; None for a .txt
    file or a table without it (a label the model does not know is an error naming its line)."""
    path = Path(path)
    if not label_column or file_format(path) not in ("csv", "jsonl"):
        return None
    first = next(iter_table(path), None)
    if first is None or label_column not in first[2]:
        return None
    gold = read_classification(path, text_column, label_column, text_pair_column, labels=labels).label_ids
    return score_logits(logits, gold, labels)


def write_predictions(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], path: str | Path) -> Path:
    """rows of :func:`classify` as CSV: text[, text_pair], label, probability, prob_<label>…"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pair = bool(rows) and "text_pair" in rows[0]
    header = ["text", *(["text_pair"] if pair else []), "label", "probability", *(f"prob_{x}" for x in labels)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row["text"], *([row["text_pair"]] if pair else []), row["label"],
                             f"{row['probability']:.6f}", *(f"{row['probs'][x]:.6f}" for x in labels)])
    return path


def format_table(rows: Sequence[Mapping[str, Any]], width: int = 60) -> str:
    """rows of :func:`classify` as an aligned text table (texts cut to ``width`` characters)."""
    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[:width - 1] + "…"

    shown = [(cut(r["text"]), str(r["label"]), f"{r['probability']:.3f}") for r in rows]
    w_text = max([4, *(len(t) for t, _, _ in shown)])
    w_label = max([5, *(len(lab) for _, lab, _ in shown)])
    lines = [f"{'text':<{w_text}}  {'label':<{w_label}}  probability"]
    lines += [f"{t:<{w_text}}  {lab:<{w_label}}  {p:>11}" for t, lab, p in shown]
    return "\n".join(lines)


__all__ = ["classify", "Classified", "score_labelled", "load_classifier", "gather_texts", "read_texts", "write_predictions", "format_table"]
