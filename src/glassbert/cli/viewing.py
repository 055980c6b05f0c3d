"""Commands that show what a model does: trace, explain, explore."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..runfiles import check_target_file
from . import base as opt
from .base import CONTEXT, examples, main

_TWO_TEXTS = "\0two --text values"  # explore's --pair given alone (its old spelling): the two --text are one pair


# ─── trace ──────────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert trace minilm "I love cats!" "He hates pineapple pizza."',
    'glassbert trace minilm "I love cats!" --values --layers 1,6'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--values", is_flag=True, help="Add mean/std/min/max of every step.")
@click.option("--layers", default=None, help="Layers to print in full, e.g. 1,12 or 1-3 (default all).")
@opt.max_length()
@opt.precision("fp32", int8=False)
@opt.threads()
def trace(model: str, texts: tuple[str, ...], values: bool, layers: str | None, max_length: int | None,
          precision: str, threads: int | None) -> None:
    """Print the forward pass of TEXTS step by step with every tensor's shape."""
    from ..trace import parse_layers, trace_texts
    with opt.bad_parameter("--layers"):
        chosen = parse_layers(layers)
    trace_texts(model, list(texts), values=values, layers=chosen, echo=click.echo, max_length=max_length,
                precision=precision, threads=threads)


# ─── attribution ────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert explain runs/foods-minilm "the soup was great and the service friendly"',
    'glassbert explain runs/foods-minilm "not good at all" --method conductance --out why.png',
    'glassbert explain runs/demo "the [MASK] chased the mouse" --pair "it was a fast chase" --out why.json',
    'glassbert explain runs/demo "the sun is hot" --pair "the stars are bright" --target IsNext',
    'glassbert explain runs/ner "alice visited paris" --target B-LOC@3',
    'glassbert explain runs/qa "who went to paris ?" --pair "alice went to paris ." --target start'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@opt.pair()
@click.option("--target", default=None,
              help="What to explain: a label name or index, a word for a [MASK], IsNext/NotNext (InOrder/Swapped "
                   "for ALBERT), a tag, start/end; NAME@POSITION or @POSITION picks the token (tokens as shown, "
                   "[CLS] = 0). Default: the model's own prediction.")
@click.option("--method", type=click.Choice(["ig", "conductance"]), default="ig", show_default=True,
              help="ig: integrated gradients per token; conductance: per encoder layer and token.")
@click.option("--n-steps", "steps", cls=opt.Option, aliases=("--steps",), type=click.IntRange(2), default=None,
              help="Integration steps (default: doubled from 16 until the convergence delta is small).")
@click.option("--parts", is_flag=True, help="ig: also split each token's attribution into word, position and "
                                            "segment embeddings.")
@opt.max_length(help="Truncate to this many tokens.")
@opt.out("outs", multiple=True, type=click.Path(dir_okay=False),
         help="Write FILE.png, a picture (bars for ig, a layers × tokens map for conductance), or FILE.json, the "
              "numbers; give --out twice for both.")
@click.option("--png", cls=opt.Option, alias_of="--out", hidden=True, type=click.Path(dir_okay=False))
@click.option("--json", "json_file", cls=opt.Option, alias_of="--out", hidden=True, type=click.Path(dir_okay=False))
@click.option("--color/--no-color", default=None, help="Colour the tokens (default: when the output is a terminal).")
@opt.precision("fp32", int8=False)
@opt.overwrite()
@opt.threads()
def explain(model, texts, pairs, target, method, steps, parts, max_length, outs, png, json_file, color, precision,
            overwrite, threads) -> None:
    """Which tokens (and, with --method conductance, which layers) made MODEL's prediction on TEXTS."""
    from ..explain import explain as run
    from ..explain import plot, render_terminal, write_json
    for path in outs:
        suffix = Path(path).suffix.lower()
        if suffix not in (".png", ".json"):
            raise click.BadParameter(f"{path}: give a .png (a picture) or a .json (the numbers) file name",
                                     param_hint="--out")
        if suffix == ".png" and png or suffix == ".json" and json_file:
            raise click.UsageError(f"two {suffix} files to write: give --out once per kind")
        png, json_file = (path, json_file) if suffix == ".png" else (png, path)
    for path in (png, json_file):
        if path:  # before the work, not after
            check_target_file(path, overwrite=overwrite, option="--out")
    if png and Path(png).suffix.lower() != ".png":
        raise click.BadParameter(f"{png}: give a .png file name", param_hint="--out")
    if parts and method != "ig":
        raise click.UsageError("--parts splits integrated gradients: use it with --method ig")
    if len(pairs) not in (0, 1, len(texts)):
        raise click.UsageError(f"{len(texts)} texts but {len(pairs)} --pair values: give one for all, "
                               "or one per text")
    pair = None if not pairs else pairs[0] if len(pairs) == 1 else list(pairs)
    results = run(model, list(texts), target=target, method=method, steps=steps, pair=pair, parts=parts,
                  max_length=max_length, precision=precision, threads=threads)
    color = sys.stdout.isatty() if color is None else color
    click.echo("\n\n".join(render_terminal(r, color=color) for r in results), color=color)  # click strips colour off a pipe unless told
    if png:
        click.echo(f"wrote {plot(results, png, overwrite=overwrite)}")
    if json_file:
        click.echo(f"wrote {write_json(results, json_file, overwrite=overwrite)}")


# ─── explorer ───────────────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert explore runs/demo",
    'glassbert explore minilm --text "The cat chased the mouse." --text "It was a fast chase."',
    'glassbert explore minilm --text "The cat chased the mouse." --pair "It was a fast chase."',
    "glassbert explore runs/demo --export demo.html"))
@click.argument("target")
@click.option("--text", "texts", multiple=True, help="Text(s) to record a snapshot of a model for.")
@opt.pair("pair", multiple=False, is_flag=False, flag_value=_TWO_TEXTS, metavar="TEXT",
          old=("--pair alone: the two --text values are one pair",),
          help="The second text of a pair with the one --text: the model is recorded on the sentence pair.")
@opt.out(type=click.Path(file_okay=False),
         help="Keep the model snapshot in this directory (default: a temporary one, deleted on exit).")
@click.option("--model", "whatif_model", default=None,
              help="The model the page's live what-if runs (default: the run's own, or TARGET when it is a model).")
@opt.port(default=8765)
@opt.host()
@click.option("--export", "export_file", type=click.Path(dir_okay=False),
              help="Write the page as one self-contained HTML file instead of serving it.")
@opt.max_mb(help="The --export file's size bound in MB (default 25). A bound that holds the model's weights lets "
                 "the page run the what-if itself: MiniLM needs about 115 (float32, exact) or 56 (float16-rounded "
                 "weights); a smaller one leaves them out and the page says so.")
@click.option("--open/--no-open", "open_browser", default=False, help="Open a browser tab.")
@opt.max_length(help="Truncate the --text inputs to this many tokens (default: the model's limit).")
@opt.precision("fp32", note=" (How a model is recorded on --text.)", int8=False)
@opt.overwrite()
@opt.threads()
def explore(target, texts, pair, out, whatif_model, port, host, export_file, max_mb, open_browser, max_length,
            precision, overwrite, threads) -> None:
    """Watch every tensor of a recorded run (or of a model on --text) in the browser."""
    from ..explorer import explore as run
    from ..recording import has_recording
    if pair == _TWO_TEXTS:  # the old spelling: --text A --text B --pair
        pair = True
    elif pair is not None:
        if len(texts) != 1:
            raise click.UsageError(f"--pair is the second text of one pair: give one --text with it, not {len(texts)}")
        texts, pair = (texts[0], pair), True
    else:
        pair = False
    if export_file:
        check_target_file(export_file, overwrite=overwrite, option="--export")
    elif max_mb is not None:
        raise click.UsageError("--max-mb bounds the --export file: give --export FILE with it")
    if out and not texts and has_recording(Path(target)):
        raise click.UsageError(f"{target} is a recorded run: --out applies only when a model is recorded")
    run(target, texts, pair=pair, out=out, model=whatif_model, export=export_file, export_mb=max_mb, host=host, port=port,
        open_browser=open_browser, overwrite=overwrite, echo=click.echo, max_length=max_length, precision=precision,
        threads=threads)
