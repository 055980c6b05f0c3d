"""`glassbert tag`: a fine-tuned token tagger applied to raw text.

    text ─▶ words with character spans (BERT's pre-tokenizer: whitespace and punctuation, as a CoNLL file
    splits them) ─▶ word pieces in windows of at most max_length ─▶ BertForTokenClassification ─▶ each
    word's tag from its first piece (as the tagger trains) ─▶ BIO entities (metrics.get_entities) with
    character spans ─▶ text, CoNLL or JSONL
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics as M
from ..config import BertConfig
from ..errors import InputError
from ..heads import BertForTokenClassification
from ..precision import check_precision, precision_context
from ..quantize import for_inference
from ..runfiles import atomic_write_text
from ..tokenizer import Tokenizer, check_count
from . import TAG_FORMATS
from .common import FineTuned, forward_sorted, load_fine_tuned, pad_id_of, truncating_copy
from .classifier import gather_texts
from .tagging import DEFAULT_MAX_LENGTH, NAME

PROGRESS_WINDOWS = 256  # with more windows than this to run, tag draws a progress bar (default progress=None)
ENTITY_TAG = re.compile(r"O|[BIES]-\S+")  # what metrics.get_entities reads (BIO/IOB2, IOB1, IOBES)


@dataclass(frozen=True)
class Entity:
    """A tagged span: its type, its text, its characters ``text[start:end]`` and its score (the mean
    probability of its words' tags)."""

    type: str
    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Word:
    """One word of the text, ``text[start:end]``, its tag and the tag's probability."""

    text: str
    start: int
    end: int
    tag: str
    probability: float


@dataclass(frozen=True)
class TaggedText:
    """One input text, its words and the entities they make."""

    text: str
    words: list[Word]
    entities: list[Entity]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "entities": [asdict(e) for e in self.entities],
                "words": [asdict(w) for w in self.words]}


def split_words(text: str, tokenizer: Tokenizer) -> list[tuple[str, tuple[int, int]]]:
    """(word, (start, end)) of every word of ``text``, split as BERT splits words before word-piecing it:
    at whitespace and around each punctuation mark ("Paris." is "Paris", ".")."""
    pre = tokenizer.backend.pre_tokenizer
    if pre is None:
        return [(m.group(), m.span()) for m in re.finditer(r"\S+", text)]
    return [(word, (int(s), int(e))) for word, (s, e) in pre.pre_tokenize_str(text)]


def _windows(word_ids: Sequence[int | None], size: int) -> list[list[int]]:
    """The token positions of consecutive windows of at most ``size`` tokens that never split a word (a word
    of more than ``size`` pieces keeps its first ``size``: its first piece is what tags it)."""
    words: list[list[int]] = []  # the positions of each word's pieces
    for position, word in enumerate(word_ids):
        if words and word == word_ids[position - 1]:
            words[-1].append(position)
        else:
            words.append([position])
    windows: list[list[int]] = []
    for pieces in words:
        pieces = pieces[:size]
        if not windows or len(windows[-1]) + len(pieces) > size:
            windows.append([])
        windows[-1].extend(pieces)
    return windows


def load_tagger(model: str | Path | FineTuned, device: str | torch.device = "cpu") -> FineTuned:
    """The tagger ``model`` (a `finetune --task token` run) loaded once, for :func:`tag` to apply as often as asked."""
    return load_fine_tuned(model, NAME, BertForTokenClassification, device, _tags_of)


def tag(model: str | Path | FineTuned, texts: Sequence[str] | None = None, input: str | Path | None = None,
        text_column: str = "text", batch_size: int = 64, progress: bool | None = None,
        device: str = "cpu", precision: str = "fp32", max_length: int | None = None) -> list[TaggedText]:
    """Tag ``texts`` (or the texts of ``input``: a .txt file, one per line, or a CSV/TSV/JSONL table's
    ``text_column``) with the token-classification model ``model`` (a `finetune --task token` run, or the run
    :func:`load_tagger` loaded: ``device`` is then its own).

    A text longer than ``max_length`` (default: the run's) is tagged in consecutive windows, never splitting a
    word. ``precision``: fp32 (default), bf16 or auto (glassbert.precision; tag probabilities are a float32
    softmax).
    """
    check_precision(precision)
    run = load_tagger(model, device)
    for_inference(run.model, precision, run.device)  # once (glassbert.quantize)
    texts, _, from_file = gather_texts(texts, input, text_column, verb="tag")
    labels, tok = _tags_of(run.config, run.directory), run.tokenizer
    if max_length is not None:
        check_count("max_length", max_length, 3, "[CLS] word [SEP]")
    limit = min(max_length or run.info.get("max_length") or DEFAULT_MAX_LENGTH, run.config.max_position_embeddings)
    words = [split_words(text, tok) for text in texts]
    items, firsts = _windowed_items([[w for w, _ in text_words] for text_words in words], tok, limit)
    if progress is None:  # a file, or a long text given as is (many windows): a bar, as embed draws one
        progress = from_file or len(items) >= PROGRESS_WINDOWS
    with precision_context(precision, run.device):
        probabilities = forward_sorted(
            run.model, items, pad_id_of(tok), batch_size,
            lambda output, row, length: torch.softmax(output.logits[row, :length].float(), -1).cpu().numpy(),
            progress, "tag") if items else []
    found: list[dict[int, np.ndarray]] = [{} for _ in texts]
    for (t, seen), rows in zip(firsts, probabilities):
        for word, row in seen:
            found[t][word] = rows[row]
    return [_tagged(text, words[t], found[t], labels) for t, text in enumerate(texts)]


def _tags_of(config: BertConfig, directory: Path) -> list[str]:  # (load_tagger's check, before the weights)
    """The model's labels, in id order; they must be tags entities can be read from."""
    if config.id2label is None:
        raise InputError(f"{directory / 'config.json'}: no id2label; this is not a fine-tuned tagger")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    not_tags = [label for label in labels if not ENTITY_TAG.fullmatch(label)]
    if not_tags:
        raise InputError(f"{directory / 'config.json'}: labels {not_tags} are not BIO tags (O, B-TYPE, I-TYPE): "
                         "entities cannot be read from them")
    return labels


def _windowed_items(texts: Sequence[Sequence[str]], tok: Tokenizer, max_length: int
                    ) -> tuple[list[dict[str, list[int]]], list[tuple[int, list[tuple[int, int]]]]]:
    """Model inputs [CLS] pieces [SEP] for the words of every text, in windows of at most ``max_length``
    tokens; and per window (its text, [(word, row of the word's first piece)])."""
    backend = truncating_copy(tok, None)
    items: list[dict[str, list[int]]] = []
    firsts: list[tuple[int, list[tuple[int, int]]]] = []
    for t, words in enumerate(texts):
        if not words:
            continue
        encoding = backend.encode(list(words), is_pretokenized=True, add_special_tokens=False)
        # once per text: each access to an Encoding's .ids or .word_ids builds a new list of every token
        piece_ids, word_ids = encoding.ids, encoding.word_ids
        for window in _windows(word_ids, max_length - 2):
            ids, type_ids = tok.pack([piece_ids[p] for p in window])
            items.append({"input_ids": ids, "token_type_ids": type_ids, "attention_mask": [1] * len(ids)})
            firsts.append((t, [(word_ids[p], row + 1)  # +1: [CLS]
                               for row, p in enumerate(window) if p == 0 or word_ids[p] != word_ids[p - 1]]))
    return items, firsts


def _tagged(text: str, words: Sequence[tuple[str, tuple[int, int]]], found: dict[int, np.ndarray],
            labels: Sequence[str]) -> TaggedText:
    """Each word's tag from its first piece's probabilities (``found[word]``), and the entities they make."""
    tagged = []
    for w, (word, (start, end)) in enumerate(words):
        if w in found:
            best = int(found[w].argmax())
            tagged.append(Word(word, start, end, labels[best], float(found[w][best])))
        else:  # the tokenizer drops its characters (control characters only): no piece, no prediction
            tagged.append(Word(word, start, end, "O", 0.0))
    entities = []
    for kind, first, stop in M.get_entities([w.tag for w in tagged]):
        start, end = tagged[first].start, tagged[stop - 1].end
        score = float(np.mean([w.probability for w in tagged[first:stop]]))
        entities.append(Entity(kind, text[start:end], start, end, score))
    return TaggedText(text, tagged, entities)


# ─── output ─────────────────────────────────────────────────────────────────────────────────
def format_tags(results: Sequence[TaggedText], format: str = "text") -> str:
    """``results`` as text (each text and its entities), CoNLL (``word tag`` lines, a blank line after each
    text: what read_conll reads) or JSON lines (one object per text: text, entities, words)."""
    if format not in TAG_FORMATS:
        raise InputError(f"format {format!r} is not one of {', '.join(TAG_FORMATS)}")
    if format == "conll":
        return "".join("".join(f"{w.text} {w.tag}\n" for w in r.words) + "\n" for r in results)
    if format == "jsonl":
        return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results)
    blocks = []
    for r in results:
        rows = [(e.type, e.text, f"{e.start}:{e.end}", f"{e.score:.3f}") for e in r.entities]
        widths = [max(len(row[i]) for row in rows) for i in range(3)] if rows else []
        lines = [f"  {kind:<{widths[0]}}  {text:<{widths[1]}}  {span:<{widths[2]}}  {score}"
                 for kind, text, span, score in rows]
        blocks.append("\n".join([r.text, *(lines or ["  (no entities)"])]))
    return "\n\n".join(blocks) + "\n"


def write_tags(results: Sequence[TaggedText], path: str | Path, format: str) -> Path:
    """:func:`format_tags` into ``path``, atomically."""
    return atomic_write_text(path, format_tags(results, format))


def format_for(path: str | Path | None, format: str | None) -> str:
    """The format to write: ``format`` when given, else the one ``path``'s suffix names (.conll, .jsonl),
    else text."""
    if format is not None:
        return format
    suffix = Path(path).suffix.lower().lstrip(".") if path is not None else ""
    return suffix if suffix in TAG_FORMATS else "text"


__all__ = ["Entity", "Word", "TaggedText", "split_words", "tag", "load_tagger", "format_tags", "write_tags", "format_for"]
