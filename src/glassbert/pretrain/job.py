"""`glassbert pretrain`: MLM + NSP/SOP from raw text, into a run directory that resumes and scales out.

    corpus (txt/jsonl/csv, file or folder) ─▶ documents ─▶ held-out split ─▶ sentences ─▶ token ids
    ─▶ NSP/SOP instances (instances.py) ─▶ dynamic 80/10/10 masking per batch (masking.py)
    ─▶ Trainer(BertForPreTraining)
    ─▶ RUN/: config.json, model.safetensors, vocab (a transformers-style dir), metrics.jsonl/.png,
             checkpoint/ (resume), pretrain_args.json, pretrain_result.json, record/ (explorer, with --record)
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..config import BertConfig
from ..corpus import read_texts
from ..errors import InputError, MissingError
from ..heads import BertForPreTraining
from ..runfiles import PLOT_FILE, atomic_write_json
from ..tokenizer import Tokenizer
from ..train import Trainer, TrainConfig
from .config import PretrainingConfig
from .instances import PretrainingDataset, build_instances, tokenize_documents
from .masking import PretrainingCollator

ARGS_FILE = "pretrain_args.json"
RESULT_FILE = "pretrain_result.json"


@dataclass
class PretrainArgs:
    corpus: str
    vocab: str
    out: str
    preset: str = "mini"
    max_seq_length: int = 128
    batch_size: int = 32
    lr: float = 5e-4
    warmup_ratio: float = 0.02
    weight_decay: float = 0.01
    steps: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    seed: int = 0
    task: str = "nsp"
    whole_word_mask: bool = False
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    eval_fraction: float = 0.02
    eval_every: int | None = 200
    save_every: int = 200
    log_every: int = 10
    text_column: str | None = None
    amp: str = "auto"
    record: str | None = None
    config_overrides: dict = field(default_factory=dict)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def say(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


def split_documents(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out whole documents (at least 2 when there are ≥ 6) so evaluation sees unseen text."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_eval = 0 if fraction <= 0 or len(texts) < 6 else max(2, round(len(texts) * fraction))
    held = sorted(order[:n_eval])
    held_set = set(held)
    return [texts[i] for i in range(len(texts)) if i not in held_set], [texts[i] for i in held]


def build_datasets(args: PretrainArgs, tok: Tokenizer):
    """(train, eval or None, collator, PretrainingConfig, train documents, held-out documents)."""
    texts = read_texts(args.corpus, text_column=args.text_column)
    if not texts:
        raise InputError(f"{args.corpus}: no text found")
    train_texts, eval_texts = split_documents(texts, args.eval_fraction, args.seed)
    cfg = PretrainingConfig(max_seq_length=args.max_seq_length, masked_lm_prob=args.masked_lm_prob,
                            max_predictions_per_seq=args.max_predictions_per_seq,
                            whole_word_mask=args.whole_word_mask, task=args.task)
    rng = random.Random(args.seed)
    train = build_instances(tokenize_documents(train_texts, tok), cfg, rng)
    evaluation = build_instances(tokenize_documents(eval_texts, tok), cfg, rng) if eval_texts else []
    if not train:
        raise InputError(f"{args.corpus}: the corpus gave no training pairs (is it too small?)")
    return (PretrainingDataset(train, tok), PretrainingDataset(evaluation, tok) if evaluation else None,
            PretrainingCollator(tok, cfg, seed=args.seed), cfg, len(train_texts), len(eval_texts))


def pretraining_metrics(out, batch) -> dict[str, float]:
    """MLM accuracy over the masked tokens and NSP accuracy over the pairs of one batch."""
    metrics = {}
    if out.masked_index is not None and out.masked_index.numel():
        targets = batch["labels"].reshape(-1)[out.masked_index]
        metrics["mlm_acc"] = (out.prediction_logits.argmax(-1) == targets).float().mean().item()
        metrics["mlm_loss"] = out.mlm_loss.item()
    if out.nsp_loss is not None:
        metrics["nsp_acc"] = (out.seq_relationship_logits.argmax(-1) == batch["next_sentence_label"]
                              ).float().mean().item()
        metrics["nsp_loss"] = out.nsp_loss.item()
    return metrics


def _record_callback(args: PretrainArgs, out: Path, train_ds, eval_ds, collate, tok: Tokenizer, resume: bool):
    """The explorer's recorder over the first held-out (else training) pairs, masked with the run's seed."""
    from ..recording import Recorder, RecordCallback, RecordSpec

    spec = RecordSpec.parse(args.record)
    source = eval_ds or train_ds
    rows = list(spec.samples) if spec.samples else [0, 1]
    picked = [source[i] for i in range(min(len(source), max(rows) + 1))]
    samples = collate(picked, torch.Generator().manual_seed(args.seed))
    return RecordCallback(Recorder(out, samples, tok, spec, resume=resume))


def pretrain(args: PretrainArgs, resume: bool = False, progress: bool = True) -> dict:
    """Pretrain a BertForPreTraining as ``args`` say; ``resume`` continues ``args.out``'s checkpoint."""
    out = Path(args.out)
    tok = Tokenizer.from_pretrained(args.vocab)
    train_ds, eval_ds, collate, cfg, n_train_docs, n_eval_docs = build_datasets(args, tok)
    overrides = dict(args.config_overrides)
    overrides.setdefault("max_position_embeddings", max(512, args.max_seq_length))
    config = BertConfig.preset(args.preset, vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, **overrides)
    torch.manual_seed(args.seed)
    model = BertForPreTraining(config)
    say(f"pretraining {args.preset} ({model.num_parameters() / 1e6:.1f} M parameters) on {args.corpus}: "
        f"{n_train_docs} documents → {len(train_ds)} pairs; held out {n_eval_docs} documents → "
        f"{len(eval_ds) if eval_ds else 0} pairs; vocabulary {tok.vocab_size}")

    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / ARGS_FILE, asdict(args), indent=2)
    schedule = "linear" if (args.steps or args.epochs) else "constant"
    train_cfg = TrainConfig(
        out_dir=out, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio if schedule == "linear" else None,
        warmup_steps=0 if schedule == "linear" else 100, schedule=schedule,
        max_steps=args.steps, epochs=args.epochs, minutes=args.minutes, seed=args.seed,
        log_every=args.log_every, eval_every=args.eval_every if eval_ds else None,
        save_every=args.save_every, amp=args.amp, progress=progress, overwrite=not resume)
    callbacks = [_record_callback(args, out, train_ds, eval_ds, collate, tok, resume)] if args.record else []
    trainer = Trainer(model, train_ds, collate, train_cfg, eval_dataset=eval_ds,
                      metrics_fn=pretraining_metrics, callbacks=callbacks)
    summary = trainer.fit(resume=resume)
    final_eval = summary.eval or {}  # the Trainer evaluates at the end (on every rank, before leaving DDP)
    if not is_main_process():
        return {}
    model.save_pretrained(out, tokenizer=tok)
    result = {"step": summary.step, "stopped_by": summary.stopped_by, "elapsed_s": round(summary.elapsed, 1),
              "train": summary.train, "eval": final_eval}
    atomic_write_json(out / RESULT_FILE, result, indent=2)
    say(f"stopped after step {summary.step} ({summary.stopped_by}), {summary.elapsed / 60:.1f} min")
    if final_eval:
        say(f"held-out: loss {final_eval['loss']:.3f}, MLM accuracy {final_eval.get('mlm_acc', 0):.3f}, "
            f"NSP accuracy {final_eval.get('nsp_acc', 0):.3f}")
    say(f"model: {out} (transformers-style dir); curves: {out / PLOT_FILE}")
    return result


def resume_pretraining(run_dir: str | Path, progress: bool = True, **changes) -> dict:
    """Continue a run from its last checkpoint with the arguments it was started with."""
    path = Path(run_dir) / ARGS_FILE
    if not path.is_file():
        raise MissingError(f"{run_dir}: no {ARGS_FILE}: not a glassbert pretraining run")
    saved = json.loads(path.read_text())
    saved.update({k: v for k, v in changes.items() if v is not None})
    return pretrain(PretrainArgs(**saved), resume=True, progress=progress)


__all__ = ["PretrainArgs", "pretrain", "resume_pretraining", "pretraining_metrics", "split_documents",
           "build_datasets", "ARGS_FILE", "RESULT_FILE"]
