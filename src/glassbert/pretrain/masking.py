"""Dynamic MLM masking, BERT's 80/10/10: each batch is masked with a generator the caller seeds
(the Trainer: from (seed, micro-step)), so every epoch sees fresh masks and a resumed run the same ones.

    items ─▶ pad_rows ─▶ choose masked_lm_prob of the real, non-special tokens (or whole words)
          ─▶ 80 % [MASK] · 10 % a random non-special id · 10 % kept ─▶ labels (IGNORE_INDEX elsewhere)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from ..tokenizer import IGNORE_INDEX, pad_rows
from .config import PretrainingConfig, TokenizerLike


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
            raise InputError("the vocabulary has no non-special tokens to use as random replacements")
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
        raise InputError(
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


class PretrainingCollator:
    """Pads a list of dataset items to the longest and applies dynamic MLM masking. The pair labels go to
    the model as ``pair_label``: ``next_sentence_label`` (BERT) or ``sentence_order_label`` (ALBERT). Packed
    rows (items with ``position_ids``) get a (B, T, T) attention mask that keeps their chunks apart."""

    def __init__(self, tokenizer: TokenizerLike, cfg: PretrainingConfig, seed: int = 0,
                 pair_label: str = "next_sentence_label") -> None:
        self.cfg = cfg
        self.pair_label = pair_label
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.vocab = MaskingVocab.from_tokenizer(tokenizer)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self, items: Sequence[dict[str, Any]], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Batch tensors; masks with ``generator`` (default: the collator's own, seeded at init)."""
        if not items:
            raise InputError("cannot collate an empty list of items")
        padded = pad_rows(items, self.pad_token_id)
        masked, labels = mask_tokens(
            padded["input_ids"], padded["attention_mask"], self.vocab, self.cfg, generator or self.generator
        )
        batch = {
            "input_ids": masked,
            "token_type_ids": padded["token_type_ids"],
            "attention_mask": padded["attention_mask"],
            "labels": labels,
        }
        if "next_sentence_label" in padded:  # the instance's label: NSP, or SOP's 1 = swapped (not in task MLM)
            batch[self.pair_label] = padded["next_sentence_label"]
        if "position_ids" in padded:  # packed rows: each chunk sees only itself
            batch["attention_mask"] = chunk_attention(padded["position_ids"], padded["attention_mask"])
            batch["position_ids"] = padded["position_ids"]
        return batch


def chunk_attention(position_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Packed rows (B, T) → (B, T, T) attention mask, 1 where token i may see token j: both real and in the
    same chunk (a chunk starts at each position id 0). Padding sees nothing and is seen by nothing."""
    real = attention_mask.bool()                                                  # (B, T)
    chunk = torch.cumsum(position_ids.eq(0) & real, dim=1) * real                 # (B, T) 1, 2, … ; 0 = padding
    same = chunk[:, :, None] == chunk[:, None, :]                                 # (B, T, T)
    return (same & real[:, :, None] & real[:, None, :]).long()


__all__ = ["MaskingVocab", "mask_tokens", "PretrainingCollator", "chunk_attention"]
