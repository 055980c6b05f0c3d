"""Token tagging (NER): CoNLL sentences, a BIO tag per word.

    read_conll (each word's line kept) ─▶ check_tags ─▶ align_labels: the tag on each word's first
    word piece, IGNORE_INDEX elsewhere ─▶ BertForTokenClassification
    ─▶ evaluate_tokens: first-piece tags (first_piece_tags) ─▶ entity precision/recall/F1
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
import torch
from torch import nn

from .. import metrics as M
from ..errors import InputError
from ..heads import BertForTokenClassification
from ..textfiles import read_lines
from ..tokenizer import IGNORE_INDEX, Tokenizer
from .common import (NO_POOLING, EncodedDataset, Evaluation, TaskData, existing_file, forward_sorted, pad_id_of,
                     truncating_copy)

NAME = "token"
MODEL = BertForTokenClassification
KEEP_BEST = "f1"
DEFAULT_MAX_LENGTH = 128
APPLY_COMMAND = "glassbert tag"
RECORD_KEYS: tuple[str, ...] = ()
TAKES_POOLING = False
BIO_TAG = re.compile(r"O|[BI]-\S+")


# ─── reading ────────────────────────────────────────────────────────────────────────────────
class TaggedSentence(tuple):
    """One sentence: the pair (words, tags), plus where it was read, ``lines[i]`` being the line of
    word i in ``path``. It is a 2-tuple, so it unpacks and compares like ``(words, tags)``."""

    def __new__(cls, words: list[str], tags: list[str], lines: list[int] | None = None,
                path: Path | None = None) -> TaggedSentence:
        sentence = super().__new__(cls, (words, tags))
        sentence.lines, sentence.path = lines, path
        return sentence

    @property
    def words(self) -> list[str]:
        return self[0]

    @property
    def tags(self) -> list[str]:
        return self[1]

    def where(self, word: int = 0) -> str:
        """'<path> line <n>' of word ``word`` (or '' for a sentence not read from a file)."""
        return f"{self.path} line {self.lines[word]}" if self.lines else ""


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """Read CoNLL-style tagged sentences: one token per line, a blank line between sentences.

    Two layouts are accepted, and one file must keep to one of them:
    ``token tag`` (2 fields) and CoNLL-2003's ``token POS chunk NER`` (4 fields: the first and
    last are kept). Fields are separated by spaces or tabs; ``-DOCSTART-`` lines are skipped.
    """
    path = existing_file(path, "CoNLL")
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    width: int | None = None
    width_line = 0
    for line_no, line in enumerate(read_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append(TaggedSentence(words, tags, lines, path))
                words, tags, lines = [], [], []
            continue
        if len(fields) not in (2, 4):
            raise InputError(f"{path} line {line_no}: expected 2 fields (token tag) or 4 fields "
                             f"(token POS chunk NER), got {len(fields)}")
        if width is None:
            width, width_line = len(fields), line_no
        elif len(fields) != width:
            raise InputError(f"{path} line {line_no}: expected {width} fields like line {width_line}, "
                             f"got {len(fields)}")
        words.append(fields[0])
        tags.append(fields[-1])
        lines.append(line_no)
    if words:
        sentences.append(TaggedSentence(words, tags, lines, path))
    if not sentences:
        raise InputError(f"{path}: no sentences (the file is empty)")
    return sentences


def check_tags(sentences: Sequence[TaggedSentence], known: Sequence[str] | None = None) -> None:
    """Every tag is ``O`` or ``B-``/``I-`` + type and, when ``known`` (the training tags) is given,
    one of them; errors name the file and the line of the word."""
    allowed = set(known) if known is not None else None
    for n, sentence in enumerate(sentences):
        for i, tag in enumerate(sentence[1]):
            where = sentence.where(i) if isinstance(sentence, TaggedSentence) else f"sentence {n} word {i}"
            if not BIO_TAG.fullmatch(tag):
                raise InputError(f"{where}: tag {tag!r} is not BIO (expected O, B-TYPE or I-TYPE)")
            if allowed is not None and tag not in allowed:
                raise InputError(f"{where}: unknown tag {tag!r}; the training file has {sorted(allowed)}")


def tag_names(examples: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[str]:
    """All tags, 'O' first, then by entity type with B- before I- (a stable label order)."""
    found = {tag for _, tags in examples for tag in tags}

    def key(tag: str) -> tuple[int, str, str]:
        if tag == "O":
            return (0, "", "")
        prefix, _, kind = tag.partition("-")
        return (1, kind or prefix, prefix if kind else "")

    return sorted(found, key=key)


# ─── encoding: tags on first word pieces ────────────────────────────────────────────────────
@dataclass(frozen=True)
class AlignedExample:
    """One sentence as word pieces; ``labels`` tag each word's first piece, IGNORE_INDEX elsewhere."""

    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]
    labels: list[int]
    word_ids: list[int | None]

    def to_item(self) -> dict[str, list[int] | int]:
        return {"input_ids": self.input_ids, "token_type_ids": self.token_type_ids,
                "attention_mask": self.attention_mask, "labels": self.labels}


def align_labels(words: Sequence[str], tags: Sequence[str], tokenizer: Any, label2id: Mapping[str, int],
                 max_length: int) -> AlignedExample:
    """Word-piece a tagged sentence: the first piece of a word gets its tag id, later pieces,
    [CLS]/[SEP] and words cut off by ``max_length`` get IGNORE_INDEX."""
    return _align(words, tags, truncating_copy(tokenizer, max_length), label2id)


def _align(words: Sequence[str], tags: Sequence[str], backend: tokenizers.Tokenizer,
           label2id: Mapping[str, int], place: Callable[[int], str] = lambda word: "") -> AlignedExample:
    """align_labels with a backend that already truncates; ``place(word)`` starts an error's message."""
    if len(words) != len(tags):
        raise InputError(f"{place(0)}{len(words)} words but {len(tags)} tags")
    for n, tag in enumerate(tags):
        if tag not in label2id:
            raise InputError(f"{place(n)}word {n} {words[n]!r}: unknown tag {tag!r}; known tags: {list(label2id)}")
    encoding = backend.encode(list(words), is_pretokenized=True)
    word_ids = encoding.word_ids
    labels: list[int] = []
    previous: int | None = None
    for word_id in word_ids:
        labels.append(IGNORE_INDEX if word_id is None or word_id == previous else label2id[tags[word_id]])
        previous = word_id
    return AlignedExample(input_ids=encoding.ids, token_type_ids=encoding.type_ids,
                          attention_mask=[1] * len(encoding.ids), labels=labels, word_ids=list(word_ids))


def encode_token_classification(examples: Sequence[tuple[Sequence[str], Sequence[str]]], tokenizer: Any,
                                label2id: Mapping[str, int], max_length: int) -> EncodedDataset:
    """Align every sentence (see :func:`align_labels`); the collate pads labels with IGNORE_INDEX."""
    backend = truncating_copy(tokenizer, max_length)
    items = []
    for n, example in enumerate(examples):
        if isinstance(example, TaggedSentence) and example.lines:
            place = lambda word, sentence=example: f"{sentence.where(word)}: "  # noqa: E731
        else:
            place = lambda word, n=n: f"sentence {n}: "  # noqa: E731
        items.append(_align(example[0], example[1], backend, label2id, place).to_item())
    return EncodedDataset(items, pad_id_of(tokenizer))


# ─── evaluation and decoding ────────────────────────────────────────────────────────────────
def first_piece_tags(predictions: Sequence[int] | np.ndarray | torch.Tensor,
                     labels: Sequence[int] | np.ndarray | torch.Tensor,
                     id2label: Mapping[int, str]) -> tuple[list[str], list[str]]:
    """(gold tags, predicted tags) of one sentence, read at the positions whose label is not IGNORE_INDEX."""
    predicted = np.asarray(predictions).tolist()
    gold = np.asarray(labels).tolist()
    if len(predicted) != len(gold):
        raise InputError(f"{len(predicted)} predictions but {len(gold)} labels")
    keep = [i for i, label in enumerate(gold) if label != IGNORE_INDEX]
    return [id2label[gold[i]] for i in keep], [id2label[predicted[i]] for i in keep]


def evaluate_tokens(model: nn.Module, dataset: EncodedDataset, id2label: Mapping[int, str],
                    batch_size: int = 64, progress: bool = False) -> Evaluation:
    """Entity-level precision/recall/F1 from the first word piece of every word.

    ``details``: entities (scores overall and per type, for eval.json), text (printable).
    """
    items = [dataset[i] for i in range(len(dataset))]
    logits = forward_sorted(model, items, dataset.pad_id, batch_size,
                            lambda output, row, length: output.logits[row, :length].float().cpu().numpy(), progress)
    gold_tags, pred_tags = [], []
    for item, row in zip(items, logits):
        gold, pred = first_piece_tags(row.argmax(-1), item["labels"], id2label)
        gold_tags.append(gold)
        pred_tags.append(pred)
    scores = M.entity_scores(gold_tags, pred_tags)
    per_type = "  ".join(f"{t} {s['f1']:.3f}" for t, s in scores.per_type.items())
    return Evaluation(
        {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1},
        {"entities": scores.to_dict(),
         "text": f"entity precision {scores.precision:.4f}  recall {scores.recall:.4f}  F1 {scores.f1:.4f}"
                 + (f"   (F1 by type: {per_type})" if per_type else "")},
    )


# ─── the task, for the job ──────────────────────────────────────────────────────────────────
def prepare(args: Any, tok: Tokenizer, max_length: int) -> TaskData:
    """Read, check and encode ``args.train`` (and ``args.eval``, whose tags must be the training tags)."""
    sentences = read_conll(args.train)
    check_tags(sentences)
    names = tag_names(sentences)
    label2id = {name: i for i, name in enumerate(names)}
    id2label = dict(enumerate(names))
    dataset = encode_token_classification(sentences, tok, label2id, max_length)
    if args.eval is None:
        return TaskData(dataset, id2label, None, len(sentences))
    eval_sentences = read_conll(args.eval)
    check_tags(eval_sentences, known=names)
    eval_set = encode_token_classification(eval_sentences, tok, label2id, max_length)

    def evaluate(model: nn.Module, progress: bool) -> Evaluation:
        return evaluate_tokens(model, eval_set, id2label, 2 * args.batch_size, progress)
    return TaskData(dataset, id2label, evaluate, len(sentences), len(eval_sentences), eval_set)


def choose_pooling(args: Any, model_dir: Path, freeze: str) -> tuple[str | None, str]:
    return NO_POOLING  # a tag for each token: nothing pooled


def run_info(args: Any) -> dict[str, Any]:
    return {}  # CoNLL in; `glassbert tag` reads raw text


def eval_record(final: Evaluation, out: Path, labels: list[str], step: int | None) -> dict[str, Any]:
    """What eval.json adds for this task: entity scores overall and per type."""
    return {"entities": final.details["entities"]}


def hint(final: Evaluation | None, labels: list[str] | None, lr: float, trainable: int) -> str | None:
    return None


__all__ = ["NAME", "MODEL", "KEEP_BEST", "DEFAULT_MAX_LENGTH", "APPLY_COMMAND", "RECORD_KEYS", "TAKES_POOLING",
           "choose_pooling", "run_info", "hint", "TaggedSentence", "read_conll", "check_tags",
           "tag_names", "AlignedExample", "align_labels", "encode_token_classification", "first_piece_tags",
           "evaluate_tokens", "prepare", "eval_record"]
