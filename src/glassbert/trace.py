"""`glassbert trace`: the forward pass step by step, read off the model's own capture points.

Step names and order follow the article "Bert Inner Workings" (George Mihaila): Word Embeddings … Attention Scores
Divided by Scalar … Context Reshaped … First Token [CLS] Tanh Activation Function. They are not listed
here: each module's capture table (``Point.step``) names its own steps.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .capture import Capture, Point, layer_of
from .errors import InputError
from .precision import check_precision, model_device, precision_context
from .registry import load_as
from .threads import set_threads_for
from .tokenizer import Tokenizer


def parse_layers(spec: str | None) -> list[int] | None:
    """The layers of a ``--layers`` spec: "all" (or None) is every layer (None); else numbers from 1 and
    ranges, e.g. "1,12" or "1-3"."""
    if spec is None or spec == "all":
        return None
    out: list[int] = []
    for part in spec.split(","):
        try:
            a, b = (int(x) for x in part.split("-")) if "-" in part else (int(part), int(part))
        except ValueError:
            raise InputError(f"{spec!r}: use numbers like 1,12 or 1-3") from None
        if b < a:
            raise InputError(f"{part!r} is an empty range: write the lower layer first, e.g. {b}-{a}")
        out.extend(range(a, b + 1))
    if any(layer < 1 for layer in out):
        raise InputError(f"{spec!r}: layers are numbered from 1")
    return out


def step_name(point: Point, path: str, act: str = "gelu") -> tuple[int | None, str] | None:
    """(layer index or None, the article's step name) of a recorded point, None when it is not traced."""
    if point.step is None:
        return None
    return layer_of(path), point.step.format(act=act.split("_")[0].capitalize())


def _stats(t: torch.Tensor) -> str:
    f = t.float()
    return (f"mean {f.mean().item():+.4f}  std {f.std(unbiased=False).item():.4f}  "
            f"min {f.min().item():+.4f}  max {f.max().item():+.4f}")


def trace(model, batch: dict, values: bool = False, layers: Iterable[int] | None = None,
          echo: Callable[[str], None] = print) -> Capture:
    """Run `model` (a BertModel or an AlbertModel) on `batch` under a Capture and print each step.

    layers: 1-based layer numbers to print in full (default all); the others print as "...".
    Returns the Capture, whose records hold every tensor shown.
    """
    cfg = model.config
    chosen = set(layers) if layers is not None else set(range(1, cfg.num_hidden_layers + 1))
    bad = sorted(i for i in chosen if not 1 <= i <= cfg.num_hidden_layers)
    if bad:
        raise InputError(f"--layers {bad} outside 1..{cfg.num_hidden_layers}")
    was_training = model.training
    model.eval()
    with torch.no_grad(), Capture(model) as cap:
        model(**batch)
    model.train(was_training)

    echo(f"NUMBER OF LAYERS: {cfg.num_hidden_layers}")
    echo(f"EMBEDDING SIZE: {cfg.embedding_size}")
    if cfg.embedding_size != cfg.hidden_size:  # ALBERT: the embeddings are projected E → H
        echo(f"HIDDEN SIZE: {cfg.hidden_size}")
    echo(f"ACTIVATIONS: {cfg.hidden_act}")
    echo(f"Attention Head Size:\n{cfg.attention_head_size}\n")
    echo(f"Combined Attentions Head Size:\n{cfg.all_head_size}\n")
    current: int | None = None
    for name, tensor in cap.records.items():
        point = cap.points[name]
        step = step_name(point, name, cfg.hidden_act)
        if step is None:
            continue
        layer, label = step
        if layer != current:
            if layer is not None:
                shared = f" · {cap.shared[name]}" if name in cap.shared else ""  # ALBERT: whose weights it runs
                echo(f"----------------- {cfg.model_type.upper()} LAYER {layer + 1}{shared} -----------------\n")
                if layer + 1 not in chosen:
                    echo("...\n")
            current = layer
        if layer is not None and layer + 1 not in chosen:
            continue
        shape = f"torch.Size({list(tensor.shape)})"
        echo(f"{label}:")
        if point.show_values:
            echo(f"{tensor}\n")
            continue
        echo(shape + (f"   {_stats(tensor)}" if values and tensor.is_floating_point() else ""))
        echo("")
    return cap


def trace_texts(model: str, texts: list[str], values: bool = False, layers: Iterable[int] | None = None,
                echo: Callable[[str], None] = print, max_length: int | None = None,
                precision: str = "fp32", threads: int | None = None) -> Capture:
    """`glassbert trace`: MODEL's tokenizer and bare encoder (a BertModel or an AlbertModel, as its config.json
    says) on ``texts`` (truncated to ``max_length`` tokens): their word pieces, then :func:`trace` of the batch,
    run in ``precision`` (fp32, or bf16 autocast: the steps then show the dtypes bf16 gives; glassbert.precision)
    on ``threads`` intra-op threads (default: chosen for MODEL, as the command chooses: glassbert.threads)."""
    check_precision(precision)
    set_threads_for(threads, model)
    tok = Tokenizer.from_pretrained(model)
    bert = load_as(model)
    batch = tok(list(texts), padding=True, max_length=max_length)
    echo("TEXT AFTER TOKENIZATION:")
    for i in range(len(texts)):
        echo(" ".join(tok.convert_ids_to_tokens(batch["input_ids"][i])))
    echo("")
    with precision_context(precision, model_device(bert)):
        return trace(bert, batch, values=values, layers=layers, echo=echo)


__all__ = ["trace", "trace_texts", "step_name", "parse_layers"]
