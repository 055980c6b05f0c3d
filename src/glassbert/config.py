"""BertConfig and AlbertConfig: typed, frozen dataclasses that read and write transformers' config.json keys.

Presets are data, not code: ``BertConfig.preset("mini")``, ``AlbertConfig.preset("base")``.
``BertConfig.load(dir)`` returns the config class that the file's ``model_type`` names (bert | albert).
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

# ALBERT: the factorized embedding width E, and how many layer groups hold weights (transformers' AlbertConfig
# defaults: gelu_new, no dropout, vocab 30000). base and large are the published ALBERT v2 shapes.
ALBERT_PRESETS: dict[str, dict[str, Any]] = {
    # E smaller than H, and three layers that run one shared set of weights.
    "toy": dict(num_hidden_layers=3, embedding_size=4, hidden_size=8, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=14, vocab_size=64),
    "tiny": dict(num_hidden_layers=4, embedding_size=64, hidden_size=128, num_attention_heads=2,
                 intermediate_size=512),
    "base": dict(num_hidden_layers=12, embedding_size=128, hidden_size=768, num_attention_heads=12,
                 intermediate_size=3072),
    "large": dict(num_hidden_layers=24, embedding_size=128, hidden_size=1024, num_attention_heads=16,
                  intermediate_size=4096),
}

# Keys of transformers' BertConfig we accept and ignore (they do not change the math here).
_IGNORED_KEYS = {
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "use_cache",
    "position_embedding_type", "gradient_checkpointing", "classifier_dropout", "is_decoder",
    "add_cross_attention", "_name_or_path", "output_attentions", "output_hidden_states",
    "problem_type", "bos_token_id", "eos_token_id", "tie_word_embeddings", "chunk_size_feed_forward",
    "return_dict", "pruned_heads", "tokenizer_class", "sep_token_id", "decoder_start_token_id",
    "finetuning_task", "task_specific_params", "_attn_implementation_autoset", "is_encoder_decoder",
}
# … and of published ALBERT config.json files (TF-era options that transformers ignores too).
_IGNORED_ALBERT_KEYS = {"down_scale_factor", "gap_size", "net_structure_type", "num_memory_blocks", "layers_to_keep"}


@dataclass(frozen=True)
class BertConfig:
    # class constants, not fields: config.json's model_type, the presets, and config.json keys this class
    # ignores or reads under another name
    model_type = "bert"
    presets = PRESETS
    _ignored_keys = frozenset()
    _renamed_keys = {}

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
        _check_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "config", type(self))
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
    def embedding_size(self) -> int:
        """E, the width of the embedding tables: H in BERT (ALBERT factorizes it, E < H)."""
        return self.hidden_size

    @property
    def label2id(self) -> dict[str, int] | None:
        return None if self.id2label is None else {v: k for k, v in self.id2label.items()}

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BertConfig":
        if name not in cls.presets:
            raise InputError(f"unknown preset {name!r}; choose one of {', '.join(cls.presets)}")
        return cls(**{**cls.presets[name], **overrides})

    def replace(self, **changes: Any) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    # -- transformers' config.json ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "architectures": ["BertModel"],
            "model_type": self.model_type,  # a variant's own (config.CONFIGS)
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
        """From transformers' config.json keys; errors start with ``source`` (the file's path).
        ``BertConfig.from_dict`` returns the class ``model_type`` names (an ALBERT's is an AlbertConfig)."""
        model_type = d.get("model_type", cls.model_type)
        if cls is BertConfig and model_type in CONFIGS and CONFIGS[model_type] is not cls:
            return CONFIGS[model_type].from_dict(d, source)
        if model_type != cls.model_type:
            raise InputError(f"{source}: model_type {model_type!r} is not {cls.model_type!r}"
                             + (f" or {' or '.join(repr(t) for t in CONFIGS if t != cls.model_type)}"
                                if cls is BertConfig else ""))
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise InputError(f"{source}: position_embedding_type "
                             f"{d['position_embedding_type']!r} is not supported (only 'absolute')")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        unknown = []
        for key, value in d.items():
            if key in known:
                kwargs[key] = value
            elif key == "label2id" or key in _IGNORED_KEYS or key in cls._ignored_keys:
                continue
            elif key in cls._renamed_keys:
                kwargs[cls._renamed_keys[key]] = value
            else:
                unknown.append(key)
        kwargs.pop("attn_implementation", None)
        if unknown:
            logging.getLogger("glassbert").warning("%s: ignoring unknown config keys %s", source, sorted(unknown))
        _check_types(kwargs, source, cls)
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



@dataclass(frozen=True)
class AlbertConfig(BertConfig):
    """ALBERT (Lan et al. 2019): BERT with a factorized embedding (a V × E table, then E → H) and layers that
    share weights: ``num_hidden_groups`` sets of ``inner_group_num`` layers, layer i running group
    ⌊i · groups / L⌋. Defaults and config.json keys are transformers' AlbertConfig's."""

    model_type = "albert"
    presets = ALBERT_PRESETS
    _ignored_keys = frozenset(_IGNORED_ALBERT_KEYS)
    _renamed_keys = {"classifier_dropout_prob": "classifier_dropout"}

    vocab_size: int = 30000
    hidden_size: int = 4096
    num_attention_heads: int = 64
    intermediate_size: int | None = 16384
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout: float | None = 0.1  # config.json: classifier_dropout_prob
    embedding_size: int = 128
    num_hidden_groups: int = 1
    inner_group_num: int = 1

    def _validate(self) -> None:
        super()._validate()
        for name in ("embedding_size", "num_hidden_groups", "inner_group_num"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InputError(f"config: {name} must be a positive integer, got {value!r}")
        if self.num_hidden_groups > self.num_hidden_layers:
            raise InputError(f"config: num_hidden_groups {self.num_hidden_groups} is more than num_hidden_layers "
                             f"{self.num_hidden_layers}: a group no layer runs")
        if self.all_head_size != self.hidden_size:
            raise InputError(f"config: ALBERT's {self.num_attention_heads} attention heads split hidden_size "
                             f"{self.hidden_size} evenly (transformers' AlbertConfig has no attention_head_size); "
                             f"drop attention_head_size {self.attention_head_size}")

    def group_of(self, layer: int) -> int:
        """The layer group whose weights layer ``layer`` (0-based) runs: ⌊layer · groups / L⌋, as transformers."""
        return int(layer / (self.num_hidden_layers / self.num_hidden_groups))

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("attention_head_size", None)
        d.pop("classifier_dropout", None)
        classifier_dropout = self.classifier_dropout
        d.update(architectures=["AlbertModel"], model_type="albert", embedding_size=self.embedding_size,
                 num_hidden_groups=self.num_hidden_groups, inner_group_num=self.inner_group_num,
                 classifier_dropout_prob=self.hidden_dropout_prob if classifier_dropout is None else classifier_dropout)
        return d


CONFIGS = {c.model_type: c for c in (BertConfig, AlbertConfig)}  # config.json's model_type → class
ARCH_NAMES = tuple(CONFIGS)  # the architectures (`--arch` choices); glassbert.registry has one record for each

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


def _check_types(values: Mapping[str, Any], source: str, cls: type) -> None:
    """Every known field of ``cls`` holds its annotated type (int not bool; float any finite number; None only
    where the field allows it): else InputError naming ``source``, the key, the value and the type."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for name, value in values.items():
        annotation = annotations.get(name)
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


__all__ = ["BertConfig", "AlbertConfig", "PRESETS", "ALBERT_PRESETS", "CONFIGS"]
