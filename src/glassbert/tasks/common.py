"""What the fine-tuning tasks share: encoded datasets, the task model from a model dir, pooling,
freezing, and batched inference (length-sorted, through :mod:`glassbert.batching`)."""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import tokenizers
import torch
from torch import nn
from torch.utils.data import Dataset

from ..batching import map_sorted
from ..modeldir import read_state_dict, resolve_model_path
from ..config import CLASSIFIER_POOLING, BertConfig
from ..errors import InputError, MissingError
from ..registry import TASK_MODELS, load_as, load_as_with_report
from ..textfiles import read_json_object
from ..tokenizer import Tokenizer, pad_rows
from ..train import Evaluation  # what every task's evaluate returns: metrics, and details["text"] to print
from . import FREEZE_MODES, TASK_MODULES, task_module

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
TASK_FILE = "glassbert_task.json"  # in a fine-tuned model dir: the task and how its inputs were read
EVAL_FILE = "eval.json"           # the final evaluation and the run's summary


# ─── files and tokenizers ───────────────────────────────────────────────────────────────────
def existing_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path; MissingError when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: no such {what} file")
    return path


@contextlib.contextmanager
def about(path: Path) -> Iterator[None]:
    """Prefix an InputError raised inside with ``path`` (for errors that do not name it yet)."""
    try:
        yield
    except ValueError as error:
        message = str(error)
        if str(path) in message:
            raise
        raise InputError(f"{path}: {message}") from None


def backend_of(tokenizer: Any) -> tokenizers.Tokenizer:
    """The ``tokenizers.Tokenizer`` behind a glassbert Tokenizer (or the object itself)."""
    backend = getattr(tokenizer, "backend", tokenizer)
    if not isinstance(backend, tokenizers.Tokenizer):
        raise TypeError(f"expected a glassbert Tokenizer or a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
    return backend


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's [PAD] id (``pad_token_id``, else looked up in the vocabulary)."""
    value = getattr(tokenizer, "pad_token_id", None)
    if value is None:
        value = backend_of(tokenizer).token_to_id("[PAD]")
    if value is None:
        raise InputError("the tokenizer has no [PAD] token")
    return int(value)


def truncating_copy(tokenizer: Any, max_length: int | None, strategy: str = "longest_first") -> tokenizers.Tokenizer:
    """A copy of the backend that truncates to ``max_length`` (None: never) and does not pad (the original
    stays untouched)."""
    if max_length is not None and max_length < 3:
        raise InputError(f"max_length must be at least 3 ([CLS] x [SEP]), got {max_length}")
    copy = tokenizers.Tokenizer.from_str(backend_of(tokenizer).to_str())
    copy.no_padding()
    if max_length is None:
        copy.no_truncation()
    else:
        copy.enable_truncation(max_length, strategy=strategy)
    return copy


def fine_tuned_run(model: str | Path, task: str, model_class: type | None = None) -> tuple[Path, dict[str, Any]]:
    """(model directory, its glassbert_task.json settings) of a model fine-tuned for ``task``.

    A run of another task is refused, naming the command that applies it. A directory without
    glassbert_task.json (e.g. a transformers model) gives no settings; with ``model_class``, its
    config.json must name a class with the same heads (that class, or its ALBERT counterpart).
    """
    directory = resolve_model_path(model)
    task_file = directory / TASK_FILE
    if task_file.is_file():
        info = read_json_object(task_file)
        found = info.get("task")
        if found != task:
            hint = f": `{task_module(found).APPLY_COMMAND}` applies it" if found in TASK_MODULES else ""
            raise InputError(f"{directory} was fine-tuned for task {found!r}, not {task!r}{hint}")
        return directory, info
    if model_class is not None:
        names = read_json_object(directory / "config.json").get("architectures") or []
        if not any(isinstance(n, str) and n in TASK_MODELS and TASK_MODELS[n].heads == model_class.heads
                   for n in names):
            raise InputError(f"{directory} is not fine-tuned for task {task!r}: it has no {TASK_FILE} and its "
                             f"config.json names {names or 'no architectures'}, not {model_class.__name__}; "
                             f"fine-tune it first: glassbert finetune {model} --task {task} …")
    return directory, {}


@dataclass(frozen=True)
class FineTuned:
    """A fine-tuned run loaded once (:func:`load_fine_tuned`): what `classify`, `tag` and `answer` apply, and
    what a glassbert.pipeline keeps between calls."""

    task: str                  # the fine-tuning task it was loaded for (classify | token | qa)
    directory: Path
    info: dict[str, Any]       # its glassbert_task.json settings (empty for a model without one)
    config: BertConfig
    tokenizer: Tokenizer
    model: nn.Module           # in eval mode, on ``device``
    device: str


def load_fine_tuned(model: str | Path | FineTuned, task: str, model_class: type, device: str | torch.device = "cpu",
                    check: Callable[[BertConfig, Path], Any] | None = None, require_class: bool = True) -> FineTuned:
    """The run ``model`` (a directory or an alias; a FineTuned is returned as it is) loaded for ``task`` as
    ``model_class`` (an ALBERT's counterpart on an ALBERT) on ``device``. ``check(config, directory)`` runs
    before the weights are read (a model without the task's head is refused in one line, not loaded);
    ``require_class``: a model without glassbert_task.json must name ``model_class`` (:func:`fine_tuned_run`)."""
    if isinstance(model, FineTuned):
        if model.task != task:
            raise InputError(f"{model.directory} was loaded for task {model.task!r}, not {task!r}")
        return model
    directory, info = fine_tuned_run(model, task, model_class if require_class else None)
    config = BertConfig.load(directory)
    if check is not None:
        check(config, directory)
    net = load_as(directory, model_class).to(device).eval()  # (AlbertFor… on an ALBERT)
    return FineTuned(task, directory, info, config, Tokenizer.from_pretrained(directory), net, str(device))


# ─── the task protocol ──────────────────────────────────────────────────────────────────────
class Task(Protocol):
    """What a fine-tuning task module declares (classification.py, tagging.py, qa.py); tasks/__init__'s
    TASK_MODULES names them, and the `finetune` job (job.py) calls only these, with no branch per task."""

    NAME: str                      # `--task NAME`
    MODEL: type                    # its BERT task class; an ALBERT gets the class of the same role
    KEEP_BEST: str                 # the eval metric the best weights are kept by (higher is better)
    DEFAULT_MAX_LENGTH: int
    APPLY_COMMAND: str             # the command that applies a fine-tuned run
    RECORD_KEYS: tuple[str, ...]   # item fields recorded beside MODEL_INPUTS by --record (a gold label)
    TAKES_POOLING: bool            # whether its head pools a sentence (--pooling)

    def prepare(self, args: Any, tok: Tokenizer, max_length: int) -> "TaskData":
        """Read (errors name file and line) and encode ``args.train`` and ``args.eval``."""

    def choose_pooling(self, args: Any, model_dir: Path, freeze: str) -> tuple[str | None, str]:
        """(the head's pooling, why), or :data:`NO_POOLING`."""

    def run_info(self, args: Any) -> dict[str, Any]:
        """What glassbert_task.json records of how this task read its inputs, for the apply command."""

    def eval_record(self, final: Any, out: Path, labels: list[str] | None, step: int | None) -> dict[str, Any]:
        """What eval.json adds for this task (and any figure it draws into ``out``)."""

    def hint(self, final: Any, labels: list[str] | None, lr: float, trainable: int) -> str | None:
        """Advice printed after training when the result shows a known failure, or None."""


NO_POOLING: tuple[None, str] = (None, "")  # choose_pooling of a task whose head pools nothing


# ─── datasets and dynamic padding ───────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Collator:
    """``collate(items, generator=None)`` → :func:`glassbert.tokenizer.pad_rows` with the pad id bound
    (the Trainer passes a generator)."""

    pad_id: int

    def __call__(self, items: Sequence[Mapping[str, Any]], generator: torch.Generator | None = None
                 ) -> dict[str, torch.Tensor]:
        return pad_rows(items, self.pad_id)


class EncodedDataset(Dataset):
    """Encoded, un-padded examples; ``dataset[i]`` is a dict of LongTensors ready for the model."""

    def __init__(self, items: list[dict[str, list[int] | int]], pad_id: int) -> None:
        self.items = items
        self.pad_id = pad_id
        self.collate = Collator(pad_id)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: torch.tensor(value, dtype=torch.long) for key, value in self.items[index].items()}

    def unknown_share(self, tok: Tokenizer) -> float:
        """The share of the word pieces (special tokens left out) that the vocabulary could only call [UNK]."""
        counts = Counter(i for item in self.items for i in item["input_ids"])
        pieces = sum(n for i, n in counts.items() if i not in tok.special_ids or i == tok.unk_token_id)
        return counts[tok.unk_token_id] / pieces if pieces else 0.0

    @property
    def lengths(self) -> list[int]:
        """Token count of every item (for length-bucketed batching)."""
        return [len(item["input_ids"]) for item in self.items]  # type: ignore[arg-type]


@dataclass
class TaskData:
    """A task's training set, its labels and its evaluation (``evaluate(model, progress)``); ``eval_set``
    (the encoded eval file) is where ``--record`` picks its samples."""

    train: EncodedDataset
    id2label: dict[int, str] | None
    evaluate: Callable[[nn.Module, bool], Evaluation] | None
    train_examples: int
    eval_examples: int = 0
    eval_set: EncodedDataset | None = None


# ─── batched inference ──────────────────────────────────────────────────────────────────────
@torch.no_grad()
def forward_sorted(model: nn.Module, items: Sequence[Mapping[str, Any]], pad_id: int, batch_size: int,
                   read: Callable[[Any, int, int], Any], progress: bool = False, desc: str = "eval") -> list:
    """``read(output, row, length)`` for every item, in the items' order.

    Items run longest first in batches padded to their longest (:func:`glassbert.batching.map_sorted`):
    little padding, and the model's fast path skips what is left. The model is put in eval mode and
    left as it was.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(item["input_ids"]) for item in items]

    def run(rows: list[int]) -> list[Any]:
        batch = pad_rows([{k: items[i][k] for k in MODEL_INPUTS} for i in rows], pad_id)
        output = model(**{k: v.to(device) for k, v in batch.items()})
        return [read(output, r, lengths[i]) for r, i in enumerate(rows)]

    try:
        return map_sorted(lengths, batch_size, run, progress=progress, desc=desc, leave=False)
    finally:
        model.train(was_training)


# ─── the task model: build, pool, freeze ────────────────────────────────────────────────────
def load_task_model(model_class: type[nn.Module], model_dir: str | Path, id2label: Mapping[int, str] | None = None,
                    pooling: str | None = None, seed: int = 0) -> nn.Module:
    """``model_class`` on a pretrained body (its ALBERT counterpart on an ALBERT: see registry.load_as); the new
    head is initialized from ``seed``."""
    overrides: dict[str, Any] = {}
    if id2label is not None:
        overrides["id2label"] = dict(id2label)
    if pooling is not None:
        overrides["classifier_pooling"] = pooling
    torch.manual_seed(seed)
    # the report's "newly initialized: classifier.*" is the point of fine-tuning: not logged
    return load_as_with_report(model_dir, model_class, **overrides)[0]


def _untrained_pooler(model_dir: Path) -> str | None:
    """Why the checkpoint's pooler cannot be used as a frozen sentence vector, or None.

    A sentence-transformers checkpoint (modules.json) was trained through its own pooling (mean for
    MiniLM), never through the pooler; a checkpoint without pooler weights has a random one.
    """
    if (model_dir / "modules.json").is_file():
        return "it is a sentence-transformers checkpoint, trained through its own pooling"
    try:
        state, _ = read_state_dict(model_dir)
    except (FileNotFoundError, ValueError):
        return None
    if not any(key.endswith(("pooler.dense.weight", "albert.pooler.weight")) for key in state):  # BERT's, ALBERT's
        return "the checkpoint has no pooler weights"
    return None


def choose_pooling(model_dir: Path, freeze: str, pooling: str | None) -> tuple[str, str]:
    """(classifier_pooling, reason). An explicit ``pooling`` wins; with the encoder frozen on a
    checkpoint whose pooler was never trained, mean pooling (the pooler would give a fixed, useless
    vector); else the checkpoint's own setting (transformers' pooler by default)."""
    if pooling is not None:
        if pooling not in CLASSIFIER_POOLING:
            raise InputError(f"pooling {pooling!r} is not one of {CLASSIFIER_POOLING}")
        return pooling, _with_transformers_note(pooling, "asked for")
    configured = BertConfig.load(model_dir).classifier_pooling
    why = _untrained_pooler(model_dir) if freeze == "encoder" and configured == "pooler" else None
    if why:
        return "mean", _with_transformers_note("mean", f"head-only training and {why}")
    return configured, _with_transformers_note(configured, "the checkpoint's setting")


def _with_transformers_note(pooling: str, reason: str) -> str:
    """``reason``, and for a pooling transformers cannot do, that the saved head is not one it loads."""
    if pooling == "pooler":
        return reason
    return (f"{reason}; transformers pools with the pooler only, so it will load this classifier with a new, "
            f"untrained head: --pooling pooler makes one it loads as is")


def parse_freeze(freeze: str | int | None, num_layers: int, config: BertConfig | None = None) -> str:
    """'none' | 'embeddings' | 'encoder' | 'N' (embeddings + the first N of ``num_layers`` layers). With the
    model's ``config``, an N that an ALBERT's shared layers cannot freeze alone is refused here, before the work."""
    value = "none" if freeze is None else str(freeze).strip().lower()
    if value in FREEZE_MODES:
        return value
    if value.isdigit():
        n = int(value)
        if not 1 <= n <= num_layers:
            raise InputError(f"freeze={value}: the model has {num_layers} layers; freeze 1 to {num_layers} "
                             f"of them, or use 'embeddings' / 'encoder'")
        if config is not None:
            _layer_prefixes(config, "", n)
        return str(n)
    raise InputError(f"freeze={freeze!r}: expected {', '.join(FREEZE_MODES)}, or a number of layers")


def freeze_parameters(model: nn.Module, freeze: str | int | None) -> list[str]:
    """Set requires_grad=False on the frozen part of the backbone (``model.bert`` or ``model.albert``);
    returns the frozen names.

    embeddings: the embedding tables and their LayerNorm (ALBERT: and the E → H projection, the other half
    of its factorized embedding); encoder: the whole backbone (embeddings, every layer, the pooler), so only
    the head trains; N: the embeddings and layers 0..N-1 (ALBERT: the layer groups they run, refused when a
    layer after N runs the same weights).
    """
    value = parse_freeze(freeze, model.config.num_hidden_layers)
    if value == "none":
        return []
    base = f"{model.base_model_prefix}."                 # "bert." | "albert."
    embeddings: tuple[str, ...] = (f"{base}embeddings.",)
    if model.config.model_type == "albert":
        embeddings += (f"{base}encoder.embedding_hidden_mapping_in.",)
    if value == "encoder":
        prefixes: tuple[str, ...] = (base,)
    elif value == "embeddings":
        prefixes = embeddings
    else:
        prefixes = embeddings + _layer_prefixes(model.config, base, int(value))
    frozen = []
    for name, parameter in model.named_parameters():
        if name.startswith(prefixes):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def _layer_prefixes(config, base: str, n: int) -> tuple[str, ...]:
    """The parameter prefixes of layers 0..n-1: BERT's own layers; ALBERT's layer groups, whose weights
    may run in other layers too (then freezing them would freeze those as well: refused)."""
    if config.model_type != "albert":
        return tuple(f"{base}encoder.layer.{i}." for i in range(n))
    groups = sorted({config.group_of(i) for i in range(n)})
    later = sorted(i + 1 for i in range(n, config.num_hidden_layers) if config.group_of(i) in groups)
    if later:
        first = "layer 1" if n == 1 else f"layers 1–{n}"
        raise InputError(f"freeze={n}: this ALBERT's layers share weights (the weights of {first} also run in "
                         f"layer{'s' if len(later) > 1 else ''} {', '.join(map(str, later[:6]))}"
                         f"{' …' if len(later) > 6 else ''}), so {first} cannot be frozen alone; "
                         "use --freeze embeddings or --freeze encoder")
    return tuple(f"{base}encoder.albert_layer_groups.{g}." for g in groups)


__all__ = ["MODEL_INPUTS", "TASK_FILE", "EVAL_FILE", "Task", "NO_POOLING", "fine_tuned_run", "FineTuned", "load_fine_tuned", "existing_file", "about", "backend_of", "pad_id_of", "truncating_copy", "Collator",
           "EncodedDataset", "Evaluation", "TaskData", "forward_sorted", "load_task_model", "choose_pooling", "parse_freeze",
           "freeze_parameters"]
