"""Commands that apply a model: embed, similarity, fill-mask, classify, tag, answer, serve."""
from __future__ import annotations

from pathlib import Path

import click

from ..embed import VECTOR_FORMATS
from ..runfiles import check_target_file
from ..tasks import TAG_FORMATS
from . import base as opt
from .base import CONTEXT, examples, main


# ─── embed / similarity ─────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert embed minilm "nice movie indeed" "I love python programming" --out vecs.npy',
    "glassbert embed minilm --input sentences.txt --out vecs.jsonl --batch-size 64",
    "glassbert embed minilm --input reviews.csv --text-column review --out vecs.npy"))
@click.argument("model")
@click.argument("texts", nargs=-1)
@opt.input_file()
@opt.text_column(help="--input's column (CSV/TSV) or field (JSONL).")
@opt.out(type=click.Path(dir_okay=False), help="Write .npy (N, H) or .jsonl ({text, vector}).")
@opt.pooling()
@opt.normalize()
@opt.batch_size(default=32)
@opt.max_length()
@opt.precision("fp32")
@opt.overwrite()
@opt.threads()
def embed(model, texts, input_file, text_column, out, pooling, normalize, batch_size, max_length, precision,
          overwrite, threads) -> None:
    """Sentence embeddings of TEXTS (or of --input's texts)."""
    from ..embed import write_vectors
    from ..pipelines import pipeline
    from ..textfiles import read_input_texts
    if out is not None:  # before the work, not after
        if Path(out).suffix not in VECTOR_FORMATS:
            raise click.BadParameter(f"{out}: use a {' or '.join(VECTOR_FORMATS)} file name", param_hint="--out")
        check_target_file(out, overwrite=overwrite)
    items = list(texts) + (read_input_texts(input_file, text_column, strip=False)[0] if input_file else [])
    if not items:
        raise click.UsageError("give TEXTS or --input FILE")
    vectors = pipeline("feature-extraction", model, precision=precision, threads=threads, max_length=max_length)(
        items, pooling=pooling, normalize=normalize, batch_size=batch_size)
    if out is None:
        for text, v in zip(items, vectors):
            head = " ".join(f"{x:+.4f}" for x in v[:6])
            click.echo(f"{text[:50]!r:54} ({v.shape[0]},) [{head} …]")
        return
    path = write_vectors(out, items, vectors)
    click.echo(f"wrote {len(items)} × {vectors.shape[1]} vectors to {path}")


@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert similarity minilm "The fair was packed with fun rides." "We went to the carnival." '
    '"The judge was fair."'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@opt.pooling()
@opt.max_length()
@opt.precision("fp32")
@opt.threads()
def similarity(model, texts, pooling, max_length, precision, threads) -> None:
    """A cosine-similarity table between TEXTS."""
    from ..pipelines import pipeline
    if len(texts) < 2:
        raise click.UsageError("give at least two texts to compare")
    sims = pipeline("feature-extraction", model, precision=precision, threads=threads,
                    max_length=max_length).similarity(texts, pooling=pooling)
    width = 8
    click.echo(" " * 4 + "".join(f"{f'[{j}]':>{width}}" for j in range(len(texts))))
    for i, row in enumerate(sims):
        click.echo(f"[{i}] " + "".join(f"{x:>{width}.3f}" for x in row) + f"   {texts[i]}")


@main.command("fill-mask", context_settings=CONTEXT, epilog=examples(
    'glassbert fill-mask runs/sotu-mini "the [MASK] of the union is strong"',
    'glassbert fill-mask runs/demo "the [MASK] chased the mouse" --top-k 3'))
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@opt.top_k(default=5, show_default=True, help="Words to give for each [MASK], most likely first.")
@opt.max_length()
@opt.precision("fp32")
@opt.threads()
def fill_mask(model, texts, top_k, max_length, precision, threads) -> None:
    """The most likely words for each [MASK] in TEXTS, with probabilities."""
    from ..pipelines import pipeline
    for p in pipeline("fill-mask", model, precision=precision, threads=threads, max_length=max_length).run(list(texts), top_k=top_k):
        click.echo(f"{p.text}  (token {p.position})")
        for token, prob in p.candidates:
            click.echo(f"   {prob:7.2%}  {token}")


@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert classify runs/foods-minilm "Best coffee I have ever had." "Arrived stale and broken."',
    "glassbert classify runs/foods-minilm --input reviews.csv --text-column review --out predictions.csv",
    'glassbert classify runs/nli "A man is playing a guitar." --pair "Someone makes music."'))
@click.argument("model")
@click.argument("texts", nargs=-1)
@opt.pair(help="The second text of a pair, for a classifier fine-tuned on pairs (--text-pair-column): once for "
              "every text, or once per text.")
@opt.input_file(help="CSV/TSV/JSONL (--text-column, --text-pair-column) or .txt (one text per line).")
@opt.out("output", type=click.Path(dir_okay=False), aliases=("--output",),
         help="Write a CSV of labels and probabilities.")
@opt.text_column(help="--input's column (CSV/TSV) or field (JSONL) of the text.")
@opt.text_pair_column(help="--input's column (or field) of each text's second segment, for a pair classifier.")
@opt.batch_size(default=64)
@opt.max_length(help="Tokens per input, pair included (default: the run's).")
@opt.precision("fp32")
@opt.overwrite()
@opt.threads()
def classify(model, texts, pairs, input_file, output, text_column, text_pair_column, batch_size, max_length, precision,
             overwrite, threads) -> None:
    """Label TEXTS (or the rows of --input) with a fine-tuned classifier."""
    from ..pipelines import pipeline
    from ..tasks.classifier import format_table
    if not texts and not input_file:
        raise click.UsageError("give TEXTS or --input FILE")
    if pairs and input_file:
        raise click.UsageError("--pair goes with TEXTS; with --input FILE, name its column with --text-pair-column")
    if pairs and len(pairs) not in (1, len(texts)):
        raise click.UsageError(f"{len(texts)} texts but {len(pairs)} --pair values: give one for all, or one per text")
    if output:
        check_target_file(output, overwrite=overwrite, option="--out")
    text_pairs = None if not pairs else list(pairs) * len(texts) if len(pairs) == 1 else list(pairs)
    rows = pipeline("text-classification", model, precision=precision, threads=threads, max_length=max_length).run(
        list(texts) or None, input=input_file, output=output, text_column=text_column, batch_size=batch_size,
        text_pairs=text_pairs, text_pair_column=text_pair_column)
    if output:
        click.echo(f"wrote {len(rows)} predictions to {output}")
    if not output or len(rows) <= 20:
        click.echo(format_table(rows))
    if getattr(rows, "scores_text", None):  # --input held the run's label column
        click.echo(rows.scores_text)


@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert tag runs/ner "Alice Becker flew to Paris on Monday." "Hooli hired Pedro Costa last year."',
    "glassbert tag runs/ner --input texts.txt --out entities.jsonl",
    'glassbert tag runs/ner "Zoe met Umar in Oslo." --format conll'))
@click.argument("model")
@click.argument("texts", nargs=-1)
@opt.input_file(help=".txt (one text per line) or CSV/TSV/JSONL (--text-column).")
@click.option("--format", "fmt", type=click.Choice(TAG_FORMATS), default=None,
              help="text: entities with character spans and scores; conll: a `word tag` line per word; jsonl: one "
                   "object per text (text, entities, words). Default: --out's suffix (.conll, .jsonl), else text.")
@opt.out("output", type=click.Path(dir_okay=False), aliases=("--output",),
         help="Write to this file instead of the terminal.")
@opt.text_column(help="--input's column (CSV/TSV) or field (JSONL) of the text.")
@opt.batch_size(default=64)
@opt.max_length(help="Word pieces per window: a longer text is tagged in windows (default: the run's).")
@opt.precision("fp32")
@opt.overwrite()
@opt.threads()
def tag(model, texts, input_file, fmt, output, text_column, batch_size, max_length, precision, overwrite,
        threads) -> None:
    """Tag TEXTS (or the texts of --input) with a fine-tuned token tagger: entities and their character spans.

    Words are split as BERT splits them (at spaces and around punctuation) and each word's tag is the tag of its
    first word piece, as the tagger was trained; B-/I- tags are read into entities.
    """
    from ..pipelines import pipeline
    from ..tasks.tagger import format_for, format_tags, write_tags
    if not texts and not input_file:
        raise click.UsageError("give TEXTS or --input FILE")
    if texts and input_file:
        raise click.UsageError("give TEXTS or --input FILE, not both")
    if output:
        check_target_file(output, overwrite=overwrite, option="--out")
    results = pipeline("token-classification", model, precision=precision, threads=threads, max_length=max_length).run(
        list(texts) or None, input=input_file, text_column=text_column, batch_size=batch_size)
    fmt = format_for(output, fmt)
    if output:
        write_tags(results, output, fmt)
        entities = sum(len(r.entities) for r in results)
        click.echo(f"wrote {len(results)} tagged texts ({entities} entities) to {output} ({fmt})")
    else:
        click.echo(format_tags(results, fmt), nl=False)


@main.command(context_settings=CONTEXT, epilog=examples(
    'glassbert answer runs/qa --question "Where was Zoe Weber born?" '
    '--context "Zoe Weber was born in Lima in 1931. Umar Costa bought a kayak in Oslo."',
    'glassbert answer runs/qa --question "Who bought a kayak?" --question "Where?" --context "…" --top-k 3',
    "glassbert answer runs/qa --input data/qa/dev.json --out predictions.json --nbest-out nbest.json"))
@click.argument("model")
@click.option("--question", "questions", multiple=True, help="A question on --context (repeat for more).")
@click.option("--context", help="The passage that holds the answers.")
@opt.input_file(help="SQuAD v1.1 JSON (as a dev file): every question in it is answered, and scored if it has "
                     "answers.")
@opt.out("output", type=click.Path(dir_okay=False), aliases=("--output",),
        help="Write {id: answer} JSON, as the official SQuAD predictions file.")
@click.option("--nbest-out", "nbest_output", cls=opt.Option, aliases=("--nbest-output",), type=click.Path(dir_okay=False),
              help="Write {id: [candidates]} JSON: text, probability, logits, score, character span.")
@opt.top_k("n_best", aliases=("--n-best",), default=None,
           help="Candidates to show per question (default 1) and to keep in --nbest-out (default the run's, 20).")
@opt.batch_size(default=64)
@opt.max_length(help="Tokens per window of question and context (default: the run's).")
@opt.precision("fp32")
@opt.overwrite()
@opt.threads()
def answer(model, questions, context, input_file, output, nbest_output, n_best, batch_size, max_length, precision,
           overwrite, threads) -> None:
    """Answer questions with a fine-tuned QA model: the answer's text, character span, score and the n-best.

    The run's own settings (max_length, doc_stride, max_answer_length) window and decode the context.
    """
    from ..pipelines import pipeline
    from ..tasks.answerer import format_answers, write_json
    if input_file and (questions or context is not None):
        raise click.UsageError("give --question/--context or --input FILE, not both")
    if not input_file:
        if context is None:
            raise click.UsageError("missing --context: the passage that holds the answer" if questions
                                   else "give --question and --context, or --input FILE")
        if not questions:
            raise click.UsageError("missing --question: what to ask about --context")
    for path, option in ((output, "--out"), (nbest_output, "--nbest-out")):
        if path:
            check_target_file(path, overwrite=overwrite, option=option)
    if output and nbest_output and Path(output).resolve() == Path(nbest_output).resolve():
        raise click.UsageError("--out and --nbest-out name the same file")
    result = pipeline("question-answering", model, precision=precision, threads=threads, max_length=max_length).run(
        list(questions) or None, context, input=input_file, n_best=n_best, batch_size=batch_size)
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


# ─── serving and sharing ────────────────────────────────────────────────────────────────────
@main.command(context_settings=CONTEXT, epilog=examples(
    "glassbert serve minilm",
    "glassbert serve runs/foods-minilm --port 8081 --max-batch-tokens 8192",
    "glassbert serve minilm --host 0.0.0.0 --max-client-batch-size 64",
    "glassbert serve minilm --index my-index"))
@click.argument("model")
@opt.host()
@opt.port(default=8080)
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
@opt.pooling(help="How /embed turns token vectors into one vector: their mean, [CLS]'s, or the pooler's.")
@opt.max_length(help="Tokens per input (default: the model's); a longer one is refused (413) unless its request "
                     "says truncate.")
@click.option("--index", "index_dir", type=click.Path(), default=None,
              help="An index directory (glassbert index, with MODEL and --pooling) that POST /search answers from.")
@opt.precision("fp32")
@opt.threads()
def serve(model, host, port, max_batch_tokens, max_client_batch_size, max_queue, payload_limit, workers, pooling,
          max_length, index_dir, precision, threads) -> None:
    """Serve MODEL over HTTP: /embed, /similarity, /predict, /fill-mask, /tokenize, /info, /health and the
    OpenAPI page /docs, in text-embeddings-inference's shapes. Ctrl-C (or SIGTERM) stops it."""
    from ..serve import ServeConfig
    from ..serve import serve as run
    run(model, host=host, port=port, echo=click.echo, threads=threads, config=ServeConfig(
        max_batch_tokens=max_batch_tokens, max_client_batch_size=max_client_batch_size, max_queue=max_queue,
        payload_limit=payload_limit, pooling=pooling, precision=precision, workers=workers,
        max_input_length=max_length, index=index_dir))
