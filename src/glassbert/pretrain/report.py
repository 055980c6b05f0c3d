"""What a pretraining run hands its user at the end: the held-out metrics in words, and fill-mask on
held-out text, so that a person sees what the model learnt (or that it only guesses "the , of").

    held-out pairs ─▶ the Trainer's last evaluation (fixed masks) ─▶ MLM accuracy, loss, perplexity,
                                                                    NSP/SOP accuracy beside the majority class
    held-out pairs ─▶ segment A as text, one whole word ─▶ [MASK] ─▶ the model's top 3 (predict_masks)
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..fill_mask import predict_masks
from ..tokenizer import Tokenizer


@dataclass
class FillMaskExample:
    """One held-out word hidden behind [MASK] and the model's best guesses for it."""

    context: str                       # the words around the mask, as text, with [MASK] (… where cut)
    answer: str                        # the word that was there
    guesses: list[tuple[str, float]]   # (token, probability), best first

    @property
    def right(self) -> bool:
        return bool(self.guesses) and self.guesses[0][0] == self.answer


@dataclass
class RunReport:
    """The held-out figures of a run (from its last evaluation) and its fill-mask examples."""

    mlm_acc: float
    mlm_loss: float
    perplexity: float
    pair_task: str | None              # NSP | SOP | None (task MLM)
    pair_acc: float
    pair_majority: float               # accuracy of always answering the held-out pairs' commoner label
    pairs: int                         # held-out items: pairs, or (task MLM) chunks or packed rows
    examples: list[FillMaskExample]
    unit: str = "pairs"

    def lines(self) -> list[str]:
        """The report as printed at the end of a run."""
        out = [f"held-out ({self.pairs} {self.unit} from documents the run never trained on):",
               f"  MLM: accuracy {self.mlm_acc:.3f} on the masked tokens, loss {self.mlm_loss:.3f}, "
               f"perplexity {self.perplexity:.1f}"]
        if self.pair_task:
            out.append(f"  {self.pair_task}: accuracy {self.pair_acc:.3f} (always answering the commoner label: "
                       f"{self.pair_majority:.3f})")
        if self.examples:
            out.append("  fill-mask on held-out sentences (the hidden word → the model's top 3):")
            for e in self.examples:
                guesses = ", ".join(f"{t} {p:.0%}" for t, p in e.guesses)
                out.append(f"    {'✓' if e.right else '✗'} {e.context}  [{e.answer}] → {guesses}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_word(token: str) -> bool:
    return token.isalpha() and len(token) >= 3


def fill_mask_examples(model: nn.Module, tok: Tokenizer, items: Sequence[Mapping[str, Any]], n: int = 5,
                       seed: int = 0, window: int = 8, top_k: int = 3) -> list[FillMaskExample]:
    """Hide one whole word (alphabetic, ≥ 3 letters, a single token) of segment A of ``n`` held-out items
    spread over ``items`` ([CLS] A [SEP] …: input_ids) and ask ``model`` for its top ``top_k``.
    The model reads the whole segment A; ``context`` shows ``window`` tokens either side."""
    rng = random.Random(seed)
    texts, shown, answers = [], [], []
    step = max(1, len(items) // n)  # spread over the items; then the rest, should some have no word to hide
    for index in [*range(0, len(items), step), *(i for i in range(len(items)) if i % step)]:
        ids = list(items[index]["input_ids"])
        segment_a = ids[1:ids.index(tok.sep_token_id)]  # [CLS] A [SEP] B [SEP] → A
        tokens = tok.convert_ids_to_tokens(segment_a)
        spots = [i for i, t in enumerate(tokens)
                 if _is_word(t) and (i + 1 == len(tokens) or not tokens[i + 1].startswith("##"))]
        if not spots:
            continue
        at = rng.choice(spots)

        masked = segment_a[:at] + [tok.mask_token_id] + segment_a[at + 1:]

        def text(lo: int, hi: int) -> str:
            return tok.decode(masked[lo:hi], skip_special_tokens=False)

        lo, hi = max(0, at - window), min(len(tokens), at + 1 + window)
        while lo > 0 and tokens[lo].startswith("##"):  # whole words only
            lo -= 1
        while hi < len(tokens) and tokens[hi].startswith("##"):
            hi += 1
        texts.append(text(0, len(segment_a)))
        shown.append("…" * (lo > 0) + text(lo, hi) + "…" * (hi < len(tokens)))
        answers.append(tokens[at])
        if len(texts) == n:
            break
    if not texts:
        return []
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        predictions = predict_masks(_OnDevice(model, device), tok, texts, top_k=top_k)
    finally:
        model.train(was_training)
    return [FillMaskExample(context, answer, [(t, round(p, 4)) for t, p in pred.candidates])
            for context, answer, pred in zip(shown, answers, predictions)]


class _OnDevice(nn.Module):
    """``model`` fed its batches on ``device`` (predict_masks builds them on the CPU)."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model, self.device = model, device

    def forward(self, **batch: torch.Tensor) -> Any:
        out = self.model(**{k: v.to(self.device) for k, v in batch.items()})
        out.prediction_logits = out.prediction_logits.float().cpu()
        return out


def run_report(final_eval: Mapping[str, float], pair_metric: str | None, items: Sequence[Mapping[str, Any]],
               examples: list[FillMaskExample], unit: str = "pairs") -> RunReport:
    """The figures of ``final_eval`` (the Trainer's last held-out evaluation, with mlm_loss, mlm_acc and
    ``pair_metric``_acc) beside the majority class of the held-out pairs' labels; ``pair_metric`` None:
    task MLM, no pairs."""
    labels = [int(item["next_sentence_label"]) for item in items] if pair_metric else []
    majority = max(sum(labels), len(labels) - sum(labels)) / max(1, len(labels))
    mlm_loss = float(final_eval.get("mlm_loss", math.nan))
    return RunReport(mlm_acc=float(final_eval.get("mlm_acc", math.nan)), mlm_loss=mlm_loss,
                     perplexity=math.exp(min(mlm_loss, 50.0)), pair_task=pair_metric.upper() if pair_metric else None,
                     pair_acc=float(final_eval.get(f"{pair_metric}_acc", math.nan)), pair_majority=majority,
                     pairs=len(items), examples=examples, unit=unit)


__all__ = ["FillMaskExample", "RunReport", "fill_mask_examples", "run_report"]
