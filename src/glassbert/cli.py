"""The `glassbert` command: thin wrappers, one library function each.

MODEL arguments take a model directory (transformers-style or our own run) or an alias: `minilm`.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


def _examples(*lines: str) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class _Group(click.Group):
    """Turns our clear errors (bad paths, bad input) into one red line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (FileNotFoundError, ValueError, TypeError, KeyError, RuntimeError) as e:
            if isinstance(e, (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)):
                raise
            if logging.getLogger("glassbert").isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Log more (and show tracebacks).")
@click.version_option(package_name="glassbert")
def main(verbose: bool) -> None:
    """glassbert: BERT from scratch, as a glass box: pretrain, fine-tune, embed, trace, explore."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _load_tokenizer_and_model(model: str, cls_name: str = "BertModel"):
    from . import heads
    from .tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(model)
    cls = heads.TASK_MODELS[cls_name]
    return tok, cls.from_pretrained(model)


def _read_lines(path: str | None) -> list[str]:
    if path is None:
        return []
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    return [line.rstrip("\n") for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


# ─── tokenize ───────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert tokenize minilm "I love cats!" "He hates pineapple pizza."',
    'glassbert tokenize minilm "The cat chased the mouse." --pair "It was a fast chase."'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--pair", "pairs", multiple=True, help="Second segment for each text (repeat per text).")
@click.option("--max-length", type=int, default=None, help="Truncate to this many tokens.")
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
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        return out
    except ValueError:
        raise click.BadParameter(f"{spec!r}: use numbers like 1,12 or 1-3") from None


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert trace minilm "I love cats!" "He hates pineapple pizza."',
    'glassbert trace minilm "I love cats!" --values --layers 1,6'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--values", is_flag=True, help="Add mean/std/min/max of every step.")
@click.option("--layers", default=None, help="Layers to print in full, e.g. 1,12 or 1-3 (default all).")
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
_pooling = click.option("--pooling", type=click.Choice(["mean", "cls", "pooled"]), default="mean",
                        show_default=True, help="How token vectors become one sentence vector.")


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert embed minilm "nice movie indeed" "I love python programming" --out vecs.npy',
    "glassbert embed minilm --input sentences.txt --out vecs.jsonl --batch-size 64"))
@click.argument("model")
@click.argument("texts", nargs=-1)
@click.option("--input", "input_file", type=click.Path(dir_okay=False), help="A text file, one text per line.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write .npy (N, H) or .jsonl ({text, vector}).")
@_pooling
@click.option("--normalize/--no-normalize", default=True, show_default=True, help="Unit-length vectors.")
@click.option("--batch-size", type=int, default=32, show_default=True)
def embed(model, texts, input_file, out, pooling, normalize, batch_size) -> None:
    """Sentence embeddings of TEXTS (or of --input's lines)."""
    import numpy as np

    from .embed import Embedder
    items = list(texts) + _read_lines(input_file)
    if not items:
        raise click.UsageError("give TEXTS or --input FILE")
    vectors = Embedder(model).encode(items, pooling=pooling, normalize=normalize, batch_size=batch_size)
    if out is None:
        for text, v in zip(items, vectors):
            head = " ".join(f"{x:+.4f}" for x in v[:6])
            click.echo(f"{text[:50]!r:54} ({v.shape[0]},) [{head} …]")
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, vectors)
    elif path.suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as f:
            for text, v in zip(items, vectors):
                f.write(json.dumps({"text": text, "vector": [round(float(x), 7) for x in v]}) + "\n")
    else:
        raise click.BadParameter(f"{out}: use a .npy or .jsonl file name", param_hint="--out")
    click.echo(f"wrote {len(items)} × {vectors.shape[1]} vectors to {path}")


@main.command(context_settings=CONTEXT, epilog=_examples(
    'glassbert similarity minilm "The fair was packed with fun rides." "We went to the carnival." '
    '"The judge was fair."'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@_pooling
def similarity(model, texts, pooling) -> None:
    """A cosine-similarity table between TEXTS."""
    from .embed import Embedder, cosine_matrix
    if len(texts) < 2:
        raise click.UsageError("give at least two texts to compare")
    sims = cosine_matrix(Embedder(model).encode(list(texts), pooling=pooling))
    width = 8
    click.echo(" " * 4 + "".join(f"{f'[{j}]':>{width}}" for j in range(len(texts))))
    for i, row in enumerate(sims):
        click.echo(f"[{i}] " + "".join(f"{x:>{width}.3f}" for x in row) + f"   {texts[i]}")


if __name__ == "__main__":
    sys.exit(main())
