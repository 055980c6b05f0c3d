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
from ..registry import load_as
from ..precision import check_precision, precision_context
from ..textfiles import read_input_texts
from ..tokenizer import Tokenizer, check_count, check_text
from .classification import ClassificationData, class_logits, encode_classification
from .common import existing_file, fine_tuned_run


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


def classify(model_dir: str | Path, texts: Sequence[str] | None = None, input: str | Path | None = None,
             output: str | Path | None = None, text_column: str = "text", text_pair_column: str | None = None,
             text_pairs: Sequence[str] | None = None, batch_size: int = 64, max_length: int | None = None,
             progress: bool | None = None, device: str = "cpu", precision: str = "fp32") -> list[dict[str, Any]]:
    """Labels and probabilities for ``texts`` or the rows of ``input`` (CSV/TSV/JSONL or .txt).

    Returns one dict per text, in input order: text (and text_pair), label, probability (of that
    label) and probs (label → probability). With ``output``, also writes them as CSV: text, label,
    probability and one ``prob_<label>`` column per label. ``precision``: fp32 (default), bf16 or auto (the
    model under bf16 autocast: glassbert.precision; the softmax is float64 either way).
    """
    check_precision(precision)
    directory, info = fine_tuned_run(model_dir, "classify")
    config = BertConfig.load(directory)
    if config.id2label is None:
        raise InputError(f"{directory / 'config.json'}: no id2label; this is not a fine-tuned classifier")
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

    tok = Tokenizer.from_pretrained(directory)
    model = load_as(directory, BertForSequenceClassification).to(device).eval()  # (AlbertFor… on an ALBERT)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    data = ClassificationData(list(texts), list(text_pairs) if text_pairs is not None else None,
                              [0] * len(texts), labels)
    with precision_context(precision, device):
        logits = class_logits(model, encode_classification(data, tok, limit), batch_size, progress, "classify")
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
    return rows


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


__all__ = ["classify", "gather_texts", "read_texts", "write_predictions", "format_table"]
