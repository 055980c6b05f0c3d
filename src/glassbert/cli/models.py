"""Commands about models themselves: tokenize, params, export."""
from __future__ import annotations

import click

from . import base as opt
from .base import CONTEXT, examples, main


# ─── tokenize ───────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert tokenize minilm "I love cats!" "He hates pineapple pizza."',
    'glassbert tokenize minilm "The cat chased the mouse." --pair "It was a fast chase."'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@opt.pair(help="The second text of a pair, once per text.")
@opt.max_length(help="Truncate to this many tokens.")
def tokenize(model: str, texts: tuple[str, ...], pairs: tuple[str, ...], max_length: int | None) -> None:
    """Show word pieces, ids, segment ids and the attention mask of TEXTS."""
    from ..tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(model)
    batch = tok(list(texts), list(pairs) if pairs else None, padding=True, max_length=max_length)
    for i in range(len(texts)):
        tokens = tok.convert_ids_to_tokens(batch["input_ids"][i])
        click.echo(f"[{i}] " + " ".join(tokens))
    click.echo("")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        click.echo(f"{key} : {batch[key]}\n")


# ─── parameter counts ───────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert params", "glassbert params tiny base --vocab-size 8000", "glassbert params albert-large minilm"))
@click.argument("presets", nargs=-1)
@click.option("--vocab-size", type=click.IntRange(1), default=None,
              help="Count with this vocabulary (default: each preset's own, 30522 as bert-base-uncased).")
def params(presets, vocab_size) -> None:
    """Parameters by component of BERT and ALBERT presets (or model directories), side by side: where
    ALBERT's factorized embeddings and shared layers save. Default: base and large."""
    from ..params import format_table, named_configs
    with opt.bad_parameter("PRESET"):
        configs = named_configs(presets or ("base", "large"), vocab_size)
    click.echo(format_table(configs))


@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert export minilm --out models/minilm-st --sentence-transformers",
    "glassbert export runs/foods-minilm --out models/foods-classifier"))
@click.argument("model")
@opt.out(required=True, type=click.Path(file_okay=False), help="The model directory to write.")
@click.option("--sentence-transformers", "sentence_transformers", is_flag=True,
              help="Also write modules.json, 1_Pooling/ and sentence_bert_config.json: SentenceTransformer(OUT) "
                   "and text-embeddings-inference load it.")
@opt.pooling(type=click.Choice(["mean", "cls"]),
             help="With --sentence-transformers: how token vectors become one sentence vector, their mean or "
                  "[CLS]'s (sentence-transformers' Pooling has no pooler).")
@opt.normalize(help="With --sentence-transformers: unit-length vectors (a Normalize module).")
@opt.overwrite()
def export(model, out, sentence_transformers, pooling, normalize, overwrite) -> None:
    """Write MODEL (a directory, a run or an alias) as a model directory that transformers (and, with
    --sentence-transformers, sentence-transformers) load: config.json, model.safetensors, the tokenizer."""
    from ..registry import export_model
    path = export_model(model, out, sentence_transformers=sentence_transformers, pooling=pooling,
                        normalize=normalize, overwrite=overwrite)
    click.echo(f"wrote {path}: " + ", ".join(sorted(p.name for p in path.iterdir())))
    if sentence_transformers:
        click.echo(f"load it with: SentenceTransformer({str(path)!r})")
