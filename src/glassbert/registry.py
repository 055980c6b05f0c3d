"""The architectures glassbert knows, each declared once: the one table everything else reads.

An :class:`Architecture` names an architecture's config class, its model classes by role, what its
sentence-pair head predicts, the pretraining preset it starts from and its toy demo. The CLI's ``--arch``
choices, pretraining, the demo, ``glassbert params``, loading a model folder by its config.json and exporting
one all read :data:`ARCHITECTURES`; adding an architecture is its model file plus one record here.

    config.json ─▶ model_type ─▶ Architecture ─▶ architectures[0] ─▶ the task class ─▶ from_pretrained
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .albert import (AlbertForMaskedLM, AlbertForPreTraining, AlbertForQuestionAnswering,
                     AlbertForSequenceClassification, AlbertForTokenClassification, AlbertModel)
from .config import AlbertConfig, BertConfig
from .errors import InputError, MissingError
from .heads import (BertForMaskedLM, BertForNextSentencePrediction, BertForPreTraining, BertForQuestionAnswering,
                    BertForSequenceClassification, BertForTokenClassification)
from .model import BertModel
from .pretrained import BertPreTrainedModel, log_load_report
from .modeldir import TOKENIZER_FILES, LoadReport, check_sentence_transformers, load_pretrained, resolve_model_path
from .runfiles import check_target_dir, replace_dir
from .textfiles import read_json_object
from .tokenizer import Tokenizer

# The roles a model class plays; an architecture fills those it has. `load_as(dir, BertForMaskedLM)` on an
# ALBERT folder is the class in the same role of ALBERT's record.
ROLES = ("base", "pretraining", "mlm", "pair", "classifier", "tagger", "span")
# The sentence-pair tasks a pretraining head can learn, and what each predicts.
PAIR_TASKS = {"nsp": "the next sentence", "sop": "sentence order"}


@dataclass(frozen=True)
class DemoSettings:
    """What the toy demo of 'Exploring BERT' (`glassbert demo --arch NAME`) does with this architecture."""

    title: str
    key: str            # the rows' and demo.json's name for the pair label: is_next | in_order
    out: str            # the default run directory
    epochs: int
    seed: int
    lr: float


@dataclass(frozen=True)
class Architecture:
    """One architecture: its config, its classes by role (:data:`ROLES`) and its sentence-pair task."""

    name: str                       # config.json's model_type, and `--arch NAME`
    config_class: type[BertConfig]
    classes: dict[str, type]        # role → class
    pair_task: str                  # what the pair head predicts (PAIR_TASKS): nsp | sop, the prefix of its metrics
    pair_tasks: tuple[str, ...]     # the pair tasks `glassbert pretrain --task` may train it on
    pair_label: str                 # the model's keyword for the pair labels (transformers' argument name)
    pair_names: tuple[str, str]     # class 0, class 1
    default_preset: str             # `glassbert pretrain --arch NAME`'s preset
    demo: DemoSettings

    @property
    def base(self) -> type:
        return self.classes["base"]

    @property
    def pretraining(self) -> type:
        return self.classes["pretraining"]

    @property
    def presets(self) -> tuple[str, ...]:
        return tuple(self.config_class.presets)


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture(
        "bert", BertConfig,
        {"base": BertModel, "pretraining": BertForPreTraining, "mlm": BertForMaskedLM,
         "pair": BertForNextSentencePrediction, "classifier": BertForSequenceClassification,
         "tagger": BertForTokenClassification, "span": BertForQuestionAnswering},
        "nsp", ("nsp", "sop"), "next_sentence_label", ("IsNext", "NotNext"), "mini",
        DemoSettings("Toy BERT of 'Exploring BERT'", "is_next", "runs/demo", 3000, 5, 0.01)),
    Architecture(
        "albert", AlbertConfig,
        {"base": AlbertModel, "pretraining": AlbertForPreTraining, "mlm": AlbertForMaskedLM,
         "classifier": AlbertForSequenceClassification, "tagger": AlbertForTokenClassification,
         "span": AlbertForQuestionAnswering},
        "sop", ("sop",), "sentence_order_label", ("InOrder", "Swapped"), "tiny",
        # 1000 epochs: every masked word and order label is right from about epoch 500 on (loss 0.006 at the end)
        DemoSettings("Toy ALBERT on the pairs of 'Exploring BERT'", "in_order", "runs/demo-albert", 1000, 5, 0.01)),
)}

# `architectures` name in config.json → class, over every architecture
TASK_MODELS: dict[str, type] = {cls.__name__: cls for a in ARCHITECTURES.values() for cls in a.classes.values()}


def architecture(name: str, option: str = "--arch") -> Architecture:
    """The record of ``name``, or an error that lists the ones there are."""
    if name not in ARCHITECTURES:
        raise InputError(f"{option} {name!r}: choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def architecture_of(cls_or_model) -> Architecture:
    """The architecture a model class (or model) belongs to, by its config class."""
    cls = cls_or_model if isinstance(cls_or_model, type) else type(cls_or_model)
    return architecture(cls.config_class.model_type, "model_type")


def role_of(cls: type) -> str:
    """The role (:data:`ROLES`) ``cls`` plays in its architecture."""
    arch = architecture_of(cls)
    for role, known in arch.classes.items():
        if known is cls:
            return role
    raise InputError(f"{cls.__name__} is not one of {arch.name}'s model classes")


def for_model_type(cls: type, model_type: str) -> type:
    """``cls``'s counterpart in the architecture ``model_type``: (BertForMaskedLM, "albert") → AlbertForMaskedLM,
    (AlbertModel, "bert") → BertModel. Code written for one task class serves every architecture."""
    target = architecture(model_type, "model_type")
    role = role_of(cls)
    if role not in target.classes:
        raise InputError(f"{cls.__name__} has no {model_type.upper()} counterpart")
    return target.classes[role]


def _model_dir(path) -> Path:
    directory = resolve_model_path(path)
    if not directory.is_dir():
        raise MissingError(f"{directory}: not a directory (expected config.json + weights)")
    return directory


def load_model(path, default: str = "BertModel") -> BertPreTrainedModel:
    """The model a directory holds, as the class its config.json names in ``architectures``
    (transformers' convention), else ``default``; a name we do not know falls back to ``default`` too,
    or to the bare model of the config's ``model_type`` (an ALBERT's: AlbertModel)."""
    directory = _model_dir(path)
    file = directory / "config.json"
    raw = read_json_object(file) if file.is_file() else {}  # none: from_pretrained's error below says so
    config = BertConfig.from_dict(raw, source=str(file))    # a broken config.json is an error that names it
    names = raw.get("architectures")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else default
    cls = TASK_MODELS.get(name, TASK_MODELS[default])
    if cls.config_class.model_type != config.model_type:
        cls = ARCHITECTURES[config.model_type].base
    return cls.from_pretrained(directory)


def load_as_with_report(path, cls: type = BertModel, **config_overrides) -> tuple[BertPreTrainedModel, LoadReport]:
    """:func:`load_as` without logging: the model and what the checkpoint lacked (a new head) or held beyond it,
    for a job that says so in its own words."""
    directory = _model_dir(path)
    model_cls = for_model_type(cls, BertConfig.load(directory).model_type)
    model, report = load_pretrained(model_cls, directory, **config_overrides)
    model.load_report = report
    return model, report


def load_as(path, cls: type = BertModel, **config_overrides) -> BertPreTrainedModel:
    """``cls`` (a BERT or ALBERT class) from ``path``, as the architecture its config.json names:
    ``load_as(albert_dir, BertForMaskedLM)`` is an AlbertForMaskedLM, ``load_as(dir)`` the bare encoder. What the
    checkpoint lacked or held beyond it is logged, as from_pretrained logs it."""
    model, report = load_as_with_report(path, cls, **config_overrides)
    log_load_report(type(model).__name__, report)
    return model


def export_model(model: str | Path, out: str | Path, *, sentence_transformers: bool = False, pooling: str = "mean",
                 normalize: bool = True, overwrite: bool = False) -> Path:
    """`glassbert export`: MODEL (a directory, a run or an alias) written to ``out`` as a complete model
    directory that transformers loads (its class kept: a fine-tuned classifier stays one), with the
    sentence-transformers layout when ``sentence_transformers``. ``out`` is refused if it holds files,
    unless ``overwrite``; nothing is written before the model has loaded."""
    check_target_dir(out, overwrite=overwrite, reads=(("the model", model),))
    loaded = load_model(model)
    if sentence_transformers:
        check_sentence_transformers(loaded, pooling)
    if Path(out).resolve() == Path(loaded.pretrained_dir).resolve():
        raise InputError(f"--out {out} is MODEL's own directory: choose another directory")
    if any((Path(loaded.pretrained_dir) / name).is_file() for name in TOKENIZER_FILES):
        Tokenizer.from_pretrained(loaded.pretrained_dir)  # files copied as they are: a damaged one is refused here
    return loaded.save_pretrained(replace_dir(out), sentence_transformers=sentence_transformers, pooling=pooling,
                                  normalize=normalize)


__all__ = ["ARCHITECTURES", "Architecture", "DemoSettings", "PAIR_TASKS", "ROLES", "TASK_MODELS", "architecture",
           "architecture_of", "role_of", "for_model_type", "load_model", "load_as", "load_as_with_report",
           "export_model"]
