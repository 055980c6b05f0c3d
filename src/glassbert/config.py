"""BertConfig: one typed, frozen dataclass that reads and writes transformers' config.json keys.

Presets are data, not code: ``BertConfig.preset("mini")`` or ``BertConfig.preset("toy")``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, MissingError
from .textfiles import read_json_object

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "tanh")
ATTENTION_PATHS = ("sdpa", "eager")
CLASSIFIER_POOLING = ("pooler", "cls", "mean")

# name: (layers, hidden, heads, extra overrides). intermediate = 4 × hidden unless given.
PRESETS: dict[str, dict[str, Any]] = {
    # The six-sentence model of "Deep Learning 101: Lesson 31: Exploring BERT" (Muneeb S. Ahmad): hidden 7,
    # 5 heads of size 4, FFN 28.
    "toy": dict(num_hidden_layers=2, hidden_size=7, num_attention_heads=5, attention_head_size=4,
                intermediate_size=28, max_position_embeddings=14, vocab_size=64,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8),
    "medium": dict(num_hidden_layers=8, hidden_size=512, num_attention_heads=8),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12),
    "large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16),
}

# Keys of transformers' BertConfig we accept and ignore (they do not change the math here).
_IGNORED_KEYS = {
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "use_cache",
    "position_embedding_type", "gradient_checkpointing", "classifier_dropout", "is_decoder",
    "add_cross_attention", "_name_or_path", "output_attentions", "output_hidden_states",
    "problem_type", "bos_token_id", "eos_token_id", "tie_word_embeddings", "chunk_size_feed_forward",
    "return_dict", "pruned_heads", "tokenizer_class", "sep_token_id", "decoder_start_token_id",
    "finetuning_task", "task_specific_params", "_attn_implementation_autoset",
}


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    attention_head_size: int | None = None  # None → hidden_size // num_attention_heads
    intermediate_size: int | None = None    # None → 4 × hidden_size
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    attn_implementation: str = "sdpa"       # "sdpa" (fast, unpadded) | "eager" (explicit math)
    # task heads
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    classifier_pooling: str = "pooler"      # how BertForSequenceClassification pools: pooler | cls | mean
    classifier_dropout: float | None = None

    def __post_init__(self) -> None:
        _check_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "config")
        if self.intermediate_size is None:
            object.__setattr__(self, "intermediate_size", 4 * self.hidden_size)
        if self.id2label is not None:
            object.__setattr__(self, "id2label", {int(k): str(v) for k, v in self.id2label.items()})
            object.__setattr__(self, "num_labels", len(self.id2label))
        if self.attention_head_size is None:
            if self.num_attention_heads > 0 and self.hidden_size % self.num_attention_heads:
                raise InputError(
                    f"config: hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                    f"{self.num_attention_heads}; set attention_head_size explicitly")
            if self.num_attention_heads > 0:
                object.__setattr__(self, "attention_head_size", self.hidden_size // self.num_attention_heads)
        self._validate()

    def _validate(self) -> None:
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "attention_head_size", "intermediate_size", "max_position_embeddings",
                    "type_vocab_size", "num_labels")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InputError(f"config: {name} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"config: {name} must be in [0, 1), got {value!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise InputError(f"config: hidden_act {self.hidden_act!r} is not one of {ACTIVATIONS}")
        if self.attn_implementation not in ATTENTION_PATHS:
            raise InputError(f"config: attn_implementation {self.attn_implementation!r} "
                             f"is not one of {ATTENTION_PATHS}")
        if self.classifier_pooling not in CLASSIFIER_POOLING:
            raise InputError(f"config: classifier_pooling {self.classifier_pooling!r} "
                             f"is not one of {CLASSIFIER_POOLING}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise InputError(f"config: pad_token_id {self.pad_token_id} outside the vocabulary "
                             f"(vocab_size {self.vocab_size})")
        if self.layer_norm_eps <= 0:
            raise InputError(f"config: layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.id2label is not None and sorted(self.id2label) != list(range(len(self.id2label))):
            raise InputError(f"config: id2label must number the labels 0 to {len(self.id2label) - 1}, "
                             f"got ids {sorted(self.id2label)}")

    # -- derived ---------------------------------------------------------------------------
    @property
    def all_head_size(self) -> int:
        return self.num_attention_heads * self.attention_head_size

    @property
    def label2id(self) -> dict[str, int] | None:
        return None if self.id2label is None else {v: k for k, v in self.id2label.items()}

    def num_parameters(self, with_pooler: bool = True) -> int:
        """Parameters of the bare BertModel (embeddings + encoder + pooler)."""
        h, a, i = self.hidden_size, self.all_head_size, self.intermediate_size
        emb = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h
        layer = 3 * (h * a + a) + (a * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
        return emb + self.num_hidden_layers * layer + (h * h + h if with_pooler else 0)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BertConfig":
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    # -- transformers' config.json ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": self.initializer_range,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": self.pad_token_id,
            "position_embedding_type": "absolute",
            "classifier_pooling": self.classifier_pooling,
        }
        if self.attention_head_size * self.num_attention_heads != self.hidden_size:
            d["attention_head_size"] = self.attention_head_size
        if self.classifier_dropout is not None:
            d["classifier_dropout"] = self.classifier_dropout
        if self.id2label is not None:
            d["id2label"] = {str(k): v for k, v in self.id2label.items()}
            d["label2id"] = self.label2id
        elif self.num_labels != 2:
            d["num_labels"] = self.num_labels
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "BertConfig":
        """From transformers' config.json keys; errors start with ``source`` (the file's path)."""
        if d.get("model_type", "bert") not in ("bert",):
            raise InputError(f"{source}: model_type {d.get('model_type')!r} is not 'bert'")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise InputError(f"{source}: position_embedding_type "
                             f"{d['position_embedding_type']!r} is not supported (only 'absolute')")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        unknown = []
        for key, value in d.items():
            if key in known:
                kwargs[key] = value
            elif key == "label2id" or key in _IGNORED_KEYS:
                continue
            else:
                unknown.append(key)
        if "classifier_dropout" in d:
            kwargs["classifier_dropout"] = d["classifier_dropout"]
        kwargs.pop("attn_implementation", None)
        if unknown:
            logging.getLogger("glassbert").warning("%s: ignoring unknown config keys %s", source, sorted(unknown))
        _check_types(kwargs, source)
        try:
            return cls(**kwargs)
        except InputError as e:  # the checks in __post_init__ say "config: …"; say which file
            raise InputError(f"{source}: {str(e).removeprefix('config: ')}") from None

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "BertConfig":
        path = Path(directory)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise MissingError(f"no config.json in {Path(directory)}: not a model directory")
        return cls.from_dict(read_json_object(path), source=str(path))


# ─── field types: a config.json value of the wrong JSON type is a one-line error ──────────────
_EXPECTED = {"int": "an integer", "float": "a number", "str": "a string",
             "dict[int, str]": "an object of label ids to names"}


def _json_type(value: object) -> str:
    """What a value is, in JSON's words."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                       (Mapping, "an object"), (list, "a list")):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _fits(kind: str, value: object) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, Mapping) and all(
        ((isinstance(k, int) and not isinstance(k, bool)) or (isinstance(k, str) and k.isascii() and k.isdigit()))
        and isinstance(v, str) for k, v in value.items())


def _check_types(values: Mapping[str, Any], source: str) -> None:
    """Every known field holds its annotated type (int not bool; float any finite number; None only
    where the field allows it): else InputError naming ``source``, the key, the value and the type."""
    for name, value in values.items():
        annotation = _ANNOTATIONS.get(name)
        if annotation is None:
            continue
        kind, _, rest = annotation.partition(" | ")
        if value is None and rest == "None":
            continue
        if not _fits(kind, value):
            shown = json.dumps(value, default=repr)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            what = "" if value is None else f" ({_json_type(value)})"
            expected = _EXPECTED[kind] + (" or null" if rest == "None" else "")
            raise InputError(f"{source}: key {name!r} is {shown}{what}, expected {expected}")


_ANNOTATIONS = {f.name: str(f.type) for f in dataclasses.fields(BertConfig)}


__all__ = ["BertConfig", "PRESETS"]
