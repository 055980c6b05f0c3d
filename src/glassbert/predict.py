"""`glassbert fill-mask`: the top-k words for every [MASK], from a model with an MLM head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InputError
from .heads import BertForMaskedLM
from .tokenizer import Tokenizer


@dataclass
class MaskPrediction:
    text: str
    position: int                        # token index of the [MASK]
    candidates: list[tuple[str, float]]  # (token, probability), best first


def fill_mask(model: str | Path, texts: list[str], top_k: int = 5) -> list[MaskPrediction]:
    tok = Tokenizer.from_pretrained(model)
    mlm = BertForMaskedLM.from_pretrained(model)
    if not hasattr(mlm.cls.predictions, "decoder"):
        raise InputError(f"{model}: no MLM head")
    batch = tok(texts, padding=True)
    masks = batch["input_ids"] == tok.mask_token_id
    missing = [t for t, row in zip(texts, masks) if not row.any()]
    if missing:
        raise InputError(f"no [MASK] in {missing[0]!r}: write [MASK] where a word should be predicted")
    with torch.no_grad():
        logits = mlm(**batch).prediction_logits                                   # (B, T, V)
    probs = logits[masks].softmax(-1)                                             # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    rows, cols = masks.nonzero(as_tuple=True)
    return [MaskPrediction(texts[int(r)], int(c),
                           list(zip(tok.convert_ids_to_tokens(top.indices[k]), top.values[k].tolist())))
            for k, (r, c) in enumerate(zip(rows, cols))]


__all__ = ["fill_mask", "MaskPrediction"]
