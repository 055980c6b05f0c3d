"""Task data for fine-tuning: read files, encode them, batch them.

Three tasks, each as *read → encode → dataset + collate*:

- sequence classification: CSV/TSV/JSONL → :class:`ClassificationData` → :func:`encode_classification`;
- token classification: CoNLL → ``(tokens, tags)`` → :func:`align_labels` / :func:`encode_token_classification`;
- question answering: SQuAD v1.1 JSON → :class:`SquadExample` → :func:`prepare_qa_features`
  (overflowing windows, like transformers' ``run_qa.py``) → model logits → :func:`decode_spans`.

Datasets hold un-padded items; their ``collate`` pads each batch to its longest item (dynamic
padding). ``tokenizer`` arguments take a glassbert ``Tokenizer`` (its ``.backend`` is used) or a
bare ``tokenizers.Tokenizer`` configured like BertTokenizerFast.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import tokenizers
import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100  # label for positions the loss skips (specials, non-first word pieces, padding)

# ---------------------------------------------------------------------------------------------
# Tokenizer access
# ---------------------------------------------------------------------------------------------


def _backend(tokenizer: Any) -> tokenizers.Tokenizer:
    """The ``tokenizers.Tokenizer`` behind a glassbert Tokenizer (or the object itself)."""
    backend = getattr(tokenizer, "backend", tokenizer)
    if not isinstance(backend, tokenizers.Tokenizer):
        raise TypeError(
            f"expected a glassbert Tokenizer or a tokenizers.Tokenizer, got {type(tokenizer).__name__}"
        )
    return backend


def _special_id(tokenizer: Any, attribute: str, token: str) -> int:
    """e.g. ``tokenizer.pad_token_id``, falling back to the id of ``[PAD]`` in the vocab."""
    value = getattr(tokenizer, attribute, None)
    if value is None:
        value = _backend(tokenizer).token_to_id(token)
    if value is None:
        raise ValueError(f"the tokenizer has no {token} token")
    return int(value)


def _truncating_copy(
    tokenizer: Any, max_length: int, strategy: str = "longest_first"
) -> tokenizers.Tokenizer:
    """A copy of the backend that truncates to ``max_length`` (the original stays untouched)."""
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 ([CLS] x [SEP]), got {max_length}")
    copy = tokenizers.Tokenizer.from_str(_backend(tokenizer).to_str())
    copy.no_padding()
    copy.enable_truncation(max_length, strategy=strategy)
    return copy


# ---------------------------------------------------------------------------------------------
# Datasets and dynamic padding
# ---------------------------------------------------------------------------------------------


def pad_collate(items: Sequence[Mapping[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Stack un-padded items into a batch padded to the longest item.

    1-D tensors are right-padded: ``input_ids`` with ``pad_id``, ``labels`` with -100, everything
    else (token_type_ids, attention_mask, …) with 0. 0-D tensors (a class label, a start position)
    are stacked.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    keys = list(items[0].keys())
    for n, item in enumerate(items):
        if list(item.keys()) != keys:
            raise ValueError(f"batch item {n} has keys {list(item.keys())}, item 0 has {keys}")
    batch: dict[str, torch.Tensor] = {}
    for key in keys:
        values = [torch.as_tensor(item[key]) for item in items]
        if values[0].dim() == 0:
            batch[key] = torch.stack(values).long()
            continue
        fill = pad_id if key == "input_ids" else IGNORE_INDEX if key == "labels" else 0
        longest = max(v.shape[0] for v in values)
        out = torch.full((len(values), longest), fill, dtype=torch.long)
        for row, value in enumerate(values):
            out[row, : value.shape[0]] = value
        batch[key] = out
    return batch


@dataclass(frozen=True)
class Collator:
    """``collate(items, generator=None)`` with the pad id bound (the Trainer passes a generator)."""

    pad_id: int

    def __call__(
        self, items: Sequence[Mapping[str, torch.Tensor]], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        return pad_collate(items, self.pad_id)


class EncodedDataset(Dataset):
    """Encoded, un-padded examples; ``dataset[i]`` is a dict of LongTensors ready for the model."""

    def __init__(self, items: list[dict[str, list[int] | int]], pad_id: int) -> None:
        self.items = items
        self.pad_id = pad_id
        self.collate = Collator(pad_id)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: torch.tensor(value, dtype=torch.long) for key, value in self.items[index].items()}

    @property
    def lengths(self) -> list[int]:
        """Token count of every item (for length-bucketed batching)."""
        return [len(item["input_ids"]) for item in self.items]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Sequence classification
# ---------------------------------------------------------------------------------------------


@dataclass
class ClassificationData:
    """Texts (and optional second texts) with integer labels; ``label_names[id]`` names each id."""

    texts: list[str]
    pairs: list[str] | None
    label_ids: list[int]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))


def _iter_table(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    """Yield (line number, row, header) from a CSV, TSV or JSON-lines file."""
    suffix = path.suffix.lower()
    name = path.name
    if suffix in (".csv", ".tsv", ".tab"):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter="," if suffix == ".csv" else "\t")
            header: list[str] | None = None
            line = 1
            for row in reader:
                start_line, line = line, reader.line_num + 1
                if not row or all(not cell.strip() for cell in row):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                    continue
                if len(row) != len(header):
                    raise ValueError(
                        f"{name} line {start_line}: expected {len(header)} fields "
                        f"({', '.join(header)}), got {len(row)}"
                    )
                yield start_line, dict(zip(header, row)), header
        if header is None:
            raise ValueError(f"{name}: file is empty (expected a header line and rows)")
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8-sig") as handle:
            for line_no, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{name} line {line_no}: invalid JSON ({error.msg}); expected one object per line"
                    ) from None
                if not isinstance(row, dict):
                    raise ValueError(
                        f"{name} line {line_no}: expected a JSON object, got {type(row).__name__}"
                    )
                yield line_no, row, list(row.keys())
    else:
        raise ValueError(f"{name}: unknown table format {suffix!r}; use .csv, .tsv or .jsonl")


def _cell(name: str, line: int, row: dict[str, Any], column: str, header: list[str]) -> str:
    if column not in row:
        what = "column" if name.lower().endswith((".csv", ".tsv", ".tab")) else "key"
        raise ValueError(f"{name} line {line}: no {what} {column!r}; the header is {header}")
    value = row[column]
    if value is None or isinstance(value, (dict, list)):
        raise ValueError(f"{name} line {line}: {column!r} must be text, got {value!r}")
    return value if isinstance(value, str) else json.dumps(value)


def _sorted_label_names(names: set[str]) -> list[str]:
    """Sorted label names; numerically when they are all integers ('2' before '10')."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def read_classification(
    path: str | Path,
    text_column: str,
    label_column: str,
    text_pair_column: str | None = None,
    labels: Sequence[str] | None = None,
) -> ClassificationData:
    """Read a CSV/TSV/JSONL classification file.

    ``labels`` fixes the id of each label name (pass the training set's ``label_names`` when
    reading the evaluation set); when omitted, the names found are sorted into ids.
    """
    path = Path(path)
    rows: list[tuple[int, str, str | None, str]] = []
    for line, row, header in _iter_table(path):
        text = _cell(path.name, line, row, text_column, header)
        pair = _cell(path.name, line, row, text_pair_column, header) if text_pair_column else None
        label = _cell(path.name, line, row, label_column, header).strip()
        rows.append((line, text, pair, label))
    if not rows:
        raise ValueError(f"{path.name}: no examples (the file has no data rows)")
    if labels is None:
        label_names = _sorted_label_names({label for *_, label in rows})
    else:
        label_names = [str(name) for name in labels]
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"duplicate label names in {label_names}")
    label2id = {name: i for i, name in enumerate(label_names)}
    label_ids = []
    for line, _, _, label in rows:
        if label not in label2id:
            raise ValueError(
                f"{path.name} line {line}: unknown label {label!r}; known labels: {label_names}"
            )
        label_ids.append(label2id[label])
    return ClassificationData(
        texts=[text for _, text, _, _ in rows],
        pairs=[pair for _, _, pair, _ in rows] if text_pair_column else None,  # type: ignore[misc]
        label_ids=label_ids,
        label_names=label_names,
    )


def encode_classification(data: ClassificationData, tokenizer: Any, max_length: int) -> EncodedDataset:
    """Tokenize every text (pair) to at most ``max_length`` tokens; items carry ``labels``."""
    backend = _truncating_copy(tokenizer, max_length)
    inputs = list(zip(data.texts, data.pairs)) if data.pairs is not None else data.texts
    encodings = backend.encode_batch(inputs)
    items: list[dict[str, list[int] | int]] = [
        {
            "input_ids": enc.ids,
            "token_type_ids": enc.type_ids,
            "attention_mask": [1] * len(enc.ids),
            "labels": label,
        }
        for enc, label in zip(encodings, data.label_ids)
    ]
    return EncodedDataset(items, _special_id(tokenizer, "pad_token_id", "[PAD]"))


# ---------------------------------------------------------------------------------------------
# Token classification (CoNLL)
# ---------------------------------------------------------------------------------------------


def read_conll(path: str | Path) -> list[tuple[list[str], list[str]]]:
    """Read CoNLL-style tagged sentences: one token per line, a blank line between sentences.

    Two layouts are accepted, and one file must keep to one of them:
    ``token tag`` (2 fields) and CoNLL-2003's ``token POS chunk NER`` (4 fields: the first and
    last are kept). Fields are separated by spaces or tabs; ``-DOCSTART-`` lines are skipped.
    """
    path = Path(path)
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    width: int | None = None
    width_line = 0
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if tokens:
                    sentences.append((tokens, tags))
                    tokens, tags = [], []
                continue
            if len(fields) not in (2, 4):
                raise ValueError(
                    f"{path.name} line {line_no}: expected 2 fields (token tag) or 4 fields "
                    f"(token POS chunk NER), got {len(fields)}"
                )
            if width is None:
                width, width_line = len(fields), line_no
            elif len(fields) != width:
                raise ValueError(
                    f"{path.name} line {line_no}: expected {width} fields like line {width_line}, "
                    f"got {len(fields)}"
                )
            tokens.append(fields[0])
            tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{path.name}: no sentences (the file is empty)")
    return sentences


def tag_names(examples: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[str]:
    """All tags, 'O' first, then by entity type with B- before I- (a stable label order)."""
    found = {tag for _, tags in examples for tag in tags}

    def key(tag: str) -> tuple[int, str, str]:
        if tag == "O":
            return (0, "", "")
        prefix, _, kind = tag.partition("-")
        return (1, kind or prefix, prefix if kind else "")

    return sorted(found, key=key)


@dataclass(frozen=True)
class AlignedExample:
    """One sentence as word pieces; ``labels`` tag each word's first piece, -100 elsewhere."""

    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]
    labels: list[int]
    word_ids: list[int | None]

    def to_item(self) -> dict[str, list[int] | int]:
        return {
            "input_ids": self.input_ids,
            "token_type_ids": self.token_type_ids,
            "attention_mask": self.attention_mask,
            "labels": self.labels,
        }


def align_labels(
    words: Sequence[str],
    tags: Sequence[str],
    tokenizer: Any,
    label2id: Mapping[str, int],
    max_length: int,
) -> AlignedExample:
    """Word-piece a tagged sentence: the first piece of a word gets its tag id, later pieces,
    [CLS]/[SEP] and words cut off by ``max_length`` get -100."""
    return _align(words, tags, _truncating_copy(tokenizer, max_length), label2id)


def _align(
    words: Sequence[str],
    tags: Sequence[str],
    backend: tokenizers.Tokenizer,
    label2id: Mapping[str, int],
) -> AlignedExample:
    """align_labels with a backend that already truncates."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    for n, tag in enumerate(tags):
        if tag not in label2id:
            raise ValueError(
                f"word {n} {words[n]!r}: unknown tag {tag!r}; known tags: {list(label2id)}"
            )
    encoding = backend.encode(list(words), is_pretokenized=True)
    word_ids = encoding.word_ids
    labels: list[int] = []
    previous: int | None = None
    for word_id in word_ids:
        if word_id is None or word_id == previous:
            labels.append(IGNORE_INDEX)
        else:
            labels.append(label2id[tags[word_id]])
        previous = word_id
    return AlignedExample(
        input_ids=encoding.ids,
        token_type_ids=encoding.type_ids,
        attention_mask=[1] * len(encoding.ids),
        labels=labels,
        word_ids=list(word_ids),
    )


def encode_token_classification(
    examples: Sequence[tuple[Sequence[str], Sequence[str]]],
    tokenizer: Any,
    label2id: Mapping[str, int],
    max_length: int,
) -> EncodedDataset:
    """Align every sentence (see :func:`align_labels`); the collate pads labels with -100."""
    backend = _truncating_copy(tokenizer, max_length)
    items = []
    for n, (words, tags) in enumerate(examples):
        try:
            items.append(_align(words, tags, backend, label2id).to_item())
        except ValueError as error:
            raise ValueError(f"sentence {n}: {error}") from None
    return EncodedDataset(items, _special_id(tokenizer, "pad_token_id", "[PAD]"))


def first_piece_tags(
    predictions: Sequence[int] | np.ndarray | torch.Tensor,
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    id2label: Mapping[int, str],
) -> tuple[list[str], list[str]]:
    """(gold tags, predicted tags) of one sentence, read at the positions whose label is not -100."""
    predicted = np.asarray(predictions).tolist()
    gold = np.asarray(labels).tolist()
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} labels")
    keep = [i for i, label in enumerate(gold) if label != IGNORE_INDEX]
    return [id2label[gold[i]] for i in keep], [id2label[predicted[i]] for i in keep]


# ---------------------------------------------------------------------------------------------
# Question answering (SQuAD v1.1)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SquadExample:
    """One question on one context; ``answers`` are (text, start character in context)."""

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]]
    title: str = ""


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """obj[key], checked to be a ``kind``; errors say where in the file."""
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{where}: {key!r} must be {wanted}, got {type(value).__name__}")
    return value


def read_squad(path: str | Path) -> list[SquadExample]:
    """Read SQuAD v1.1 JSON; every answer must appear in its context at ``answer_start``.

    A question with an empty ``answers`` list is kept (a question to predict, not to train on).
    """
    path = Path(path)
    name = path.name
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{name}: file is empty")
    try:
        root = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} line {error.lineno}: invalid JSON ({error.msg})") from None
    examples: list[SquadExample] = []
    seen: set[str] = set()
    for a, article in enumerate(_require(root, "data", list, name)):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_require(article, "paragraphs", list, f"{name} data[{a}]")):
            where = f"{name} data[{a}].paragraphs[{p}]"
            context = _require(paragraph, "context", str, where)
            for q, qa in enumerate(_require(paragraph, "qas", list, where)):
                qa_where = f"{where}.qas[{q}]"
                qid = str(_require(qa, "id", (str, int), qa_where))
                qa_where = f"{name} question id {qid!r}"
                if qid in seen:
                    raise ValueError(f"{qa_where}: duplicate question id")
                seen.add(qid)
                question = _require(qa, "question", str, qa_where)
                answers = []
                for answer in _require(qa, "answers", list, qa_where):
                    answer_text = _require(answer, "text", str, qa_where)
                    start = _require(answer, "answer_start", int, qa_where)
                    found = context[start : start + len(answer_text)]
                    if start < 0 or found != answer_text:
                        raise ValueError(
                            f"{qa_where}: answer {answer_text!r} is not at answer_start {start} "
                            f"of the context (the context there reads {found!r})"
                        )
                    answers.append((answer_text, start))
                examples.append(SquadExample(qid, question, context, answers, title))
    if not examples:
        raise ValueError(f"{name}: no questions")
    return examples


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
        return {
            "input_ids": self.input_ids,
            "token_type_ids": self.token_type_ids,
            "attention_mask": self.attention_mask,
            "start_positions": self.start_position,
            "end_positions": self.end_position,
        }


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


def _answer_tokens(
    answers: Sequence[tuple[str, int]], offsets: Sequence[tuple[int, int]]
) -> tuple[int, int] | None:
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


def prepare_qa_features(
    examples: Sequence[SquadExample],
    tokenizer: Any,
    max_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> list[QAFeature]:
    """Split each example into overlapping windows of at most ``max_length`` tokens.

    Windows are exactly those of transformers' ``BertTokenizerFast(question, context,
    truncation="only_second", max_length=max_length, stride=doc_stride,
    return_overflowing_tokens=True)``: ``doc_stride`` is the number of context tokens two
    neighbouring windows share (transformers' meaning, not the original BERT's step size).
    Questions are first cut to ``max_query_length`` word pieces, as the original BERT does.
    """
    backend = _backend(tokenizer)
    cls_id = _special_id(tokenizer, "cls_token_id", "[CLS]")
    sep_id = _special_id(tokenizer, "sep_token_id", "[SEP]")
    features: list[QAFeature] = []
    for index, example in enumerate(examples):
        question = backend.encode(example.question, add_special_tokens=False).ids[:max_query_length]
        context = backend.encode(example.context, add_special_tokens=False)
        size = max_length - len(question) - 3
        if size < 1 or (len(context.ids) > size and size <= doc_stride):
            raise ValueError(
                f"question id {example.id!r}: max_length {max_length} leaves {size} context tokens "
                f"per window after a {len(question)}-token question; doc_stride {doc_stride} must be smaller"
            )
        head = [cls_id, *question, sep_id]
        for start, stop in _windows(len(context.ids), size, doc_stride):
            ids = head + context.ids[start:stop] + [sep_id]
            span_offsets = [tuple(o) for o in context.offsets[start:stop]]
            answer = _answer_tokens(example.answers, span_offsets)  # type: ignore[arg-type]
            start_position, end_position = (
                (answer[0] + len(head), answer[1] + len(head)) if answer else (0, 0)
            )
            features.append(
                QAFeature(
                    input_ids=ids,
                    token_type_ids=[0] * len(head) + [1] * (stop - start + 1),
                    attention_mask=[1] * len(ids),
                    start_position=start_position,
                    end_position=end_position,
                    example_index=index,
                    offsets=[None] * len(head) + span_offsets + [None],  # type: ignore[list-item]
                )
            )
    return features


def qa_dataset(features: Sequence[QAFeature], tokenizer: Any) -> EncodedDataset:
    """Model-ready items (input_ids, token_type_ids, attention_mask, start/end_positions)."""
    return EncodedDataset(
        [feature.to_item() for feature in features], _special_id(tokenizer, "pad_token_id", "[PAD]")
    )


@dataclass(frozen=True)
class SpanCandidate:
    """One candidate answer: its text, score = start_logit + end_logit, and softmax probability."""

    text: str
    score: float
    start_logit: float
    end_logit: float
    probability: float
    feature_index: int
    start_token: int
    end_token: int


def decode_nbest(
    start_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    end_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    features: Sequence[QAFeature],
    examples: Sequence[SquadExample],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, list[SpanCandidate]]:
    """Question id -> up to ``n_best`` candidates, best first (transformers' postprocess, v1.1).

    For every window of an example: take the ``n_best`` highest start and end logits, drop
    pairs outside the context, with end < start, or longer than ``max_answer_length`` tokens;
    rank what is left across all windows by start + end logit. An example with no valid span
    gets one empty candidate ("").
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(
            f"{len(features)} features but {len(start_logits)} start and {len(end_logits)} end logit rows"
        )
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
            text = example.context[offsets[s][0] : offsets[e][1]]  # type: ignore[index]
            spans.append(
                SpanCandidate(text, float(score), float(s_logit), float(e_logit), float(probability),
                              feature_index, s, e)
            )
        results[example.id] = spans
    return results


def decode_spans(
    start_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    end_logits: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    features: Sequence[QAFeature],
    examples: Sequence[SquadExample],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Question id -> best answer text (the top candidate of :func:`decode_nbest`)."""
    nbest = decode_nbest(start_logits, end_logits, features, examples, n_best, max_answer_length)
    return {qid: spans[0].text for qid, spans in nbest.items()}


def _to_numpy(row: Any) -> np.ndarray:
    if isinstance(row, torch.Tensor):
        return row.detach().float().cpu().numpy()
    return np.asarray(row)
