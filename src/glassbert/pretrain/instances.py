"""Corpus → documents → sentence-pair instances (NSP or SOP), or document chunks (MLM) → un-masked items.

The original BERT recipe (create_pretraining_data.py): each document is cut into chunks of about
max_seq_length tokens; a chunk's first sentences make segment A, the rest segment B, or (NSP, half the
time) B comes from another document; SOP swaps A and B half the time instead. A one-sentence chunk is cut
inside its sentence (BERT's script made it NotNext every time, which tilted the labels). Items are made by
:meth:`Tokenizer.pack` as [CLS] A [SEP] B [SEP]; masking happens later, per batch (:mod:`.masking`).

Task MLM (RoBERTa's recipe, no pair head): each chunk of consecutive sentences is [CLS] chunk [SEP]. With
``pack``, chunks shorter than a row share it (:func:`pack_items`): the row keeps where each chunk starts in
its ``position_ids`` (0 at each [CLS]), from which the collator builds an attention mask that lets a token see
only its own chunk, so a packed row computes what its chunks would alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from ..corpus import split_sentences
from ..errors import InputError
from ..progress import progress_bar
from .config import PretrainingConfig, TokenizerLike


@dataclass
class Instance:
    """One sentence pair. is_random_next: NSP → B is from another document; SOP → A/B swapped.
    Task MLM: one chunk of a document in ``tokens_a``, ``tokens_b`` None."""

    tokens_a: list[int]
    tokens_b: list[int] | None
    is_random_next: bool

    @property
    def next_sentence_label(self) -> int:
        return int(self.is_random_next)


def tokenize_documents(
    texts: Sequence[str], tokenizer: TokenizerLike, progress: bool | None = None
) -> list[list[list[int]]]:
    """Split each text into sentences and tokenize them (no special tokens).

    Empty sentences and empty documents are dropped. progress=None shows a bar for > 100 texts.
    """
    backend = getattr(tokenizer, "backend", None)
    show = len(texts) > 100 if progress is None else progress
    documents: list[list[list[int]]] = []
    for text in progress_bar(texts, desc="tokenizing", unit="doc", disable=not show):
        sentences = split_sentences(text)
        if not sentences:
            continue
        if backend is not None and hasattr(backend, "encode_batch"):
            ids = [e.ids for e in backend.encode_batch(sentences, add_special_tokens=False)]
        else:
            ids = [tokenizer.encode(s, add_special_tokens=False) for s in sentences]
        ids = [s for s in ids if s]
        if ids:
            documents.append(ids)
    return documents


def build_instances(
    documents: Sequence[Sequence[Sequence[int]]], cfg: PretrainingConfig, rng: random.Random
) -> list[Instance]:
    """Cut documents (docs → sentences → token ids) into sentence-pair instances, shuffled."""
    docs = [[list(s) for s in doc if len(s) > 0] for doc in documents]
    docs = [doc for doc in docs if doc]
    if cfg.task == "nsp" and len(docs) < 2:
        raise InputError(
            f"next-sentence prediction needs at least 2 non-empty documents, got {len(docs)} "
            "(separate documents with blank lines, or use task='sop')"
        )
    if not docs:
        raise InputError("no text to build pretraining instances from")
    instances: list[Instance] = []
    for index in range(len(docs)):
        instances.extend(_instances_from_document(docs, index, cfg, rng))
    rng.shuffle(instances)
    return instances


def _instances_from_document(
    docs: list[list[list[int]]], index: int, cfg: PretrainingConfig, rng: random.Random
) -> list[Instance]:
    document = docs[index]
    if cfg.task == "mlm":
        return _chunks_of_document(document, cfg, rng)
    max_num_tokens = cfg.max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    target_length = max_num_tokens
    if rng.random() < cfg.short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)

    instances: list[Instance] = []
    chunk: list[list[int]] = []
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            if cfg.task == "nsp":
                # half the pairs NotNext, whatever the chunks: BERT's script also made every one-sentence
                # chunk NotNext, so short sentences tilted the labels (55 % NotNext on SOTU, 58 % at 64 tokens)
                # and a model that had learnt only that prior scored above 0.5
                is_random = rng.random() < 0.5 or (len(chunk) == 1 and len(tokens_a) < 2)
                if is_random:
                    tokens_b = _random_segment(docs, index, target_length - len(tokens_a), rng)
                    i -= len(chunk) - a_end  # put the unused segments back
                elif len(chunk) == 1:  # one long sentence: its two halves are a true next pair
                    tokens_a, tokens_b = _split(tokens_a, rng)
                else:
                    tokens_b = [t for s in chunk[a_end:] for t in s]
            else:
                if len(chunk) == 1:  # one long sentence: split it at a random token
                    if len(tokens_a) < 2:
                        chunk, chunk_length = [], 0
                        i += 1
                        continue
                    tokens_a, tokens_b = _split(tokens_a, rng)
                else:
                    tokens_b = [t for s in chunk[a_end:] for t in s]
                is_random = rng.random() < 0.5
                if is_random:
                    tokens_a, tokens_b = tokens_b, tokens_a
            _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            instances.append(Instance(tokens_a, tokens_b, is_random))
            chunk, chunk_length = [], 0
        i += 1
    return instances


def _chunks_of_document(document: list[list[int]], cfg: PretrainingConfig, rng: random.Random) -> list[Instance]:
    """Task MLM: consecutive sentences up to the target length ([CLS] chunk [SEP]: max_seq_length − 2, or a
    random shorter length with short_seq_prob); a sentence longer than a row is cut, none is dropped."""
    max_num_tokens = cfg.max_seq_length - 2
    target_length = rng.randint(2, max_num_tokens) if rng.random() < cfg.short_seq_prob else max_num_tokens
    instances: list[Instance] = []
    chunk: list[int] = []
    for sentence in document:
        if chunk and len(chunk) + len(sentence) > target_length:
            instances.append(Instance(chunk, None, False))
            chunk = []
        chunk = chunk + sentence
        while len(chunk) > max_num_tokens:
            instances.append(Instance(chunk[:max_num_tokens], None, False))
            chunk = chunk[max_num_tokens:]
    if chunk:
        instances.append(Instance(chunk, None, False))
    return instances


def pack_items(items: Sequence[dict[str, Any]], max_seq_length: int, open_rows: int = 64) -> list[dict[str, Any]]:
    """Task MLM items ([CLS] chunk [SEP]) put together into rows of at most ``max_seq_length`` tokens: each
    item goes into the first of the last ``open_rows`` rows it fits in (in the items' shuffled order), else
    starts a row. A row's ``position_ids`` restart at 0 where each of its items starts."""
    rows: list[dict[str, Any]] = []
    start = 0  # rows before this one are no longer looked at
    for item in items:
        n = len(item["input_ids"])
        for row in rows[start:]:
            if len(row["input_ids"]) + n <= max_seq_length:
                break
        else:
            row = {"input_ids": [], "token_type_ids": [], "position_ids": []}
            rows.append(row)
            start = max(start, len(rows) - open_rows)
        row["input_ids"] += item["input_ids"]
        row["token_type_ids"] += item["token_type_ids"]
        row["position_ids"] += list(range(n))
    return rows


def _split(tokens: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
    """A sentence of ≥ 2 tokens cut at a random token into two non-empty parts."""
    cut = rng.randint(1, len(tokens) - 1)
    return tokens[:cut], tokens[cut:]


def _random_segment(
    docs: list[list[list[int]]], index: int, target_length: int, rng: random.Random
) -> list[int]:
    """Consecutive sentences from a random *other* document, up to target_length tokens."""
    other = rng.randrange(len(docs) - 1)
    if other >= index:
        other += 1
    document = docs[other]
    tokens: list[int] = []
    for sentence in document[rng.randrange(len(document)) :]:
        tokens.extend(sentence)
        if len(tokens) >= target_length:
            break
    return tokens


def _truncate_pair(a: list[int], b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Trim the longer segment one token at a time, from its front or back at random."""
    while len(a) + len(b) > max_num_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


class PretrainingDataset(Dataset):
    """Un-masked instances: each item is input_ids, token_type_ids, next_sentence_label ([CLS] A [SEP] B [SEP]);
    task MLM: input_ids, token_type_ids ([CLS] chunk [SEP]), and with ``pack_length`` rows of several chunks
    with their ``position_ids`` (see :func:`pack_items`)."""

    def __init__(self, instances: Sequence[Instance], tokenizer: TokenizerLike, pack_length: int | None = None) -> None:
        self.items: list[dict[str, Any]] = []
        for instance in instances:
            if instance.tokens_b is None:  # task MLM: one chunk
                input_ids, token_type_ids = tokenizer.pack(instance.tokens_a)
                self.items.append({"input_ids": input_ids, "token_type_ids": token_type_ids})
                continue
            input_ids, token_type_ids = tokenizer.pack(instance.tokens_a, instance.tokens_b)
            self.items.append({
                "input_ids": input_ids,
                "token_type_ids": token_type_ids,
                "next_sentence_label": instance.next_sentence_label,
            })
        if pack_length is not None:
            self.items = pack_items(self.items, pack_length)

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], tokenizer: TokenizerLike, cfg: PretrainingConfig, seed: int = 0
    ) -> PretrainingDataset:
        """Tokenize documents and cut them into instances with random.Random(seed)."""
        documents = tokenize_documents(texts, tokenizer)
        return cls(build_instances(documents, cfg, random.Random(seed)), tokenizer,
                   cfg.max_seq_length if cfg.pack else None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


__all__ = ["Instance", "tokenize_documents", "build_instances", "pack_items", "PretrainingDataset"]
