"""How pretraining instances are cut and masked (PretrainingConfig, BERT's defaults), and what the
pretraining data needs from a tokenizer (TokenizerLike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ..errors import InputError


class TokenizerLike(Protocol):
    """What pretraining needs from glassbert.tokenizer.Tokenizer."""

    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    mask_token_id: int
    special_ids: set[int]

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True) -> list[int]: ...

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]: ...

    def pack(self, ids_a: Sequence[int], ids_b: Sequence[int] | None = None) -> tuple[list[int], list[int]]: ...


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
    task: Literal["nsp", "sop", "mlm"] = "nsp"  # mlm: no sentence pairs, one document chunk per sequence
    pack: bool = False  # mlm only: several short chunks share a row, each attending only to itself

    def __post_init__(self) -> None:
        if self.task not in ("nsp", "sop", "mlm"):
            raise InputError(f"PretrainingConfig.task must be 'nsp', 'sop' or 'mlm', got {self.task!r}")
        if self.pack and self.task != "mlm":
            raise InputError(f"packing puts several documents in one row, which a sentence-pair task "
                             f"({self.task}) cannot read: pack with task 'mlm'")
        if self.max_seq_length < 5:
            raise InputError(f"PretrainingConfig.max_seq_length must be >= 5, got {self.max_seq_length}")
        for name in ("short_seq_prob", "masked_lm_prob", "mask_ratio", "random_ratio", "keep_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"PretrainingConfig.{name} must be in [0, 1], got {value}")
        total = self.mask_ratio + self.random_ratio + self.keep_ratio
        if abs(total - 1.0) > 1e-6:
            raise InputError(
                f"PretrainingConfig mask_ratio + random_ratio + keep_ratio must be 1, got {total:g}"
            )
        if self.max_predictions_per_seq < 1:
            raise InputError(
                f"PretrainingConfig.max_predictions_per_seq must be >= 1, got {self.max_predictions_per_seq}"
            )


__all__ = ["PretrainingConfig", "TokenizerLike"]
