"""Pretraining data, the original BERT recipe (create_pretraining_data.py):
documents → sentence-pair instances (NSP or SOP) → packed [CLS] A [SEP] B [SEP] → MLM masking.

Masking is *dynamic*: instances are stored un-masked and the collator masks each batch with
a torch.Generator the caller seeds (e.g. from (seed, step)), so every epoch sees fresh masks
and a resumed run reproduces the exact masks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .data import split_sentences

IGNORE_INDEX = -100


class TokenizerLike(Protocol):
    """What this module needs from glassbert.tokenizer.Tokenizer."""

    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    mask_token_id: int
    special_ids: set[int]

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True) -> list[int]: ...

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]: ...


@dataclass
class PretrainingConfig:
    """How instances are cut and how tokens are masked (defaults: BERT's)."""

    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    mask_ratio: float = 0.8
    random_ratio: float = 0.1
    keep_ratio: float = 0.1
    whole_word_mask: bool = False
    task: Literal["nsp", "sop"] = "nsp"

    def __post_init__(self) -> None:
        if self.task not in ("nsp", "sop"):
            raise ValueError(f"PretrainingConfig.task must be 'nsp' or 'sop', got {self.task!r}")
        if self.max_seq_length < 5:
            raise ValueError(f"PretrainingConfig.max_seq_length must be >= 5, got {self.max_seq_length}")
        for name in ("short_seq_prob", "masked_lm_prob", "mask_ratio", "random_ratio", "keep_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"PretrainingConfig.{name} must be in [0, 1], got {value}")
        total = self.mask_ratio + self.random_ratio + self.keep_ratio
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"PretrainingConfig mask_ratio + random_ratio + keep_ratio must be 1, got {total:g}"
            )
        if self.max_predictions_per_seq < 1:
            raise ValueError(
                f"PretrainingConfig.max_predictions_per_seq must be >= 1, got {self.max_predictions_per_seq}"
            )


@dataclass
class Instance:
    """One sentence pair. is_random_next: NSP → B is from another document; SOP → A/B swapped."""

    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool

    @property
    def next_sentence_label(self) -> int:
        return int(self.is_random_next)


# --------------------------------------------------------------------------------------
# Documents → instances
# --------------------------------------------------------------------------------------


def tokenize_documents(
    texts: Sequence[str], tokenizer: TokenizerLike, progress: bool | None = None
) -> list[list[list[int]]]:
    """Split each text into sentences and tokenize them (no special tokens).

    Empty sentences and empty documents are dropped. progress=None shows a bar for > 100 texts.
    """
    backend = getattr(tokenizer, "backend", None)
    show = len(texts) > 100 if progress is None else progress
    documents: list[list[list[int]]] = []
    for text in tqdm(texts, desc="tokenizing", unit="doc", disable=not show):
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
        raise ValueError(
            f"next-sentence prediction needs at least 2 non-empty documents, got {len(docs)} "
            "(separate documents with blank lines, or use task='sop')"
        )
    if not docs:
        raise ValueError("no text to build pretraining instances from")
    instances: list[Instance] = []
    for index in range(len(docs)):
        instances.extend(_instances_from_document(docs, index, cfg, rng))
    rng.shuffle(instances)
    return instances


def _instances_from_document(
    docs: list[list[list[int]]], index: int, cfg: PretrainingConfig, rng: random.Random
) -> list[Instance]:
    document = docs[index]
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
                if len(chunk) == 1 or rng.random() < 0.5:
                    is_random = True
                    tokens_b = _random_segment(docs, index, target_length - len(tokens_a), rng)
                    i -= len(chunk) - a_end  # put the unused segments back
                else:
                    is_random = False
                    tokens_b = [t for s in chunk[a_end:] for t in s]
            else:
                if len(chunk) == 1:  # one long sentence: split it at a random token
                    if len(tokens_a) < 2:
                        chunk, chunk_length = [], 0
                        i += 1
                        continue
                    cut = rng.randint(1, len(tokens_a) - 1)
                    tokens_a, tokens_b = tokens_a[:cut], tokens_a[cut:]
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


def pack(instance: Instance, tokenizer: TokenizerLike) -> tuple[list[int], list[int]]:
    """[CLS] A [SEP] B [SEP] and its token_type_ids (0 for [CLS] A [SEP], 1 for B [SEP])."""
    input_ids = (
        [tokenizer.cls_token_id] + instance.tokens_a + [tokenizer.sep_token_id]
        + instance.tokens_b + [tokenizer.sep_token_id]
    )
    token_type_ids = [0] * (len(instance.tokens_a) + 2) + [1] * (len(instance.tokens_b) + 1)
    return input_ids, token_type_ids


# --------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskingVocab:
    """The vocabulary facts masking needs, precomputed once from a tokenizer."""

    mask_token_id: int
    special_ids: torch.Tensor  # (S,) ids never chosen for prediction
    random_ids: torch.Tensor  # (R,) ids a chosen token may be replaced with (non-special)
    continuation: torch.Tensor  # (V,) bool, True for "##" word pieces

    @classmethod
    def from_tokenizer(cls, tokenizer: TokenizerLike) -> MaskingVocab:
        size = tokenizer.vocab_size
        special = sorted(int(i) for i in tokenizer.special_ids)
        tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
        random_ids = [i for i in range(size) if i not in set(special)]
        if not random_ids:
            raise ValueError("the vocabulary has no non-special tokens to use as random replacements")
        return cls(
            mask_token_id=int(tokenizer.mask_token_id),
            special_ids=torch.tensor(special, dtype=torch.long),
            random_ids=torch.tensor(random_ids, dtype=torch.long),
            continuation=torch.tensor([t.startswith("##") for t in tokens], dtype=torch.bool),
        )


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: TokenizerLike | MaskingVocab,
    cfg: PretrainingConfig,
    generator: torch.Generator,
    special_tokens_mask: torch.Tensor | None = None,
    word_starts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose masked_lm_prob of the real, non-special tokens of each row (at least 1, at most
    max_predictions_per_seq); of those, mask_ratio → [MASK], random_ratio → a random non-special
    id, the rest kept. Returns (masked_input_ids, labels) with labels -100 where not chosen.

    Whole-word masking (cfg.whole_word_mask) chooses whole words: a word starts where
    ``word_starts`` is True (default: tokens not starting with "##").
    """
    if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"input_ids and attention_mask must both be (batch, seq); got {tuple(input_ids.shape)} "
            f"and {tuple(attention_mask.shape)}"
        )
    vocab = tokenizer if isinstance(tokenizer, MaskingVocab) else MaskingVocab.from_tokenizer(tokenizer)
    if special_tokens_mask is None:
        special_tokens_mask = torch.isin(input_ids, vocab.special_ids)
    candidates = attention_mask.bool() & ~special_tokens_mask.bool()
    n_candidates = candidates.sum(dim=1)
    budget = torch.round(n_candidates.double() * cfg.masked_lm_prob).long()
    budget = budget.clamp(min=1, max=cfg.max_predictions_per_seq)
    budget = torch.where(n_candidates > 0, budget, torch.zeros_like(budget))

    if cfg.whole_word_mask:
        if word_starts is None:
            in_vocab = input_ids.clamp(0, len(vocab.continuation) - 1)
            word_starts = ~vocab.continuation[in_vocab]
        chosen = _choose_whole_words(candidates, word_starts.bool(), budget, cfg, generator)
    else:
        scores = torch.rand(input_ids.shape, generator=generator)
        scores = scores.masked_fill(~candidates, 2.0)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        chosen = candidates & (ranks < budget.unsqueeze(1))

    action = torch.rand(input_ids.shape, generator=generator)
    picks = torch.randint(len(vocab.random_ids), input_ids.shape, generator=generator)
    to_mask = chosen & (action < cfg.mask_ratio)
    to_random = chosen & (action >= cfg.mask_ratio) & (action < cfg.mask_ratio + cfg.random_ratio)

    masked = input_ids.clone()
    masked[to_mask] = vocab.mask_token_id
    masked[to_random] = vocab.random_ids[picks[to_random]]
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


def _choose_whole_words(
    candidates: torch.Tensor,
    word_starts: torch.Tensor,
    budget: torch.Tensor,
    cfg: PretrainingConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per row: shuffle the words, take each whole word that still fits the row's budget."""
    chosen = torch.zeros_like(candidates)
    for row in range(candidates.shape[0]):
        words: list[list[int]] = []
        for position in torch.nonzero(candidates[row]).flatten().tolist():
            contiguous = bool(words) and position - 1 == words[-1][-1]
            if word_starts[row, position] or not contiguous:
                words.append([position])
            else:
                words[-1].append(position)
        if not words:
            continue
        limit = int(budget[row])
        taken: list[int] = []
        order = torch.randperm(len(words), generator=generator).tolist()
        for w in order:
            if len(taken) >= limit:
                break
            if len(taken) + len(words[w]) <= limit:
                taken.extend(words[w])
        if not taken:  # every word is longer than the budget: take the first that fits the cap
            for w in order:
                if len(words[w]) <= cfg.max_predictions_per_seq:
                    taken = words[w]
                    break
        chosen[row, taken] = True
    return chosen


# --------------------------------------------------------------------------------------
# Dataset and collator
# --------------------------------------------------------------------------------------


class PretrainingDataset(Dataset):
    """Packed, un-masked instances: each item is input_ids, token_type_ids, next_sentence_label."""

    def __init__(self, instances: Sequence[Instance], tokenizer: TokenizerLike) -> None:
        self.items: list[dict[str, Any]] = []
        for instance in instances:
            input_ids, token_type_ids = pack(instance, tokenizer)
            self.items.append({
                "input_ids": input_ids,
                "token_type_ids": token_type_ids,
                "next_sentence_label": instance.next_sentence_label,
            })

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], tokenizer: TokenizerLike, cfg: PretrainingConfig, seed: int = 0
    ) -> PretrainingDataset:
        """Tokenize documents and cut them into instances with random.Random(seed)."""
        documents = tokenize_documents(texts, tokenizer)
        return cls(build_instances(documents, cfg, random.Random(seed)), tokenizer)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class PretrainingCollator:
    """Pads a list of dataset items to the longest and applies dynamic MLM masking."""

    def __init__(self, tokenizer: TokenizerLike, cfg: PretrainingConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.vocab = MaskingVocab.from_tokenizer(tokenizer)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self, items: Sequence[dict[str, Any]], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Batch tensors; masks with ``generator`` (default: the collator's own, seeded at init)."""
        if not items:
            raise ValueError("cannot collate an empty list of items")
        length = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), length), self.pad_token_id, dtype=torch.long)
        token_type_ids = torch.zeros((len(items), length), dtype=torch.long)
        attention_mask = torch.zeros((len(items), length), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = torch.tensor(item["input_ids"], dtype=torch.long)
            token_type_ids[row, :n] = torch.tensor(item["token_type_ids"], dtype=torch.long)
            attention_mask[row, :n] = 1
        masked, labels = mask_tokens(
            input_ids, attention_mask, self.vocab, self.cfg, generator or self.generator
        )
        return {
            "input_ids": masked,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "next_sentence_label": torch.tensor(
                [item["next_sentence_label"] for item in items], dtype=torch.long
            ),
        }
