"""`glassbert trace`: the forward pass step by step, read off the model's own capture points.

Step names and order follow "Bert Inner Workings" (reference/000): Word Embeddings … Attention Scores
Divided by Scalar … Context Reshaped … First Token [CLS] Tanh Activation Function.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch

from .capture import Capture

# capture-point suffix → the step's name in reference/000
STEP_NAMES = {
    "embeddings.position_ids": "Created Tokens Positions IDs",
    "embeddings.input_ids": "Tokens IDs",
    "embeddings.token_type_ids": "Tokens Type IDs",
    "embeddings.word": "Word Embeddings",
    "embeddings.position": "Position Embeddings",
    "embeddings.token_type": "Token Types Embeddings",
    "embeddings.sum": "Sum Up All Embeddings",
    "embeddings.layernorm": "Embeddings Layer Normalization",
    "embeddings.dropout": "Embeddings Dropout Layer",
    "attention.self.hidden_states": "Hidden States",
    "attention.self.query_linear": "Query Linear Layer",
    "attention.self.key_linear": "Key Linear Layer",
    "attention.self.value_linear": "Value Linear Layer",
    "attention.self.query": "Query",
    "attention.self.key": "Key",
    "attention.self.value": "Value",
    "attention.self.key_transposed": "Key Transposed",
    "attention.self.scores": "Attention Scores",
    "attention.self.scores_scaled": "Attention Scores Divided by Scalar",
    "attention.self.probs": "Attention Probabilities Softmax Layer",
    "attention.self.probs_dropout": "Attention Probabilities Dropout Layer",
    "attention.self.context": "Context",
    "attention.self.context_permute": "Context Permute",
    "attention.self.context_reshaped": "Context Reshaped",
    "attention.output.hidden_states": "Hidden States",
    "attention.output.dense": "Hidden States Linear Layer",
    "attention.output.dropout": "Hidden States Dropout Layer",
    "attention.output.layernorm": "Hidden States Normalization Layer",
    "intermediate.hidden_states": "Hidden States",
    "intermediate.dense": "Hidden States Linear Layer",
    "intermediate.activation": "Hidden States {act} Activation Function",
    "output.hidden_states": "Hidden States",
    "output.dense": "Hidden States Linear Layer",
    "output.dropout": "Hidden States Dropout Layer",
    "output.layernorm": "Hidden States Layer Normalization",
    "pooler.hidden_states": "Hidden States",
    "pooler.first_token": "First Token [CLS]",
    "pooler.dense": "First Token [CLS] Linear Layer",
    "pooler.activation": "First Token [CLS] Tanh Activation Function",
}
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)$")
# steps whose values are small integer tensors worth printing whole
_PRINT_VALUES = {"embeddings.position_ids"}


def step_name(capture_name: str, act: str = "gelu") -> tuple[int | None, str] | None:
    """(layer index or None, step name) for a capture point of the bare model, else None."""
    name = capture_name.split("#")[0]
    if name.startswith("bert."):
        name = name[5:]
    m = _LAYER.match(name)
    layer, suffix = (int(m.group(1)), m.group(2)) if m else (None, name)
    label = STEP_NAMES.get(suffix)
    if label is None:
        return None
    return layer, label.format(act=act.split("_")[0].capitalize())


def _stats(t: torch.Tensor) -> str:
    f = t.float()
    return (f"mean {f.mean().item():+.4f}  std {f.std(unbiased=False).item():.4f}  "
            f"min {f.min().item():+.4f}  max {f.max().item():+.4f}")


def trace(model, batch: dict, values: bool = False, layers: Iterable[int] | None = None,
          echo: Callable[[str], None] = print) -> Capture:
    """Run `model` (a BertModel) on `batch` under a Capture and print each step.

    layers: 1-based layer numbers to print in full (default all); the others print as "...".
    Returns the Capture, whose records hold every tensor shown.
    """
    cfg = model.config
    chosen = set(layers) if layers is not None else set(range(1, cfg.num_hidden_layers + 1))
    bad = sorted(i for i in chosen if not 1 <= i <= cfg.num_hidden_layers)
    if bad:
        raise ValueError(f"--layers {bad} outside 1..{cfg.num_hidden_layers}")
    was_training = model.training
    model.eval()
    with torch.no_grad(), Capture(model) as cap:
        model(**batch)
    model.train(was_training)

    echo(f"NUMBER OF LAYERS: {cfg.num_hidden_layers}")
    echo(f"EMBEDDING SIZE: {cfg.hidden_size}")
    echo(f"ACTIVATIONS: {cfg.hidden_act}")
    echo(f"Attention Head Size:\n{cfg.attention_head_size}\n")
    echo(f"Combined Attentions Head Size:\n{cfg.all_head_size}\n")
    current: int | None = None
    for name, tensor in cap.records.items():
        step = step_name(name, cfg.hidden_act)
        if step is None:
            continue
        layer, label = step
        if layer != current:
            if layer is not None:
                echo(f"----------------- BERT LAYER {layer + 1} -----------------\n")
                if layer + 1 not in chosen:
                    echo("...\n")
            current = layer
        if layer is not None and layer + 1 not in chosen:
            continue
        shape = f"torch.Size({list(tensor.shape)})"
        suffix = name.split(".", 1)[-1] if name.startswith("bert.") else name
        echo(f"{label}:")
        if suffix in _PRINT_VALUES:
            echo(f"{tensor}\n")
            continue
        echo(shape + (f"   {_stats(tensor)}" if values and tensor.is_floating_point() else ""))
        echo("")
    return cap


__all__ = ["trace", "step_name", "STEP_NAMES"]
