"""Commands of semantic search: index (embed a file of texts into an index directory), search (its nearest texts)."""
from __future__ import annotations

from pathlib import Path

import click

from ..runfiles import check_target_file
from . import base as opt
from .base import CONTEXT, examples, main


@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert index minilm --input sentences.txt --out my-index",
    "glassbert index minilm --input reviews.csv --text-column review --out reviews-index --batch-size 64",
    "glassbert index minilm --input many.txt --out big-index --approximate"))
@click.argument("model")
@opt.input_file(required=True, help="The texts to index: a text file (one text per line) or a CSV/TSV/JSONL file "
                                    "(--text-column).")
@opt.text_column(help="--input's column (CSV/TSV) or field (JSONL).")
@opt.out(required=True, type=click.Path(file_okay=False),
         help="The index directory to write: vectors.npy, texts.jsonl, index.json (and hnsw.faiss).")
@opt.pooling()
@opt.normalize(help="Unit-length vectors: scores are cosines (else dot products).")
@opt.batch_size(default=32)
@opt.max_length()
@opt.precision("fp32")
@click.option("--approximate", is_flag=True,
              help="Also build a faiss HNSW graph (hnsw.faiss) that search walks instead of every row: far faster "
                   "for large indexes, may miss a neighbour (needs faiss-cpu: pip install 'glassbert[search]').")
@opt.overwrite()
@opt.threads()
def index(model, input_file, text_column, out, pooling, normalize, batch_size, max_length, precision, approximate,
          overwrite, threads) -> None:
    """Embed the texts of --input with MODEL into an index directory that `glassbert search` reads."""
    from ..search import Index, build_index
    path = build_index(model, input_file, out, pooling=pooling, normalize=normalize, max_length=max_length,
                       text_column=text_column, batch_size=batch_size, precision=precision, threads=threads,
                       overwrite=overwrite, approximate=approximate)
    built = Index.load(path)
    click.echo(f"wrote an {'approximate (HNSW) ' if approximate else ''}index of {len(built)} texts × "
               f"{built.info['dim']} ({pooling} pooling) to {path}")


@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert search my-index "how do I reset my password?"',
    'glassbert search my-index "cheap flights" "hotel near the station" --top-k 3',
    "glassbert search my-index --input questions.txt --out results.jsonl"))
@click.argument("index_dir", metavar="INDEX")
@click.argument("queries", nargs=-1)
@opt.input_file(help="Queries: a text file (one per line) or a CSV/TSV/JSONL file (--text-column).")
@opt.text_column(help="--input's column (CSV/TSV) or field (JSONL).")
@opt.top_k(default=10, show_default=True, help="Texts to give for each query, nearest first.")
@opt.out(type=click.Path(dir_okay=False), help="Write .jsonl: one {query, rank, text, score, index} per hit.")
@opt.precision("fp32")
@opt.overwrite()
@opt.threads()
def search(index_dir, queries, input_file, text_column, top_k, out, precision, overwrite, threads) -> None:
    """The texts of INDEX nearest each query (QUERIES or --input's), embedded by the index's own model."""
    from ..runfiles import write_jsonl
    from ..search import Index, format_hits, hit_rows
    from ..textfiles import read_input_texts
    if out is not None:
        if Path(out).suffix != ".jsonl":
            raise click.BadParameter(f"{out}: use a .jsonl file name", param_hint="--out")
        check_target_file(out, overwrite=overwrite)
    items = list(queries) + (read_input_texts(input_file, text_column)[0] if input_file else [])
    if not items:
        raise click.UsageError("give QUERIES or --input FILE")
    found = Index.load(index_dir, precision=precision, threads=threads).search(items, top_k=top_k)
    if out is not None:
        write_jsonl(out, hit_rows(items, found))
        click.echo(f"wrote {sum(len(h) for h in found)} hits for {len(items)} queries to {out}")
    if out is None or len(items) <= 20:
        click.echo(format_hits(items, found))
