"""`glassbert fill-mask`: the top-k words for every [MASK], from a model with an MLM head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import InputError
from .heads import BertForMaskedLM
from .registry import load_as_with_report
from .precision import check_precision, model_device, precision_context
from .quantize import for_inference
from .tokenizer import Tokenizer


@dataclass
class MaskPrediction:
    text: str
    position: int                        # token index of the [MASK]
    candidates: list[tuple[str, float]]  # (token, probability), best first
    index: int = 0                       # which of the texts asked about it is (texts may repeat)


@dataclass(frozen=True)
class MaskedLM:
    """A model with a trained MLM head and its tokenizer, loaded once (:func:`load_masked_lm`)."""

    model: nn.Module  # in eval mode
    tokenizer: Tokenizer


def load_masked_lm(model: str | Path | MaskedLM, device: str | torch.device = "cpu") -> MaskedLM:
    """``model``'s MLM (a BERT's or an ALBERT's) on ``device``; a model whose checkpoint has no MLM head (an
    encoder such as MiniLM) is refused: its head would start random and fill every [MASK] with noise."""
    if isinstance(model, MaskedLM):
        return model
    mlm, report = load_as_with_report(model, BertForMaskedLM)
    if report.newly_initialized:
        raise InputError(f"{model} has no trained MLM head (its checkpoint lacks {report.newly_initialized[0]}"
                         f"{' …' if len(report.newly_initialized) > 1 else ''}): it cannot fill a [MASK]; pretrain "
                         f"it first: glassbert pretrain --from {model} --corpus TEXT --out DIR …")
    return MaskedLM(mlm.to(device).eval(), Tokenizer.from_pretrained(model))


def fill_mask(model: str | Path | MaskedLM, texts: list[str], top_k: int = 5, precision: str = "fp32",
              max_length: int | None = None) -> list[MaskPrediction]:
    """The top-k words for every [MASK] of ``texts``, by ``model``'s MLM head (a BERT's or an ALBERT's; or the
    model :func:`load_masked_lm` loaded). ``precision``: fp32 (default), bf16 or auto (see glassbert.precision)."""
    check_precision(precision)
    mlm = load_masked_lm(model)
    for_inference(mlm.model, precision, model_device(mlm.model))  # once (glassbert.quantize)
    return predict_masks(mlm.model, mlm.tokenizer, texts, top_k, max_length=max_length, precision=precision)


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
                           list(zip(tok.convert_ids_to_tokens(top.indices[k]), top.values[k].tolist())), int(r))
            for k, (r, c) in enumerate(zip(rows, cols))]


__all__ = ["fill_mask", "load_masked_lm", "predict_masks", "MaskPrediction"]
