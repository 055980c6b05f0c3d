"""`glassbert fill-mask`: the top-k words for every [MASK], from a model with an MLM head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import InputError
from .heads import BertForMaskedLM
from .registry import load_as
from .precision import check_precision, model_device, precision_context
from .tokenizer import Tokenizer


@dataclass
class MaskPrediction:
    text: str
    position: int                        # token index of the [MASK]
    candidates: list[tuple[str, float]]  # (token, probability), best first


def fill_mask(model: str | Path, texts: list[str], top_k: int = 5, precision: str = "fp32") -> list[MaskPrediction]:
    """The top-k words for every [MASK] of ``texts``, by ``model``'s MLM head (a BERT's or an ALBERT's).
    ``precision``: fp32 (default), bf16 or auto (see glassbert.precision)."""
    check_precision(precision)
    tok = Tokenizer.from_pretrained(model)
    return predict_masks(load_as(model, BertForMaskedLM), tok, texts, top_k, precision=precision)


def predict_masks(mlm: nn.Module, tok: Tokenizer, texts: list[str], top_k: int = 5,
                  max_length: int | None = None, precision: str = "fp32") -> list[MaskPrediction]:
    """fill_mask with a loaded model (anything whose output has ``prediction_logits``): one padded batch,
    one MaskPrediction per [MASK] in text order. ``max_length`` truncates (default: the tokenizer's);
    the probabilities are a float32 softmax whatever the ``precision``."""
    batch = tok(texts, padding=True, max_length=max_length)
    masks = batch["input_ids"] == tok.mask_token_id
    missing = [t for t, row in zip(texts, masks) if not row.any()]
    if missing:
        raise InputError(f"no [MASK] in {missing[0]!r}: write [MASK] where a word should be predicted")
    with torch.no_grad(), precision_context(precision, model_device(mlm)):
        logits = mlm(**batch).prediction_logits                                   # (B, T, V)
    probs = logits[masks].float().softmax(-1)                                     # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    rows, cols = masks.nonzero(as_tuple=True)
    return [MaskPrediction(texts[int(r)], int(c),
                           list(zip(tok.convert_ids_to_tokens(top.indices[k]), top.values[k].tolist())))
            for k, (r, c) in enumerate(zip(rows, cols))]


__all__ = ["fill_mask", "predict_masks", "MaskPrediction"]
