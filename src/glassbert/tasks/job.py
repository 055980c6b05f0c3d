"""The `finetune` job: a BERT fine-tuned on one task, written as a model directory.

    FinetuneArgs ─▶ task module (classification / tagging / qa): read (errors name file and line),
    encode ─▶ task model from_pretrained ─▶ freeze ─▶ Trainer: an evaluation every epoch, the best kept,
    early stop ─▶ out/ : config.json (+ id2label) · model.safetensors · tokenizer files (transformers loads it)
                        eval.json · glassbert_task.json · metrics.jsonl/png · confusion.png
                        (checkpoint/ and best/ while it runs; kept when it finishes only with keep_checkpoint)
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from ..modeldir import resolve_model_path
from ..config import BertConfig
from ..errors import InputError, MissingError
from ..precision import check_precision, resolve, saved_precision
from ..runfiles import CONFIG_FILE, atomic_write_text, check_target_dir, holds_run, replace_dir
from ..textfiles import read_json_object
from ..threads import set_threads
from ..tokenizer import Tokenizer, pad_rows
from ..train import Callback, Evaluation, TrainConfig, Trainer
from ..train.checkpoints import find_checkpoint, finish_run
from . import TASK_NAMES, qa, task_module
from .common import EVAL_FILE, MODEL_INPUTS, TASK_FILE, Task, TaskData, freeze_parameters, load_task_model, parse_freeze

TASKS: dict[str, Task] = {name: task_module(name) for name in TASK_NAMES}  # each implements common.Task


@dataclass
class FinetuneArgs:
    """Everything `glassbert finetune` takes. ``model``: a model directory, a glassbert run or an alias
    ("minilm"); ``train``/``eval``: CSV/TSV/JSONL (classify), CoNLL (token) or SQuAD v1.1 JSON (qa)."""

    model: str | Path
    train: str | Path
    out: str | Path
    task: str = "classify"
    eval: str | Path | None = None
    # classify: the columns (or JSONL keys) to read
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    # training
    epochs: int = 3
    steps: int | None = None         # optimizer steps (stops at --epochs or here, whichever comes first)
    batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    early_stop_patience: int | None = None
    minutes: float | None = None
    max_length: int | None = None    # default: the task's (128; qa 384), at most the model's positions
    freeze: str | int | None = "none"  # none | embeddings | encoder | N (the first N layers)
    pooling: str | None = None       # classify: pooler | cls | mean (default: see common.choose_pooling)
    # qa
    doc_stride: int = qa.DEFAULT_DOC_STRIDE
    n_best: int = qa.DEFAULT_N_BEST
    max_answer_length: int = qa.DEFAULT_MAX_ANSWER_LENGTH
    # the run
    record: str | None = None        # what the explorer records, e.g. "samples=0,1;every_steps=50" (as pretrain's)
    resume: bool = False
    overwrite: bool = False
    keep_checkpoint: bool = False    # keep checkpoint/ (+ best/) when the run finishes, so that --resume can extend it
    save_every: int | None = None    # steps between checkpoints (None: one per epoch), what --resume continues from
    log_every: int | None = None     # steps between metrics.jsonl rows (None: 10, or once an epoch if that is shorter)
    precision: str | None = None     # fp32 | bf16 | auto (glassbert.precision); None: auto, or on resume the run's own
    device: str = "auto"
    progress: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.save_every is not None and self.save_every < 1:
            raise InputError(f"save_every must be >= 1 step, got {self.save_every}")
        if self.log_every is not None and (isinstance(self.log_every, bool) or not isinstance(self.log_every, int)
                                           or self.log_every < 1):
            raise InputError(f"log_every must be a whole number of steps >= 1, got {self.log_every!r}")
        if self.early_stop_patience is not None and self.eval is None:
            raise InputError("early_stop_patience needs an eval file to watch")
        if self.pooling is not None and not TASKS[self.task].TAKES_POOLING:
            raise InputError(f"pooling applies to task 'classify' only, not {self.task!r}")
        self.train, self.out = Path(self.train), Path(self.out)
        self.eval = Path(self.eval) if self.eval is not None else None
        if self.precision is not None:
            check_precision(self.precision, training=True)


def run_precision(args: FinetuneArgs, out: Path) -> str:
    """The precision the run trains in: ``args.precision`` (default auto); a resumed run keeps the one it was
    started with (its trainer_config.json), and a different one asked for is refused."""
    saved_file = out / CONFIG_FILE
    if not (args.resume and saved_file.is_file()):
        return args.precision or "auto"
    saved = saved_precision(read_json_object(saved_file))  # a run dir from before: its "amp" reads the same
    if args.precision is not None and args.precision != saved:
        raise InputError(f"--resume continues {out} in the precision it was started with ({saved}); "
                         f"drop --precision {args.precision}, or start a new run")
    return saved


def build_task_model(task: str, model_dir: str | Path, id2label: Mapping[int, str] | None = None,
                     pooling: str | None = None, seed: int = 0) -> nn.Module:
    """The ``task``'s model on a pretrained body; the new head is initialized from ``seed``."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return load_task_model(TASKS[task].MODEL, model_dir, id2label, pooling, seed)


class _SayEvaluation(Callback):
    """Prints where a resumed run starts, and every evaluation (its ``details["text"]``) with its epoch and step."""

    def __init__(self, steps_per_epoch: int, say: Callable[[str], None], resume: bool = False) -> None:
        self.steps_per_epoch, self.say, self.resume = steps_per_epoch, say, resume

    def on_train_begin(self, trainer: Trainer) -> None:
        if not self.resume:
            return
        st, done = trainer.state, trainer.stop_reason()
        if not trainer.resumed:
            self.say(f"{trainer.out_dir} has no checkpoint yet: starting from step 0")
        elif done:
            extend = f"; a larger --{done} extends it" if done in ("epochs", "minutes") else ""
            self.say(f"{trainer.out_dir} already finished at step {st.step} (stopped by {done}): nothing to "
                     f"train{extend}")
        else:
            self.say(f"resuming {trainer.out_dir} at step {st.step} (epoch {st.epoch + 1}, batch {st.batch_in_epoch})")

    def on_evaluate(self, trainer: Trainer, row: dict[str, Any]) -> None:
        evaluation = trainer.last_evaluation
        if evaluation is None or not isinstance(evaluation.details, dict):
            return
        step = int(row["step"])
        epoch = step / self.steps_per_epoch
        label = f"epoch {epoch:g}" if epoch == int(epoch) else f"epoch {epoch:.2f}"
        self.say(f"[eval] {label} (step {step}): {evaluation.details['text']}")


def _record_callback(args: FinetuneArgs, data: TaskData, tok: Tokenizer, out: Path,
                     say: Callable[[str], None] | None = None) -> Callback:
    """``--record``: snapshots of the chosen eval examples (train examples without an eval file)."""
    from ..recording import RecordCallback, Recorder, RecordSpec
    spec = RecordSpec.parse(args.record)
    source = data.eval_set if data.eval_set is not None else data.train
    rows = list(spec.samples) if spec.samples else [0, 1]
    if max(rows) >= len(source):
        raise InputError(f"--record samples {[r for r in rows if r >= len(source)]}: the "
                         f"{'eval' if data.eval_set is not None else 'training'} set has {len(source)} items")
    # a classifier's gold label goes with its inputs: the explorer shows each eval prediction right or wrong
    keys = MODEL_INPUTS + TASKS[args.task].RECORD_KEYS
    picked = [{k: source.items[i][k] for k in keys} for i in range(max(rows) + 1)]
    return RecordCallback(Recorder(out, pad_rows(picked, source.pad_id), tok, spec, resume=args.resume, say=say))


def refuse_finished_without_checkpoint(out: Path) -> None:
    """``--resume`` of a run that finished and was pruned (:func:`finish_run`): one line, not a new run from step 0."""
    if find_checkpoint(out) is not None or not (out / EVAL_FILE).is_file():
        return
    try:
        done = read_json_object(out / EVAL_FILE)
    except InputError:
        done = {}
    at = f" at step {done['steps']} (stopped by {done.get('stopped_by')})" if "steps" in done else ""
    raise InputError(f"--resume: {out} finished{at} and its checkpoint was removed, so it cannot be continued: "
                     "its model is ready to use; to extend runs, start them with --keep-checkpoint")


UNKNOWN_WARNING = 0.1  # a training set with more [UNK] pieces than this is warned about (a vocabulary for other text)


def finetune(args: FinetuneArgs, threads: int | None = None) -> dict[str, Any]:
    """Fine-tune ``args.model`` on ``args.train`` and write the result to ``args.out``; returns a
    summary (also in out/eval.json). ``threads``: the intra-op threads of this process (default: chosen for
    the model as the command chooses them, :func:`glassbert.threads.choose_threads`).

    With ``args.eval``, the model is evaluated every epoch and the best epoch's weights (accuracy,
    entity F1 or exact match) become the final model; ``early_stop_patience`` stops after that many
    evaluations without a better score. ``out`` is then a model directory that the task's model class
    (ours or transformers') loads as is.
    """
    say = (lambda text: None) if args.quiet else (lambda text: tqdm.write(text))
    task = TASKS[args.task]
    if args.resume and args.overwrite:
        raise InputError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    out = check_target_dir(args.out, overwrite=args.overwrite, resume=args.resume, resume_hint="--resume",
                           reads=(("the model", args.model), ("--train", args.train), ("--eval", args.eval)))
    if args.resume and not holds_run(out):  # a mistyped or moved run would start anew; a user's folder, be emptied
        raise MissingError(f"--resume: {out} holds no run to continue: give the directory of the run (where it "
                           "now is, if it was moved), or leave out --resume to start one")
    if args.resume:
        refuse_finished_without_checkpoint(out)
    precision = run_precision(args, out)
    model_dir = resolve_model_path(args.model)
    config = BertConfig.load(model_dir)
    logging.getLogger("glassbert").info("intra-op threads: %s", set_threads(threads, config.hidden_size))
    freeze = parse_freeze(args.freeze, config.num_hidden_layers, config)
    max_length = args.max_length or task.DEFAULT_MAX_LENGTH
    if max_length > config.max_position_embeddings:
        say(f"max_length {max_length} is more than the model's {config.max_position_embeddings} positions; "
            f"using {config.max_position_embeddings}")
        max_length = config.max_position_embeddings
    tok = Tokenizer.from_pretrained(model_dir)
    data = task.prepare(args, tok, max_length)
    unknown = data.train.unknown_share(tok)
    if unknown > UNKNOWN_WARNING:
        say(f"warning: {unknown:.0%} of the word pieces of {args.train} are [UNK] to {args.model}'s vocabulary "
            f"({tok.vocab_size:,} pieces): the model cannot read most of this text (was it trained on other "
            "text, or with another tokenizer?)")
    if len(data.train) < args.batch_size:  # a small set is one batch, not a refusal
        say(f"{args.train}: {len(data.train)} training items, fewer than --batch-size {args.batch_size}: "
            f"batches of {len(data.train)}")
        args = replace(args, batch_size=len(data.train))

    pooling, pooling_reason = task.choose_pooling(args, model_dir, freeze)
    net = load_task_model(task.MODEL, model_dir, data.id2label, pooling, args.seed)
    frozen = set(freeze_parameters(net, freeze))
    n_frozen = sum(p.numel() for n, p in net.named_parameters() if n in frozen)
    n_trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)

    steps_per_epoch = len(data.train) // args.batch_size
    eval_fn = None
    if data.evaluate is not None:
        evaluate = data.evaluate

        def eval_fn(m: nn.Module) -> Evaluation:
            return evaluate(m, args.progress)
    keep_best = task.KEEP_BEST if eval_fn is not None else None
    train_config = TrainConfig(
        out_dir=out, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, max_steps=args.steps, warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay, seed=args.seed, eval_every=steps_per_epoch if eval_fn else None,
        keep_best=keep_best, keep_best_mode="max", early_stop_patience=args.early_stop_patience,
        minutes=args.minutes, progress=args.progress, overwrite=args.overwrite, device=args.device,
        save_every=args.save_every or steps_per_epoch,  # a stopped run resumes from its last epoch at worst
        log_every=args.log_every or max(1, min(10, steps_per_epoch)), precision=precision,
    )
    callbacks = [_SayEvaluation(steps_per_epoch, say, resume=args.resume)]
    if args.record:
        callbacks.append(_record_callback(args, data, tok, out, say))
    if args.overwrite:
        replace_dir(out)  # the inputs have been read: now the old run goes, whole
    trainer = Trainer(net, data.train, data.train.collate, train_config, eval_fn=eval_fn, callbacks=callbacks)
    say(f"finetune {args.task}: {model_dir} on {args.train} ({data.train_examples} examples, {len(data.train)} "
        f"items{f'; eval {data.eval_examples} examples' if eval_fn else ''}), {args.epochs} epoch{'s' * (args.epochs != 1)} × "
        f"{steps_per_epoch} steps of {args.batch_size}, lr {args.lr:g}, freeze {freeze} ({n_trainable:,} "
        f"trainable / {n_frozen:,} frozen parameters)"
        + (f", pooling {pooling} ({pooling_reason})" if pooling else "")
        + f", precision {resolve(precision, trainer.device)}" + (" (auto)" if precision == "auto" else ""))
    started = time.perf_counter()
    fit = trainer.fit(resume=args.resume)  # with an eval, the model now holds the best evaluation's weights
    wall = time.perf_counter() - started

    final = trainer.best_evaluation
    if data.evaluate is not None and (final is None or final.details is None):
        final = data.evaluate(net, args.progress)  # e.g. a resumed run: best/ keeps the metrics, not the details
    net.eval()
    net.save_pretrained(out, tokenizer=tok)
    task_info = {"task": args.task, "base_model": str(model_dir), "max_length": max_length, "freeze": freeze,
                 "pooling": pooling, **task.run_info(args)}
    atomic_write_text(out / TASK_FILE, json.dumps(task_info, indent=2) + "\n")
    summary: dict[str, Any] = {
        "task": args.task, "out": str(out), "model": str(model_dir), "train_examples": data.train_examples,
        "eval_examples": data.eval_examples, "steps": fit.step, "epochs": fit.epoch,
        "stopped_by": fit.stopped_by, "train_seconds": fit.elapsed, "wall_seconds": wall,
        "best_metric": keep_best, "best_step": fit.best_step, "freeze": freeze,
        "frozen_parameters": n_frozen, "trainable_parameters": n_trainable, "pooling": pooling,
        "precision": resolve(precision, trainer.device),
        "last_train_loss": fit.train.get("loss"), "metrics": final.metrics if final else {},
    }
    if data.id2label is not None:
        summary["labels"] = [data.id2label[i] for i in range(len(data.id2label))]
    eval_record = dict(summary)
    if final is not None:
        eval_record.update(task.eval_record(final, out, summary.get("labels"), fit.best_step))
    atomic_write_text(out / EVAL_FILE, json.dumps(eval_record, indent=2) + "\n")
    if final is not None:
        say(f"[final] {'best ' if fit.best_step is not None else ''}model (step {fit.best_step}): "
            f"{final.details['text']}")
    hint = task.hint(final, summary.get("labels"), args.lr, n_trainable)
    if hint:
        say(hint)
    removed = finish_run(out, keep_checkpoint=args.keep_checkpoint)  # last: a kill before it leaves the checkpoint
    say(f"wrote {out} ({fit.step} steps in {fit.elapsed:.1f} s, stopped by {fit.stopped_by})"
        + (f"; removed {' and '.join(f'{r}/' for r in removed)} (--keep-checkpoint keeps them to extend the run)"
           if removed else ""))
    return summary


__all__ = ["TASKS", "TASK_FILE", "EVAL_FILE", "FinetuneArgs", "build_task_model", "finetune"]
