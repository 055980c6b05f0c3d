"""Attributions recorded with each snapshot: for every recorded sample, which tokens (integrated gradients)
and which layers × tokens (layer conductance) made the model's output, by :mod:`glassbert.explain`.

Why recorded and not computed by the explorer on demand: the model of an earlier epoch exists only while
it trains (a run keeps its latest checkpoint and its best model; a snapshot's weights are the first thing
the size bound drops), so attributions *across epochs* can only be taken then; and the explorer stays a
read-only server of files, whose single-file export carries them too. They are small (tokens + layers ×
tokens numbers per target) and live in the manifest's snapshot entry beside the predictions:

    snapshots[k]["attributions"][sample] = [{target, kind, class, position, prediction, ...,
                                             ig: [T], ig_delta, ig_steps, layers: [L][T], layers_delta, ...}, ...]

Targets, per sample: the true word at the first [MASK] of the sample's masked positions and the true NSP/SOP
label when the record knows them (pretraining), else what the model predicts (a classifier's label, a
tagger's first entity, a QA model's start). A target that does not fit a sample is recorded as its error.

The explorer's what-if explains a typed input the same way (:func:`input_targets`): the word clicked to mask
(its true word) or the predicted word at a [MASK] typed in the text, and the pair head's predicted class for
a typed pair (no true label is known); ``gold`` says which targets are true answers.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from glassbert.errors import InputError

RECORD_STEPS = 32                  # integration steps while training waits (each entry's delta says how close)
ABOUT = {
    "f": "the model's probability of the target (softmax over the head's classes)",
    "baseline": "[PAD] for every token but [CLS], [SEP] and [MASK]",
    "ig": "integrated gradients on the embedding output, summed over hidden units: one number per token",
    "layers": "layer conductance of each encoder layer's output, summed over hidden units: layers × tokens",
}


def _round(values: Sequence[float]) -> list[float]:
    return [float(f"{v:.4g}") for v in values]


def sample_targets(info: Mapping[str, Any], mask_id: int | None, pair_head: str | None) -> list[str | None]:
    """The targets to record for one sample (see the module doc): ``Target.parse`` strings, None = predicted."""
    targets: list[str | None] = []
    ids = info["input_ids"]
    for position, true_id, token in zip(info.get("masked_positions") or [], info.get("masked_ids") or [],
                                        info.get("masked_tokens") or []):
        if ids[position] == mask_id:  # 80/10/10 masking: a position kept or replaced holds no [MASK]
            targets.append(f"{token}@{position}")
            break
    if pair_head is not None and info.get("is_next") is not None:
        from glassbert.explain import PAIR_LABELS
        targets.append(PAIR_LABELS[pair_head][0 if info["is_next"] else 1])
    return targets or [None]


def input_targets(model: torch.nn.Module, info: Mapping[str, Any], mask_id: int | None,
                  pair_prediction: int | None = None) -> list[tuple[str | None, bool]]:
    """The targets of one typed input (the what-if), each with whether it is a true answer (``gold``): the word
    at its first [MASK] when the model has an MLM head (the clicked word, true; a [MASK] typed in the text: the
    predicted word there), and the pair head's predicted class (``pair_prediction``: 0 or 1) when the input is a
    pair; else what the model predicts. ``info`` as a recording's sample entry (input_ids, token_type_ids,
    length, masked_positions, masked_tokens)."""
    from glassbert.explain import PAIR_LABELS
    from glassbert.explain.targets import explainable_heads
    from glassbert.explain.targets import pair_head as pair_head_of

    heads = explainable_heads(model)
    ids, n = info["input_ids"], int(info["length"])
    out: list[tuple[str | None, bool]] = []
    if "word" in heads:
        for position, token in zip(info.get("masked_positions") or [], info.get("masked_tokens") or []):
            if ids[position] == mask_id:
                out.append((f"{token}@{position}", True) if token != "[MASK]" else (f"@{position}", False))
                break
    pair = pair_head_of(model)
    if pair is not None and pair_prediction is not None and any(info["token_type_ids"][:n]):
        out.append((PAIR_LABELS[pair][pair_prediction], False))
    return out or [(None, False)]


def has_head(model: torch.nn.Module) -> bool:
    """Does ``model`` have something to explain (any head on the encoder: its class's ``heads``)?"""
    return bool(getattr(model, "heads", ()))


def record_attributions(model: torch.nn.Module, tokenizer: Any, samples: Sequence[Mapping[str, Any]],
                        kind: str = "all", steps: int = RECORD_STEPS,
                        targets: Sequence[Sequence[tuple[str | None, bool]]] | None = None
                        ) -> list[list[dict[str, Any]]]:
    """Per sample, one entry per target (see the module doc). ``kind``: "all" (IG and conductance) or "ig".
    ``targets``: per sample, (target, gold) pairs (default: :func:`sample_targets`, gold when named).
    All samples' targets of one head run as one padded batch."""
    from glassbert.explain import Explainer, Item
    from glassbert.explain.targets import pair_head as pair_head_of

    explainer = Explainer(model, tokenizer)
    pair_head = pair_head_of(model)
    owners, items, golds = [], [], []
    for s, info in enumerate(samples):
        n = int(info["length"])
        chosen = targets[s] if targets is not None else [
            (t, t is not None) for t in sample_targets(info, getattr(tokenizer, "mask_token_id", None), pair_head)]
        for target, gold in chosen:
            owners.append(s)
            golds.append(gold)
            items.append(Item(info["input_ids"][:n], info["token_type_ids"][:n], target))
    ig = explainer.explain_batch(items, "ig", steps, errors="return")
    layers: list[Any] = [None] * len(items)
    if kind == "all":
        try:
            layers = explainer.explain_batch(items, "conductance", steps, errors="return")
        except InputError as e:  # a model without one module per layer (ALBERT): IG only
            layers = [e] * len(items)
    out: list[list[dict[str, Any]]] = [[] for _ in samples]
    for s, item, gold, a, c in zip(owners, items, golds, ig, layers):
        out[s].append(_entry(item.target, gold, a, c))
    return out


def _entry(target: str | None, gold: bool, ig: Any, lc: Any) -> dict[str, Any]:
    if isinstance(ig, InputError):
        return {"target": target or "predicted", "error": str(ig)}
    entry = {"target": ig.target, "kind": ig.target_kind, "class": ig.target_class, "position": ig.target_position,
             "gold": gold, "prediction": ig.prediction,
             "predicted_probability": round(ig.predicted_probability, 4), "probability": round(ig.probability, 4),
             "baseline_probability": round(ig.baseline_probability, 4), "tolerance": float(f"{ig.tolerance:.3g}"),
             "ig": _round(ig.attributions), "ig_delta": float(f"{ig.delta:.3g}"), "ig_steps": ig.steps,
             "ig_converged": ig.converged, "seconds": ig.seconds}
    if isinstance(lc, InputError):
        entry["layers_error"] = str(lc)
    elif lc is not None:
        entry.update(layers=[_round(row) for row in lc.layers], layers_delta=float(f"{lc.delta:.3g}"),
                     layers_steps=lc.steps, layers_converged=lc.converged, seconds=round(ig.seconds + lc.seconds, 3))
    return entry


__all__ = ["record_attributions", "sample_targets", "input_targets", "has_head", "ABOUT", "RECORD_STEPS"]
