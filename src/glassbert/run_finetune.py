"""Fine-tune a BERT on a task, and classify texts with the result: what `glassbert finetune` and
`glassbert classify` run.

    files ─read (errors name file and line)─▶ encode (finetune.py) ─▶ task model from_pretrained
          ─▶ freeze ─▶ Trainer (train.py): an evaluation every epoch, the best one kept, early stop
          ─▶ out/ : config.json (+ id2label) · model.safetensors · tokenizer files   (transformers loads it)
                    eval.json · glassbert_task.json · metrics.jsonl/png · confusion.png · checkpoint/ · best/

Three tasks:
- ``classify``: CSV/TSV/JSONL with a text column (and optionally a second text column for pairs)
  and a label column; accuracy, macro-F1 and a confusion matrix each epoch.
- ``token``: CoNLL (``token tag`` or ``token POS chunk tag`` lines); BIO tags on each word's first
  word piece; entity-level precision, recall and F1.
- ``qa``: SQuAD v1.1 JSON; question + context windows with a document stride; best-span decoding;
  exact match and F1 as the official SQuAD script.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import finetune as ft
from . import metrics as M
from .checkpoint import read_state_dict, resolve_model_path
from .runfiles import atomic_write_text
from .config import CLASSIFIER_POOLING, BertConfig
from .heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from .tokenizer import Tokenizer
from .train import BEST_DIR, Callback, TrainConfig, Trainer

TASKS = {
    "classify": BertForSequenceClassification,
    "token": BertForTokenClassification,
    "qa": BertForQuestionAnswering,
}
KEEP_BEST = {"classify": "accuracy", "token": "f1", "qa": "exact_match"}
DEFAULT_MAX_LENGTH = {"classify": 128, "token": 128, "qa": 384}
TASK_FILE = "glassbert_task.json"
EVAL_FILE = "eval.json"
CONFUSION_FILE = "confusion.png"
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


# ─── reading task files: every error names the file (full path) and the line ────────────────
@contextlib.contextmanager
def _about(path: Path) -> Iterator[None]:
    """Re-raise a reader's ValueError so that it starts with the file's full path."""
    try:
        yield
    except ValueError as error:
        message = str(error)
        if message.startswith(path.name) and not message.startswith(str(path)):
            message = str(path) + message[len(path.name):]
        elif str(path) not in message:
            message = f"{path}: {message}"
        raise ValueError(message) from None


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    return path


def read_classification_file(path: str | Path, text_column: str, label_column: str,
                             text_pair_column: str | None = None,
                             labels: Sequence[str] | None = None) -> ft.ClassificationData:
    """A CSV/TSV/JSONL classification file; ``labels`` (the training labels) rejects unknown ones."""
    path = _existing_file(path, "data")
    with _about(path):
        return ft.read_classification(path, text_column, label_column, text_pair_column, labels)


def _conll_token_lines(path: Path) -> list[list[int]]:
    """Line number of every token, sentence by sentence (the same splitting as read_conll)."""
    sentences: list[list[int]] = []
    current: list[int] = []
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if current:
                    sentences.append(current)
                    current = []
                continue
            current.append(line_no)
    if current:
        sentences.append(current)
    return sentences


def read_conll_file(path: str | Path, tags: Sequence[str] | None = None) -> list[tuple[list[str], list[str]]]:
    """CoNLL sentences; every tag must be ``O`` or ``B-``/``I-`` + type and, when ``tags`` (the
    training tags) is given, one of them."""
    path = _existing_file(path, "CoNLL")
    with _about(path):
        sentences = ft.read_conll(path)
    known = set(tags) if tags is not None else None
    for (_, sentence_tags), lines in zip(sentences, _conll_token_lines(path)):
        for tag, line in zip(sentence_tags, lines):
            if tag != "O" and not re.fullmatch(r"[BI]-\S+", tag):
                raise ValueError(f"{path} line {line}: tag {tag!r} is not BIO (expected O, B-TYPE or I-TYPE)")
            if known is not None and tag not in known:
                raise ValueError(f"{path} line {line}: unknown tag {tag!r}; the training file has "
                                 f"{sorted(known)}")
    return sentences


def read_squad_file(path: str | Path) -> list[ft.SquadExample]:
    """SQuAD v1.1 examples; an answer not found in its context is reported with the question's line."""
    path = _existing_file(path, "SQuAD")
    try:
        with _about(path):
            return ft.read_squad(path)
    except ValueError as error:
        message = str(error)
        found = re.search(r"question id (['\"])(.*?)\1", message)
        if found:
            text = path.read_text(encoding="utf-8-sig")
            at = re.search(r'"id"\s*:\s*' + re.escape(json.dumps(found.group(2))), text)
            if at:
                line = text.count("\n", 0, at.start()) + 1
                message = message.replace(f"{path} ", f"{path} line {line}: ", 1)
        raise ValueError(message) from None


# ─── the model: build, pool, freeze ─────────────────────────────────────────────────────────
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
    if not any(key.endswith("pooler.dense.weight") for key in state):
        return "the checkpoint has no pooler weights"
    return None


def choose_pooling(model_dir: Path, freeze: str, pooling: str | None) -> tuple[str, str]:
    """(classifier_pooling, reason). An explicit ``pooling`` wins; with the encoder frozen on a
    checkpoint whose pooler was never trained, mean pooling (the pooler would give a fixed, useless
    vector); else the checkpoint's own setting (transformers' pooler by default)."""
    if pooling is not None:
        if pooling not in CLASSIFIER_POOLING:
            raise ValueError(f"pooling {pooling!r} is not one of {CLASSIFIER_POOLING}")
        return pooling, "asked for"
    configured = BertConfig.load(model_dir).classifier_pooling
    why = _untrained_pooler(model_dir) if freeze == "encoder" and configured == "pooler" else None
    if why:
        return "mean", f"head-only training and {why}"
    return configured, "the checkpoint's setting"


def build_task_model(task: str, model_dir: str | Path, id2label: Mapping[int, str] | None = None,
                     pooling: str | None = None, seed: int = 0) -> nn.Module:
    """The task model on a pretrained body; the new head is initialized from ``seed``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    overrides: dict[str, Any] = {}
    if id2label is not None:
        overrides["id2label"] = dict(id2label)
    if pooling is not None:
        overrides["classifier_pooling"] = pooling
    torch.manual_seed(seed)
    log = logging.getLogger("glassbert")
    level = log.level
    log.setLevel(logging.ERROR)  # "newly initialized: classifier.*" is the point of fine-tuning
    try:
        return TASKS[task].from_pretrained(model_dir, **overrides)
    finally:
        log.setLevel(level)


def parse_freeze(freeze: str | int | None, num_layers: int) -> str:
    """'none' | 'embeddings' | 'encoder' | 'N' (embeddings + the first N of ``num_layers`` layers)."""
    value = "none" if freeze is None else str(freeze).strip().lower()
    if value in ("none", "embeddings", "encoder"):
        return value
    if value.isdigit():
        n = int(value)
        if not 1 <= n <= num_layers:
            raise ValueError(f"freeze={value}: the model has {num_layers} layers; freeze 1 to {num_layers} "
                             f"of them, or use 'embeddings' / 'encoder'")
        return str(n)
    raise ValueError(f"freeze={freeze!r}: expected none, embeddings, encoder, or a number of layers")


def freeze_parameters(model: nn.Module, freeze: str | int | None) -> list[str]:
    """Set requires_grad=False on the frozen part of ``model.bert``; returns the frozen names.

    embeddings: the embedding tables and their LayerNorm; encoder: all of BERT (embeddings,
    every layer, the pooler), so only the head trains; N: the embeddings and layers 0..N-1.
    """
    value = parse_freeze(freeze, model.config.num_hidden_layers)
    if value == "none":
        return []
    if value == "encoder":
        prefixes: tuple[str, ...] = ("bert.",)
    elif value == "embeddings":
        prefixes = ("bert.embeddings.",)
    else:
        prefixes = ("bert.embeddings.", *(f"bert.encoder.layer.{i}." for i in range(int(value))))
    frozen = []
    for name, parameter in model.named_parameters():
        if name.startswith(prefixes):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


# ─── batched inference (length-sorted, order restored) ──────────────────────────────────────
def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def forward_sorted(model: nn.Module, items: Sequence[Mapping[str, Any]], pad_id: int, batch_size: int,
                   read: Callable[[Any, int, int], Any], progress: bool = False, desc: str = "eval") -> list:
    """``read(output, row, length)`` for every item, in the items' order.

    Items are run longest first in batches padded to their longest (little padding, and the
    model's fast path skips what is left). The model is put in eval mode and left as it was.
    """
    order = sorted(range(len(items)), key=lambda i: -len(items[i]["input_ids"]))
    results: list[Any] = [None] * len(items)
    was_training = model.training
    model.eval()
    device = _device_of(model)
    try:
        with tqdm(total=len(items), desc=desc, disable=not progress, leave=False, dynamic_ncols=True) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = ft.pad_collate([{k: items[i][k] for k in MODEL_INPUTS} for i in rows], pad_id)
                output = model(**{k: v.to(device) for k, v in batch.items()})
                for r, i in enumerate(rows):
                    results[i] = read(output, r, len(items[i]["input_ids"]))
                bar.update(len(rows))
    finally:
        model.train(was_training)
    return results


def _logits(output: Any, row: int, length: int) -> np.ndarray:
    return output.logits[row].float().cpu().numpy()


def _token_logits(output: Any, row: int, length: int) -> np.ndarray:
    return output.logits[row, :length].float().cpu().numpy()


def _span_logits(output: Any, row: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    return (output.start_logits[row, :length].float().cpu().numpy(),
            output.end_logits[row, :length].float().cpu().numpy())


# ─── evaluation per task ────────────────────────────────────────────────────────────────────
@dataclass
class Evaluation:
    """Scalar metrics (what the Trainer logs) and the details behind them."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # a printable report


def evaluate_classification(model: nn.Module, dataset: ft.EncodedDataset, label_names: Sequence[str],
                            batch_size: int = 64, progress: bool = False) -> Evaluation:
    """Accuracy, macro-F1, mean loss and the confusion matrix of ``model`` on ``dataset``."""
    items = [dataset[i] for i in range(len(dataset))]
    logits = np.stack(forward_sorted(model, items, dataset.pad_id, batch_size, _logits, progress))
    gold = np.array([int(item["labels"]) for item in items])
    loss = float(F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(gold)))
    report = M.classification_report(gold, logits.argmax(-1), label_names=list(label_names))
    return Evaluation(
        {"accuracy": report.accuracy, "macro_f1": report.macro_f1, "loss": loss},
        {"report": report.to_dict(), "confusion": report.confusion},
        f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}  loss {loss:.4f}\n"
        + format_confusion(report.confusion, list(label_names)),
    )


def format_confusion(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """The confusion matrix as text: rows gold, columns predicted."""
    width = max(7, *(len(str(x)) + 1 for x in labels), len(str(int(matrix.max(initial=0)))) + 2)
    lines = ["confusion matrix (rows: gold, columns: predicted)",
             " " * width + "".join(f"{label:>{width}}" for label in labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:>{width}}" + "".join(f"{int(n):>{width}}" for n in row))
    return "\n".join(lines)


def evaluate_tokens(model: nn.Module, dataset: ft.EncodedDataset, id2label: Mapping[int, str],
                    batch_size: int = 64, progress: bool = False) -> Evaluation:
    """Entity-level precision/recall/F1 from the first word piece of every word."""
    items = [dataset[i] for i in range(len(dataset))]
    logits = forward_sorted(model, items, dataset.pad_id, batch_size, _token_logits, progress)
    gold_tags, pred_tags = [], []
    for item, row in zip(items, logits):
        gold, pred = ft.first_piece_tags(row.argmax(-1), item["labels"], id2label)
        gold_tags.append(gold)
        pred_tags.append(pred)
    scores = M.entity_scores(gold_tags, pred_tags)
    per_type = "  ".join(f"{t} {s['f1']:.3f}" for t, s in scores.per_type.items())
    return Evaluation(
        {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1},
        {"entities": scores.to_dict()},
        f"entity precision {scores.precision:.4f}  recall {scores.recall:.4f}  F1 {scores.f1:.4f}"
        + (f"   (F1 by type: {per_type})" if per_type else ""),
    )


def evaluate_qa(model: nn.Module, features: Sequence[ft.QAFeature], examples: Sequence[ft.SquadExample],
                pad_id: int, batch_size: int = 64, n_best: int = 20, max_answer_length: int = 30,
                progress: bool = False) -> Evaluation:
    """SQuAD v1.1 exact match and F1 (percent) of the best span of every question."""
    items = [feature.to_item() for feature in features]
    spans = forward_sorted(model, items, pad_id, batch_size, _span_logits, progress)
    predictions = ft.decode_spans([s for s, _ in spans], [e for _, e in spans], features, examples,
                                  n_best=n_best, max_answer_length=max_answer_length)
    scores = M.squad_evaluate(predictions, M.squad_gold(examples))
    return Evaluation(
        {"exact_match": scores["exact_match"], "f1": scores["f1"]},
        {"predictions": predictions},
        f"exact match {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}",
    )


# ─── the task data: datasets, labels and the evaluation function ────────────────────────────
@dataclass
class TaskData:
    train: ft.EncodedDataset
    id2label: dict[int, str] | None
    evaluate: Callable[[nn.Module, bool], Evaluation] | None
    train_examples: int
    eval_examples: int = 0


def _prepare_classify(train: Path, eval: Path | None, tok: Tokenizer, max_length: int, text_column: str,
                      label_column: str, text_pair_column: str | None, batch_size: int) -> TaskData:
    data = read_classification_file(train, text_column, label_column, text_pair_column)
    if len(data.label_names) < 2:
        raise ValueError(f"{train}: every row has the label {data.label_names[0]!r}; a classifier "
                         f"needs at least two labels")
    dataset = ft.encode_classification(data, tok, max_length)
    evaluate = None
    n_eval = 0
    if eval is not None:
        eval_data = read_classification_file(eval, text_column, label_column, text_pair_column,
                                             labels=data.label_names)
        eval_set = ft.encode_classification(eval_data, tok, max_length)
        n_eval = len(eval_data)

        def evaluate(model: nn.Module, progress: bool) -> Evaluation:
            return evaluate_classification(model, eval_set, data.label_names, 2 * batch_size, progress)
    return TaskData(dataset, data.id2label, evaluate, len(data), n_eval)


def _prepare_token(train: Path, eval: Path | None, tok: Tokenizer, max_length: int,
                   batch_size: int) -> TaskData:
    sentences = read_conll_file(train)
    names = ft.tag_names(sentences)
    label2id = {name: i for i, name in enumerate(names)}
    id2label = dict(enumerate(names))
    dataset = ft.encode_token_classification(sentences, tok, label2id, max_length)
    evaluate = None
    n_eval = 0
    if eval is not None:
        eval_sentences = read_conll_file(eval, tags=names)
        eval_set = ft.encode_token_classification(eval_sentences, tok, label2id, max_length)
        n_eval = len(eval_sentences)

        def evaluate(model: nn.Module, progress: bool) -> Evaluation:
            return evaluate_tokens(model, eval_set, id2label, 2 * batch_size, progress)
    return TaskData(dataset, id2label, evaluate, len(sentences), n_eval)


def _prepare_qa(train: Path, eval: Path | None, tok: Tokenizer, max_length: int, doc_stride: int,
                batch_size: int, n_best: int, max_answer_length: int) -> TaskData:
    examples = read_squad_file(train)
    answered = [ex for ex in examples if ex.answers]
    if not answered:
        raise ValueError(f"{train}: no question has an answer to train on")
    with _about(train):
        features = ft.prepare_qa_features(answered, tok, max_length, doc_stride)
    dataset = ft.qa_dataset(features, tok)
    evaluate = None
    n_eval = 0
    if eval is not None:
        eval_examples = read_squad_file(eval)
        with _about(eval):
            eval_features = ft.prepare_qa_features(eval_examples, tok, max_length, doc_stride)
        n_eval = len(eval_examples)

        def evaluate(model: nn.Module, progress: bool) -> Evaluation:
            return evaluate_qa(model, eval_features, eval_examples, dataset.pad_id, 2 * batch_size,
                               n_best, max_answer_length, progress)
    return TaskData(dataset, None, evaluate, len(answered), n_eval)


class _EvalRecorder(Callback):
    """Prints every evaluation and remembers its details by step (the best one is saved at the end)."""

    def __init__(self, steps_per_epoch: int, say: Callable[[str], None]) -> None:
        self.steps_per_epoch, self.say = steps_per_epoch, say
        self.pending: Evaluation | None = None
        self.by_step: dict[int, Evaluation] = {}

    def on_evaluate(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.pending is None:
            return
        step = int(row["step"])
        self.by_step[step] = self.pending
        epoch = step / self.steps_per_epoch
        label = f"epoch {epoch:g}" if epoch == int(epoch) else f"epoch {epoch:.2f}"
        self.say(f"[eval] {label} (step {step}): {self.pending.text}")
        self.pending = None


# ─── finetune ───────────────────────────────────────────────────────────────────────────────
def finetune(model: str | Path, train: str | Path, out: str | Path, task: str = "classify",
             eval: str | Path | None = None, text_column: str = "text", label_column: str = "label",
             text_pair_column: str | None = None, epochs: int = 3, batch_size: int = 32, lr: float = 5e-5,
             max_length: int | None = None, doc_stride: int = 128, n_best: int = 20,
             max_answer_length: int = 30, freeze: str | int | None = "none", pooling: str | None = None,
             warmup_ratio: float = 0.1, weight_decay: float = 0.01, seed: int = 0,
             early_stop_patience: int | None = None, minutes: float | None = None, resume: bool = False,
             overwrite: bool = False, device: str = "auto", progress: bool = True,
             quiet: bool = False) -> dict[str, Any]:
    """Fine-tune ``model`` (a model directory, a glassbert run, or an alias such as "minilm") on
    ``train`` and write the result to ``out``; returns a summary (also in out/eval.json).

    With ``eval``, the model is evaluated every epoch and the best epoch's weights (accuracy,
    entity F1 or exact match) become the final model; ``early_stop_patience`` stops after that many
    evaluations without a better score. ``out`` is then a model directory that
    ``BertForSequenceClassification.from_pretrained`` (ours or transformers') loads as is.
    """
    say = (lambda text: None) if quiet else (lambda text: tqdm.write(text))
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if early_stop_patience is not None and eval is None:
        raise ValueError("early_stop_patience needs an eval file to watch")
    model_dir = resolve_model_path(model)
    train, eval_path, out = Path(train), (Path(eval) if eval is not None else None), Path(out)
    config = BertConfig.load(model_dir)
    freeze_value = parse_freeze(freeze, config.num_hidden_layers)
    if max_length is None:
        max_length = DEFAULT_MAX_LENGTH[task]
    if max_length > config.max_position_embeddings:
        say(f"max_length {max_length} is more than the model's {config.max_position_embeddings} positions; "
            f"using {config.max_position_embeddings}")
        max_length = config.max_position_embeddings
    tok = Tokenizer.from_pretrained(model_dir)

    if task == "classify":
        data = _prepare_classify(train, eval_path, tok, max_length, text_column, label_column,
                                 text_pair_column, batch_size)
    elif task == "token":
        data = _prepare_token(train, eval_path, tok, max_length, batch_size)
    else:
        data = _prepare_qa(train, eval_path, tok, max_length, doc_stride, batch_size, n_best, max_answer_length)
    if len(data.train) < batch_size:
        raise ValueError(f"{train}: {len(data.train)} training items, fewer than one batch of {batch_size}; "
                         f"lower batch_size")

    chosen_pooling, pooling_reason = None, ""
    if task == "classify":
        chosen_pooling, pooling_reason = choose_pooling(model_dir, freeze_value, pooling)
    elif pooling is not None:
        raise ValueError(f"pooling applies to task 'classify' only, not {task!r}")
    net = build_task_model(task, model_dir, data.id2label, chosen_pooling, seed)
    frozen = freeze_parameters(net, freeze_value)
    frozen_set = set(frozen)
    n_frozen = sum(p.numel() for n, p in net.named_parameters() if n in frozen_set)
    n_trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)

    steps_per_epoch = len(data.train) // batch_size
    recorder = _EvalRecorder(steps_per_epoch, say)
    eval_fn = None
    if data.evaluate is not None:
        evaluate = data.evaluate

        def eval_fn(m: nn.Module) -> dict[str, float]:
            recorder.pending = evaluate(m, progress)
            return recorder.pending.metrics
    keep_best = KEEP_BEST[task] if eval_fn is not None else None
    train_config = TrainConfig(
        out_dir=out, batch_size=batch_size, lr=lr, epochs=epochs, warmup_ratio=warmup_ratio,
        weight_decay=weight_decay, seed=seed, eval_every=steps_per_epoch if eval_fn else None,
        keep_best=keep_best, keep_best_mode="max", early_stop_patience=early_stop_patience,
        minutes=minutes, progress=progress, overwrite=overwrite, device=device,
        log_every=max(1, min(10, steps_per_epoch)),
    )
    trainer = Trainer(net, data.train, data.train.collate, train_config, eval_fn=eval_fn,
                      callbacks=[recorder])
    say(f"finetune {task}: {model_dir} on {train} ({data.train_examples} examples, {len(data.train)} items"
        f"{f'; eval {data.eval_examples} examples' if eval_fn else ''}), {epochs} epochs × {steps_per_epoch} "
        f"steps of {batch_size}, lr {lr:g}, freeze {freeze_value} ({n_trainable:,} trainable / "
        f"{n_frozen:,} frozen parameters)"
        + (f", pooling {chosen_pooling} ({pooling_reason})" if chosen_pooling else ""))
    started = time.perf_counter()
    fit = trainer.fit(resume=resume)
    wall = time.perf_counter() - started

    # the final model: the best evaluation's weights when there was one
    final: Evaluation | None = None
    best_dir = out / BEST_DIR
    if keep_best is not None and fit.best_step is not None and (best_dir / "model.safetensors").is_file():
        state, _ = read_state_dict(best_dir)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{best_dir}: weights do not fit the model (missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]})")
        final = recorder.by_step.get(fit.best_step)
    if data.evaluate is not None and final is None:  # e.g. a resumed run that had already finished
        final = data.evaluate(net, progress)
    net.eval()
    net.save_pretrained(out, tokenizer=tok)
    task_info = {
        "task": task, "base_model": str(model_dir), "max_length": max_length, "text_column": text_column,
        "label_column": label_column, "text_pair_column": text_pair_column, "freeze": freeze_value,
        "pooling": chosen_pooling, "doc_stride": doc_stride if task == "qa" else None,
        "n_best": n_best if task == "qa" else None,
        "max_answer_length": max_answer_length if task == "qa" else None,
    }
    atomic_write_text(out / TASK_FILE, json.dumps(task_info, indent=2) + "\n")
    summary: dict[str, Any] = {
        "task": task, "out": str(out), "model": str(model_dir), "train_examples": data.train_examples,
        "eval_examples": data.eval_examples, "steps": fit.step, "epochs": fit.epoch,
        "stopped_by": fit.stopped_by, "train_seconds": fit.elapsed, "wall_seconds": wall,
        "best_metric": keep_best, "best_step": fit.best_step, "freeze": freeze_value,
        "frozen_parameters": n_frozen, "trainable_parameters": n_trainable, "pooling": chosen_pooling,
        "last_train_loss": fit.train.get("loss"), "metrics": final.metrics if final else {},
    }
    if data.id2label is not None:
        summary["labels"] = [data.id2label[i] for i in range(len(data.id2label))]
    eval_record = dict(summary)
    if final is not None:
        if task == "classify":
            eval_record["classification"] = final.details["report"]
            M.plot_confusion(final.details["confusion"], summary["labels"], out / CONFUSION_FILE,
                             title=f"confusion matrix (step {fit.best_step})")
        elif task == "token":
            eval_record["entities"] = final.details["entities"]
    atomic_write_text(out / EVAL_FILE, json.dumps(eval_record, indent=2) + "\n")
    if final is not None:
        say(f"[final] {'best ' if fit.best_step is not None else ''}model (step {fit.best_step}): {final.text}")
    say(f"wrote {out} ({fit.step} steps in {fit.elapsed:.1f} s, stopped by {fit.stopped_by})")
    return summary


# ─── classify ───────────────────────────────────────────────────────────────────────────────
def _read_inputs(path: Path, text_column: str, text_pair_column: str | None
                 ) -> tuple[list[str], list[str] | None]:
    """Texts (and second texts) from a .txt file (one per non-blank line) or a CSV/TSV/JSONL table."""
    if path.suffix.lower() == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if not texts:
            raise ValueError(f"{path}: file is empty (expected one text per line)")
        if text_pair_column:
            raise ValueError(f"{path}: a .txt file holds one text per line; pairs need a CSV/TSV/JSONL file")
        return texts, None
    texts, pairs = [], []
    with _about(path):
        for line, row, header in ft._iter_table(path):
            texts.append(ft._cell(path.name, line, row, text_column, header))
            if text_pair_column:
                pairs.append(ft._cell(path.name, line, row, text_pair_column, header))
        if not texts:
            raise ValueError(f"{path.name}: no rows to classify")
    return texts, (pairs if text_pair_column else None)


def classify(model_dir: str | Path, texts: Sequence[str] | None = None, input: str | Path | None = None,
             output: str | Path | None = None, text_column: str = "text", text_pair_column: str | None = None,
             text_pairs: Sequence[str] | None = None, batch_size: int = 64, max_length: int | None = None,
             progress: bool | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Labels and probabilities for ``texts`` or the rows of ``input`` (CSV/TSV/JSONL or .txt).

    Returns one dict per text, in input order: text (and text_pair), label, probability (of that
    label) and probs (label → probability). With ``output``, also writes them as CSV: text, label,
    probability and one ``prob_<label>`` column per label.
    """
    directory = resolve_model_path(model_dir)
    task_file = directory / TASK_FILE
    info: dict[str, Any] = {}
    if task_file.is_file():
        info = json.loads(task_file.read_text())
        if info.get("task") != "classify":
            raise ValueError(f"{directory} was fine-tuned for task {info.get('task')!r}, not 'classify'")
    config = BertConfig.load(directory)
    if config.id2label is None:
        raise ValueError(f"{directory / 'config.json'}: no id2label; this is not a fine-tuned classifier")
    if (texts is None) == (input is None):
        raise ValueError("give texts or an input file (one of them)")
    if input is not None:
        path = _existing_file(input, "input")
        texts, text_pairs = _read_inputs(path, text_column, text_pair_column)
        progress = True if progress is None else progress
    else:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("no texts to classify")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is a {type(text).__name__}, not a string")
        if text_pairs is not None:
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
            if len(text_pairs) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
        progress = False if progress is None else progress
    limit = min(max_length or info.get("max_length") or 512, config.max_position_embeddings)

    tok = Tokenizer.from_pretrained(directory)
    model = BertForSequenceClassification.from_pretrained(directory).to(device).eval()
    labels = [config.id2label[i] for i in range(config.num_labels)]
    data = ft.ClassificationData(list(texts), list(text_pairs) if text_pairs is not None else None,
                                 [0] * len(texts), labels)
    encoded = ft.encode_classification(data, tok, limit)
    items = [encoded[i] for i in range(len(encoded))]
    logits = np.stack(forward_sorted(model, items, encoded.pad_id, batch_size, _logits, progress, "classify"))
    probs = torch.from_numpy(logits).double().softmax(-1).numpy()
    rows = []
    for i, p in enumerate(probs):
        best = int(p.argmax())
        row: dict[str, Any] = {"text": texts[i]}
        if text_pairs is not None:
            row["text_pair"] = text_pairs[i]
        row.update(label=labels[best], probability=float(p[best]),
                   probs={label: float(p[k]) for k, label in enumerate(labels)})
        rows.append(row)
    if output is not None:
        write_predictions(rows, labels, output)
    return rows


def write_predictions(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], path: str | Path) -> Path:
    """rows of :func:`classify` as CSV: text[, text_pair], label, probability, prob_<label>…"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pair = bool(rows) and "text_pair" in rows[0]
    header = ["text", *(["text_pair"] if pair else []), "label", "probability", *(f"prob_{x}" for x in labels)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row["text"], *([row["text_pair"]] if pair else []), row["label"],
                             f"{row['probability']:.6f}", *(f"{row['probs'][x]:.6f}" for x in labels)])
    return path


def format_table(rows: Sequence[Mapping[str, Any]], width: int = 60) -> str:
    """rows of :func:`classify` as an aligned text table (texts cut to ``width`` characters)."""
    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[:width - 1] + "…"

    shown = [(cut(r["text"]), str(r["label"]), f"{r['probability']:.3f}") for r in rows]
    w_text = max([4, *(len(t) for t, _, _ in shown)])
    w_label = max([5, *(len(lab) for _, lab, _ in shown)])
    lines = [f"{'text':<{w_text}}  {'label':<{w_label}}  probability"]
    lines += [f"{t:<{w_text}}  {lab:<{w_label}}  {p:>11}" for t, lab, p in shown]
    return "\n".join(lines)


__all__ = ["finetune", "classify", "write_predictions", "format_table", "build_task_model",
           "freeze_parameters", "parse_freeze", "choose_pooling", "evaluate_classification",
           "evaluate_tokens", "evaluate_qa", "forward_sorted", "read_classification_file",
           "read_conll_file", "read_squad_file", "format_confusion", "Evaluation", "TASKS"]
