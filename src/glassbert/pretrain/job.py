"""`glassbert pretrain`: MLM + NSP/SOP from raw text, into a run directory that resumes and scales out.

    corpus (txt/jsonl/csv, file or folder) ─▶ documents ─▶ held-out split ─▶ sentences ─▶ token ids
    ─▶ (a new model: word embeddings from the training ids' co-occurrences, cooccurrence.py)
    ─▶ NSP/SOP instances (instances.py) ─▶ dynamic 80/10/10 masking per batch (masking.py)
    ─▶ Trainer(BertForPreTraining: MLM + NSP | AlbertForPreTraining: MLM + SOP, --arch)
    ─▶ RUN/: config.json, model.safetensors, vocab (a transformers-style dir), metrics.jsonl/.png,
             checkpoint/ (resume), pretrain_args.json, pretrain_data.json, pretrain_result.json (with the
             held-out report that is printed at the end: report.py), record/ (explorer, with --record)

A run directory is self-contained: its vocabulary is copied in at the start, and a resume writes where it
is told (the directory given), never where the run was first started; the corpus is recorded by absolute
path and fingerprint (pretrain_data.json), so a moved corpus can be named again on resume and a changed
one is refused.
"""
from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..config import BertConfig
from ..corpus import read_texts
from ..errors import InputError, MissingError
from ..modeldir import resolve_model_path
from ..registry import ARCHITECTURES, PAIR_TASKS, Architecture, architecture, load_as_with_report
from ..precision import check_precision, saved_precision
from ..runfiles import PLOT_FILE, atomic_write_json, check_target_dir, replace_dir
from ..textfiles import read_json_object
from ..threads import set_threads
from ..tokenizer import Tokenizer
from ..train import Trainer, TrainConfig
from ..train.distributed import DistInfo
from ..train.checkpoints import checkpoint_step, find_checkpoint
from .config import PretrainingConfig
from .cooccurrence import init_word_embeddings
from .instances import PretrainingDataset, build_instances, tokenize_documents
from .masking import PretrainingCollator
from .report import fill_mask_examples, run_report

ARGS_FILE = "pretrain_args.json"
DATA_FILE = "pretrain_data.json"
RESULT_FILE = "pretrain_result.json"


INIT_EMBEDDINGS = ("ppmi", "random")  # --init-embeddings of a new model
SMALL_PRESETS = ("toy", "tiny", "mini")  # BERT's presets whose short-budget recipe was measured


def default_lr(from_model: str | None) -> float:
    """The peak learning rate when none is given. 5e-4 for BERT's small presets, from 5-minute runs of the mini
    preset on SOTU (bench/quality.py's data; one thread each, two runs side by side; README "Pretraining
    quality"): with batch 8, held-out MLM accuracy/loss 0.079/6.62 at 1e-3 (stuck at the unigram plateau,
    predicting "the" everywhere), 0.098/6.55 at 1e-4, 0.116/6.39 at 3e-4, 0.125/6.30 at 5e-4 (dropout off).
    5e-4 for every preset and ALBERT too (the larger ones were not measured); 1e-4 to continue a pretrained model
    (--from), as domain-adaptive pretraining does, so that its knowledge is adjusted rather than overwritten."""
    return 1e-4 if from_model is not None else 5e-4


def default_batch_size(arch: str, preset: str | None, from_model: str | None) -> int:
    """The batch size when none is given: 8 for BERT's small presets, 32 otherwise. In the same 5 minutes
    a mini model took 4x the steps at batch 8 and ended lower: held-out MLM loss 6.39 against 6.49 at batch 32
    (lr 3e-4), 0.116 against 0.102 accuracy; batch 4 was no better than 8 (6.32 against 6.30). A small model
    on a CPU learns more from many small steps than from few large ones in a short budget."""
    return 8 if from_model is None and arch == "bert" and (preset or "mini") in SMALL_PRESETS else 32


@dataclass
class PretrainArgs:
    corpus: str
    vocab: str
    out: str
    preset: str | None = None  # None: the arch's default (bert: mini, albert: tiny)
    max_seq_length: int = 128
    batch_size: int | None = None  # None: default_batch_size(arch, preset, from_model)
    lr: float | None = None  # None: default_lr(from_model)
    warmup_ratio: float = 0.02
    weight_decay: float = 0.01
    steps: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    seed: int = 0
    task: str | None = None    # None: the arch's own (bert: nsp, albert: sop); mlm: no pair task
    pack: bool = False         # task mlm: several short chunks per row, kept apart by the attention mask
    whole_word_mask: bool = False
    masked_lm_prob: float = 0.15  # --mask-rate: the share of each pair's tokens chosen for prediction
    max_predictions_per_seq: int | None = None  # None: ceil(max_seq_length × masked_lm_prob) (BERT: 20 at 128, 15 %)
    eval_fraction: float = 0.02
    eval_every: int | None = 200
    save_every: int = 200
    log_every: int = 10
    text_column: str | None = None
    precision: str = "auto"  # fp32 | bf16 | auto (bf16 autocast where the hardware has fast bf16): glassbert.precision
    record: str | None = None
    config_overrides: dict = field(default_factory=dict)
    overwrite: bool = False  # replace a non-empty ``out`` whole (otherwise it is refused)
    schedule: str | None = None  # "linear" (new runs: decays to 0 at the steps/epochs limit or the minutes deadline);
    #                              "constant" in runs started with --minutes alone before that; fixed at the start
    arch: str = "bert"  # bert (MLM + NSP) | albert (MLM + SOP); a run saved before --arch existed is a BERT
    from_model: str | None = None  # continue pretraining this model (dir or alias): its config, weights, vocabulary
    init_embeddings: str | None = None  # a new model's word embeddings: ppmi (the default: the corpus's
    #                                     co-occurrence vectors, cooccurrence.py) | random (BERT's normal(0, 0.02))

    def __post_init__(self) -> None:
        if not 0 < self.masked_lm_prob < 1:
            raise InputError(f"--mask-rate {self.masked_lm_prob}: give a share of the tokens between 0 and 1, "
                             "e.g. 0.15 (BERT) or 0.3")
        if self.max_predictions_per_seq is None:  # room for the whole rate in a full-length pair
            self.max_predictions_per_seq = math.ceil(self.max_seq_length * self.masked_lm_prob - 1e-9)
        if self.from_model is not None:  # the model's own architecture and size; its vocabulary
            if self.init_embeddings is not None:
                raise InputError(f"--init-embeddings {self.init_embeddings}: --from {self.from_model} starts from "
                                 "that model's own word embeddings; leave one of them out")
            self.arch = BertConfig.load(resolve_model_path(self.from_model)).model_type
            self.preset = self.preset or "from-model"
        elif self.init_embeddings is None:
            self.init_embeddings = "ppmi"
        elif self.init_embeddings not in INIT_EMBEDDINGS:
            raise InputError(f"--init-embeddings {self.init_embeddings!r}: choose one of {', '.join(INIT_EMBEDDINGS)}")
        arch = architecture(self.arch)
        check_precision(self.precision, training=True)
        self.preset = self.preset or arch.default_preset
        if self.lr is None:
            self.lr = default_lr(self.from_model)
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.arch, self.preset, self.from_model)
        self.task = self.task or arch.pair_task
        presets = arch.config_class.presets
        if self.preset not in presets and self.from_model is None:
            raise InputError(f"--preset {self.preset!r} is not one of {self.arch.upper()}'s presets; "
                             f"--arch {self.arch} has: {', '.join(presets)}")
        if self.task in PAIR_TASKS and self.task not in arch.pair_tasks:
            raise InputError(f"--task {self.task}: {self.arch.upper()}'s pair head predicts "
                             f"{PAIR_TASKS[arch.pair_task]}; use --task {arch.pair_task} (its default) or --task mlm")
        if self.pack and self.task != "mlm":
            raise InputError(f"--pack puts several documents in one row, which the sentence-pair task "
                             f"{self.task} cannot read: add --task mlm")

    @property
    def architecture(self) -> Architecture:
        return architecture(self.arch)


def is_main_process() -> bool:
    return DistInfo.from_env().rank == 0


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


def corpus_fingerprint(texts: list[str]) -> dict[str, object]:
    """What identifies a corpus's text: its document count and a SHA-256 over the documents."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return {"documents": len(texts), "sha256": digest.hexdigest()}


@dataclass
class PretrainData:
    """What :func:`build_datasets` makes of a corpus."""

    train: PretrainingDataset
    eval: PretrainingDataset | None
    collate: PretrainingCollator
    config: PretrainingConfig
    train_documents: int
    eval_documents: int
    fingerprint: dict  # corpus_fingerprint of all the corpus's documents
    train_ids: list = field(default_factory=list)  # the training documents' sentences' token ids (--init-embeddings)


def build_datasets(args: PretrainArgs, tok: Tokenizer, expect: dict | None = None) -> PretrainData:
    """The training and held-out pairs of ``args.corpus``, and the collator that masks them.

    ``expect``: the fingerprint a resumed run was started on; a corpus whose text differs is refused.
    """
    texts = read_texts(args.corpus, text_column=args.text_column)
    if not texts:
        raise InputError(f"{args.corpus}: no text found")
    fingerprint = corpus_fingerprint(texts)
    if expect and (expect.get("documents"), expect.get("sha256")) != (fingerprint["documents"], fingerprint["sha256"]):
        raise InputError(f"{args.corpus}: this is not the text the run was started on ({expect.get('documents')} "
                         f"documents then, {fingerprint['documents']} now, and different content): resuming would "
                         "not continue the same data; give the original corpus with --corpus, or start a new run")
    train_texts, eval_texts = split_documents(texts, args.eval_fraction, args.seed)
    cfg = PretrainingConfig(max_seq_length=args.max_seq_length, masked_lm_prob=args.masked_lm_prob,
                            max_predictions_per_seq=args.max_predictions_per_seq,
                            whole_word_mask=args.whole_word_mask, task=args.task, pack=args.pack)
    pair_label = args.architecture.pair_label
    rng = random.Random(args.seed)
    train_ids = tokenize_documents(train_texts, tok)
    train = build_instances(train_ids, cfg, rng)
    evaluation = build_instances(tokenize_documents(eval_texts, tok), cfg, rng) if eval_texts else []
    if not train:
        raise InputError(f"{args.corpus}: the corpus gave no training pairs (is it too small?)")
    rows = args.max_seq_length if args.pack else None
    return PretrainData(PretrainingDataset(train, tok, rows), PretrainingDataset(evaluation, tok, rows) if evaluation else None,
                        PretrainingCollator(tok, cfg, seed=args.seed, pair_label=pair_label), cfg,
                        len(train_texts), len(eval_texts),
                        fingerprint, train_ids)


def pretraining_metrics(out, batch) -> dict[str, float]:
    """MLM accuracy over the masked tokens, and NSP (BERT: ``next_sentence_label``) or SOP (ALBERT:
    ``sentence_order_label``) accuracy over the pairs of one batch, each under its own name."""
    metrics = {}
    if out.masked_index is not None and out.masked_index.numel():
        targets = batch["labels"].reshape(-1)[out.masked_index]
        metrics["mlm_acc"] = (out.prediction_logits.argmax(-1) == targets).float().mean().item()
        metrics["mlm_loss"] = out.mlm_loss.item()
    if out.nsp_loss is not None:
        arch = next(a for a in ARCHITECTURES.values() if a.pair_label in batch)
        metrics[f"{arch.pair_task}_acc"] = (out.seq_relationship_logits.argmax(-1) == batch[arch.pair_label]
                                              ).float().mean().item()
        metrics[f"{arch.pair_task}_loss"] = out.nsp_loss.item()
    return metrics


def _record_callback(args: PretrainArgs, out: Path, train_ds, eval_ds, collate, tok: Tokenizer, resume: bool):
    """The explorer's recorder over the first held-out (else training) pairs, masked with the run's seed.
    Packed rows are shown by their first chunk: one document per sample, as the explorer draws them."""
    from ..recording import Recorder, RecordCallback, RecordSpec

    spec = RecordSpec.parse(args.record)
    source = eval_ds or train_ds
    rows = list(spec.samples) if spec.samples else [0, 1]
    picked = [first_chunk(source[i]) for i in range(min(len(source), max(rows) + 1))]
    samples = collate(picked, torch.Generator().manual_seed(args.seed))
    return RecordCallback(Recorder(out, samples, tok, spec, resume=resume, say=say))


def first_chunk(item: dict) -> dict:
    """A packed row's first chunk as an item of its own (other items as they are)."""
    if "position_ids" not in item:
        return item
    end = next((i for i, p in enumerate(item["position_ids"][1:], 1) if p == 0), len(item["input_ids"]))
    return {"input_ids": item["input_ids"][:end], "token_type_ids": item["token_type_ids"][:end]}


LIMITS = ("steps", "epochs", "minutes")  # when a run stops: on resume, new (larger) totals extend it


def _resume_or_say_done(trainer: Trainer, args: PretrainArgs, out: Path, extended: tuple[str, ...]) -> dict | None:
    """Load the checkpoint of a resumed run; None when it has steps to go, else the run's result as it
    stands (a run that already reached its limits). A new limit that is already reached is an error."""
    if find_checkpoint(out) is None:
        say(f"{out} has no checkpoint yet: starting from step 0")
        return None
    step = trainer.resume()
    reason = trainer.stop_reason()
    if reason is None:
        say(f"resuming {out} at step {step}" + (f" (extended: {', '.join(f'--{k} {getattr(args, k)}' for k in extended)})"
                                               if extended else ""))
        return None
    if extended:
        raise InputError(f"{out} is already at step {step} ({reason}; limits {_limits(asdict(args))}): give a "
                         "larger total to extend it")
    _say_finished(out, step, reason, asdict(args))
    result_file = out / RESULT_FILE
    return read_json_object(result_file) if result_file.is_file() else {"step": step, "stopped_by": reason}


def _limits(args: dict) -> str:
    return ", ".join(f"--{k} {args[k]}" for k in LIMITS if args.get(k) is not None)


def _say_finished(out: Path, step: int, reason: str, args: dict) -> None:
    say(f"{out} already finished at step {step} ({reason}; limits {_limits(args)}): nothing to do. To train on, "
        "give a larger total with --steps, --epochs or --minutes")


def _finished_result(out: Path) -> dict | None:
    """The result of a run that finished and has not trained since (its result's step is its checkpoint's),
    read without the corpus, so that ``--resume`` of a finished run says so at once; None otherwise (the
    checkpoint decides then, once the corpus is read)."""
    ckpt, result_file = find_checkpoint(out), out / RESULT_FILE
    if ckpt is None or not result_file.is_file():
        return None
    step = checkpoint_step(ckpt)
    try:
        result = read_json_object(result_file)
    except InputError:  # a damaged result: the full resume goes on from the checkpoint
        return None
    return result if step is not None and result.get("step") == step and result.get("stopped_by") else None


HEADS = {"MLM head": ("predictions.",), "pair head": ("seq_relationship.", "sop_classifier.")}  # key parts


def build_model(args: PretrainArgs, tok: Tokenizer, resume: bool = False) -> torch.nn.Module:
    """A new model of ``args.preset`` (seeded), or with ``args.from_model`` that model's weights in the
    pretraining class: a head the checkpoint lacks (MiniLM ships none) is initialised as BERT does
    (normal(0, 0.02), zero biases, LayerNorm 1) with the MLM decoder tied to the word embeddings."""
    arch = args.architecture
    torch.manual_seed(args.seed)
    if args.from_model is None:
        overrides = dict(args.config_overrides)
        overrides.setdefault("max_position_embeddings", max(512, args.max_seq_length))
        config = arch.config_class.preset(args.preset, vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
                                          **overrides)
        return arch.pretraining(config)
    source = resolve_model_path(args.from_model)
    model, report = load_as_with_report(source, arch.pretraining)  # new heads: said below in words
    if model.config.vocab_size != tok.vocab_size:
        raise InputError(f"--from {args.from_model}: its embeddings have {model.config.vocab_size} rows but the "
                         f"vocabulary {args.vocab} has {tok.vocab_size} tokens: continue with the model's own "
                         "vocabulary (leave out --vocab)")
    if args.max_seq_length > model.config.max_position_embeddings:
        raise InputError(f"--max-length {args.max_seq_length} is longer than {args.from_model}'s "
                         f"{model.config.max_position_embeddings} positions")
    new = [name for name, parts in HEADS.items() if any(p in k for k in report.newly_initialized for p in parts)]
    if new and not resume:  # a resumed run loads its trained heads from the checkpoint next
        say(f"{args.from_model} has no {' and no '.join(new)}: initialised as BERT does (normal(0, 0.02), the "
            "MLM decoder tied to the word embeddings), trained from here")
    return model.train()


def pretrain(args: PretrainArgs, resume: bool = False, progress: bool = True, expect: dict | None = None,
             extended: tuple[str, ...] = (), threads: int | None = None, callbacks: Sequence = ()) -> dict:
    """Pretrain a BertForPreTraining (``args.arch`` bert) or an AlbertForPreTraining (albert) as ``args`` say;
    ``resume`` continues ``args.out``'s checkpoint.

    A new run refuses an ``out`` that holds files unless ``args.overwrite`` (then it is replaced whole,
    once the corpus and vocabulary have been read). ``expect``: see :func:`build_datasets`. ``extended``:
    the limits (of :data:`LIMITS`) a resume changed, which must then let the run go on. ``threads``: the
    intra-op threads of this process (default: :func:`glassbert.threads.choose_threads` for the preset).
    ``callbacks``: more Trainer callbacks (bench/quality.py keeps the weights at fixed minutes with one).
    """
    out = Path(args.out)
    if not resume:
        check_target_dir(out, overwrite=args.overwrite, resume_hint=f"--resume {out}",
                         reads=(("--corpus", args.corpus), ("--vocab", args.vocab), ("--from", args.from_model)))
        args.corpus = str(Path(args.corpus).resolve())  # so a resume from anywhere finds it
        args.vocab = str(Path(args.vocab).resolve()) if Path(args.vocab).exists() else args.vocab
    tok = Tokenizer.from_pretrained(args.vocab)
    data = build_datasets(args, tok, expect)
    train_ds, eval_ds, collate = data.train, data.eval, data.collate
    arch = args.architecture
    model = build_model(args, tok, resume)
    chosen = set_threads(threads, model.config.hidden_size)
    if args.schedule is None:  # chosen once: an extension on resume keeps the run's kind of schedule
        args.schedule = "linear"  # over the steps, the epochs or the minutes (by the fraction of the budget spent)
    what = f"{args.from_model} ({args.arch})" if args.from_model else f"{args.arch} {args.preset}"
    objective = "MLM" if args.task == "mlm" else f"MLM + {args.task.upper()}"
    unit = "packed rows" if args.pack else "chunks" if args.task == "mlm" else "pairs"
    say(f"pretraining {what} ({model.num_parameters() / 1e6:.1f} M parameters, {objective}) on {args.corpus}: "
        f"{data.train_documents} documents → {len(train_ds)} {unit}; held out {data.eval_documents} documents → "
        f"{len(eval_ds) if eval_ds else 0} {unit}; vocabulary {tok.vocab_size}; {chosen}")
    setup_seconds = 0.0  # counted in the run's time (--minutes), as its first step would be
    if args.init_embeddings == "ppmi" and (not resume or find_checkpoint(out) is None):
        say("word embeddings: the training text's co-occurrence vectors (PPMI + SVD; --init-embeddings random: "
            "BERT's random start) …")
        start = time.perf_counter()
        seen = init_word_embeddings(model, data.train_ids, seed=args.seed)
        setup_seconds = time.perf_counter() - start
        say(f"  set for the {seen} of {tok.vocab_size} pieces the text uses, the rest random, in "
            f"{setup_seconds:.1f} s (counted in the run's time)")
    data.train_ids.clear()  # read by the start only: the run trains on the pairs, so their memory goes now

    schedule = args.schedule
    train_cfg = TrainConfig(
        out_dir=out, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio if schedule == "linear" else None,
        warmup_steps=0 if schedule == "linear" else 100, schedule=schedule,
        max_steps=args.steps, epochs=args.epochs, minutes=args.minutes, seed=args.seed,
        log_every=args.log_every, eval_every=args.eval_every if eval_ds else None,
        save_every=args.save_every, precision=args.precision, progress=progress, overwrite=not resume,
        setup_seconds=setup_seconds)
    recorder = [_record_callback(args, out, train_ds, eval_ds, collate, tok, resume)] if args.record else []
    trainer = Trainer(model, train_ds, collate, train_cfg, eval_dataset=eval_ds,
                      metrics_fn=pretraining_metrics, callbacks=[*recorder, *callbacks])
    if resume:
        done = _resume_or_say_done(trainer, args, out, extended)
        if done is not None:
            return done
    before = None
    if args.from_model and not resume and eval_ds is not None:  # what the model knew of this text before
        model.eval()
        before = trainer.mean_eval_loss()
        model.train()
        say(f"held-out before training ({args.from_model} as loaded): MLM accuracy {before.get('mlm_acc', 0):.3f}, "
            f"loss {before.get('mlm_loss', 0):.3f}")
    if is_main_process():  # only now that nothing can refuse the run: its files change from here on
        if not resume and args.overwrite:
            replace_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            tok.save_pretrained(out)  # the run's own copy of its vocabulary: resume reads it from here
        atomic_write_json(out / ARGS_FILE, {k: v for k, v in asdict(args).items() if k not in ("out", "overwrite")},
                          indent=2)
        atomic_write_json(out / DATA_FILE, {"corpus": args.corpus, **data.fingerprint}, indent=2)
    summary = trainer.fit(resume=resume)
    final_eval = summary.eval or {}  # the Trainer evaluates at the end (on every rank, before leaving DDP)
    if not is_main_process():
        return {}
    model.save_pretrained(out, tokenizer=tok)
    result = {"step": summary.step, "stopped_by": summary.stopped_by, "elapsed_s": round(summary.elapsed, 1),
              "train": summary.train, "eval": final_eval}
    if before is not None:
        result["before"] = before
    report = None
    if final_eval and eval_ds is not None:
        examples = fill_mask_examples(model, tok, eval_ds, n=5, seed=args.seed)
        report = run_report(final_eval, None if args.task == "mlm" else arch.pair_task, eval_ds, examples, unit)
        result["report"] = report.to_dict()
    atomic_write_json(out / RESULT_FILE, result, indent=2)
    say(f"stopped after step {summary.step} ({summary.stopped_by}), {summary.elapsed / 60:.1f} min")
    for line in report.lines() if report else []:
        say(line)
    say(f"model: {out} (transformers-style dir); curves: {out / PLOT_FILE}; try: glassbert fill-mask {out} "
        '"... [MASK] ..."')
    return result


def resume_pretraining(run_dir: str | Path, progress: bool = True, corpus: str | None = None,
                       steps: int | None = None, epochs: int | None = None, minutes: float | None = None,
                       threads: int | None = None, **changes) -> dict:
    """Continue the run in ``run_dir`` from its last checkpoint with the arguments it was started with.

    The run continues in ``run_dir`` wherever it now is (a copied or moved run resumes in place). Its
    vocabulary is read from ``run_dir``; ``corpus`` names the corpus again when it has moved (it must be
    the same text: its fingerprint is checked).

    ``steps``/``epochs``/``minutes`` extend the run: each is a new total for the whole run (minutes count
    the training time of every session, saved with each checkpoint), larger than what is done. The linear
    schedule is recomputed for the new total, as if the run had been planned that long (the learning rate
    rises again to that curve); a run started by an older glassbert with ``minutes`` alone keeps its
    constant rate.
    """
    run_dir = Path(run_dir)
    path = run_dir / ARGS_FILE
    if not path.is_file():
        raise MissingError(f"{run_dir}: no {ARGS_FILE}: not a glassbert pretraining run")
    saved = read_json_object(path)
    if "amp" in saved:  # a run from before --precision: its TrainConfig.amp spelling
        saved["precision"] = saved_precision(saved)
        del saved["amp"]
    unknown = sorted(set(saved) - {f.name for f in fields(PretrainArgs)})
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown}: was it written by a newer glassbert?")
    saved.update({k: v for k, v in changes.items() if v is not None})
    if "init_embeddings" not in saved and saved.get("from_model") is None:  # from before --init-embeddings
        saved["init_embeddings"] = "random"
    if saved.get("schedule") is None:  # a run from before the schedule was saved: as it was started
        saved["schedule"] = "linear" if (saved.get("steps") or saved.get("epochs")) else "constant"
    limits = {"steps": steps, "epochs": epochs, "minutes": minutes}
    extended = tuple(k for k, v in limits.items() if v is not None and v != saved.get(k))
    saved.update({k: limits[k] for k in extended})
    saved["out"] = str(run_dir)
    finished = None if extended or corpus is not None else _finished_result(run_dir)
    if finished is not None:  # said before the corpus is looked for or read (one given is checked first)
        _say_finished(run_dir, finished["step"], finished["stopped_by"], saved)
        return finished
    data_file = run_dir / DATA_FILE
    expect = read_json_object(data_file) if data_file.is_file() else None
    if corpus is not None:
        saved["corpus"] = str(Path(corpus).resolve())
    elif not Path(saved.get("corpus", "")).exists():
        raise MissingError(f"{run_dir} was trained on {saved.get('corpus')!r}, which is not there any more: "
                           "pass --corpus PATH to resume on the same text in its new place")
    if (run_dir / "vocab.txt").is_file() or (run_dir / "tokenizer.json").is_file():
        saved["vocab"] = str(run_dir)
    try:
        args = PretrainArgs(**saved)
    except TypeError as e:
        raise InputError(f"{path}: {e}") from None
    return pretrain(args, resume=True, progress=progress, expect=expect, extended=extended, threads=threads)


__all__ = ["PretrainArgs", "pretrain", "resume_pretraining", "pretraining_metrics", "split_documents",
           "build_datasets", "PretrainData", "corpus_fingerprint", "ARGS_FILE", "DATA_FILE", "RESULT_FILE"]
