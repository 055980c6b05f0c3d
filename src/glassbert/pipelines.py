"""The Python API: one entry per task, in transformers' words, and the two training jobs.

    clf = glassbert.pipeline("text-classification", model="runs/foods-minilm")
    clf(["Best coffee I have ever had.", "Arrived stale."])   # [{"label": ..., "score": ...}, ...]

    pipeline(task, model) ─▶ threads (glassbert.threads, as the task's command chooses them) ─▶ the model and its
    tokenizer, loaded once ─▶ each call: the library function the command runs (fill_mask, classify, tag, answer,
    Embedder.encode) on the loaded model, in the precision asked (fp32 unless asked, as the commands)

``pipe(...)`` answers in transformers' shapes; ``pipe.run(...)`` returns what the library function returns (the
rows, tagged texts, answers or predictions the command prints) and takes the command's file options (``input=``,
``output=``). The CLI's inference commands call these pipelines and nothing else. :func:`finetune` and
:func:`pretrain` build the jobs' arguments from keywords (the commands' options) and run them; the package
glassbert.pretrain is callable too, so ``glassbert.pretrain(...)`` is the same call.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

TASKS = ("fill-mask", "text-classification", "token-classification", "question-answering", "feature-extraction")
ALIASES = {"embed": "feature-extraction", "classify": "text-classification", "tag": "token-classification",
           "answer": "question-answering", "sentiment-analysis": "text-classification", "ner": "token-classification"}


def _default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


class Pipeline:
    """A model loaded once for one task; calling it applies the model (see the module's docstring)."""

    task = ""

    def __init__(self, model: str | Path, *, threads: int | None = None, precision: str | None = None,
                 max_length: int | None = None, device: str | None = None):
        from .precision import check_precision, resolve
        self.model_name = str(model)
        self.precision = check_precision(precision or "fp32")  # inference runs in fp32 unless asked (precision.py)
        self.device = str(device or _default_device())
        self.max_length = max_length
        self.loaded = self._load(model, threads)
        self.runs_as = resolve(self.precision, self.device)      # what it runs as here: fp32 | bf16 | int8

    def _load(self, model: str | Path, threads: int | None) -> Any:
        """The threads chosen for MODEL as its command chooses them, then the model loaded (each task's own) and
        prepared once for the precision (bf16 weights, int8 layers: glassbert.quantize)."""
        from .quantize import for_inference
        from .threads import set_threads_for
        set_threads_for(threads, model)
        loaded = self._loader()(model, self.device)
        for_inference(loaded.model, self.precision, self.device)
        return loaded

    def _loader(self):
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        """The pipeline's settings, as the library function takes them."""
        return {"precision": self.precision, "max_length": self.max_length}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={self.model_name!r}, precision={self.runs_as!r})"


def _one_or_many(texts: str | Sequence[str]) -> tuple[list[str], bool]:
    """(texts as a list, whether one text was given as a str: its result is then returned alone)."""
    return ([texts], True) if isinstance(texts, str) else (list(texts), False)


class FillMaskPipeline(Pipeline):
    """``fill(texts, top_k=5)``: for each [MASK], the ``top_k`` words as {"token_str", "score", "position"}, best
    first; a text with one [MASK] gets its list of candidates, a text with several a list per [MASK]; one str
    in, its result out (transformers' fill-mask shapes). ``run``: :func:`glassbert.fill_mask.fill_mask`'s
    MaskPredictions."""

    task = "fill-mask"

    def _loader(self):
        from .fill_mask import load_masked_lm
        return load_masked_lm

    def run(self, texts: Sequence[str], top_k: int = 5) -> list:
        from .fill_mask import fill_mask
        return fill_mask(self.loaded, list(texts), top_k=top_k, **self._options())

    def __call__(self, texts: str | Sequence[str], top_k: int = 5) -> list:
        texts, one = _one_or_many(texts)
        per_text: list[list[list[dict[str, Any]]]] = [[] for _ in texts]
        for p in self.run(texts, top_k=top_k):
            per_text[p.index].append([{"token_str": token, "score": score, "position": p.position}
                                      for token, score in p.candidates])
        results = [masks[0] if len(masks) == 1 else masks for masks in per_text]
        return results[0] if one else results


class TextClassificationPipeline(Pipeline):
    """``clf(texts, text_pair=None, top_k=1)``: {"label", "score"} per text (``top_k`` > 1 or None: a list of
    the best ``top_k`` or of every label, best first), in a list (transformers' text-classification shapes).
    ``run``: :func:`glassbert.tasks.classifier.classify`'s rows (``input=``, ``output=`` as the command's)."""

    task = "text-classification"

    def _loader(self):
        from .tasks.classifier import load_classifier
        return load_classifier

    def run(self, texts: Sequence[str] | None = None, **options: Any) -> list[dict[str, Any]]:
        from .tasks.classifier import classify
        return classify(self.loaded, texts, **self._options(), **options)

    def __call__(self, texts: str | Sequence[str], text_pair: str | Sequence[str] | None = None,
                 top_k: int | None = 1, batch_size: int = 64) -> list:
        texts, _ = _one_or_many(texts)
        pairs = None if text_pair is None else _one_or_many(text_pair)[0]
        rows = self.run(texts, text_pairs=pairs, batch_size=batch_size, progress=False)
        if top_k == 1:
            return [{"label": r["label"], "score": r["probability"]} for r in rows]
        ranked = [sorted(({"label": k, "score": v} for k, v in r["probs"].items()), key=lambda x: -x["score"])
                  for r in rows]
        return [labels[:top_k] for labels in ranked]


class TokenClassificationPipeline(Pipeline):
    """``tag(texts)``: per text, its entities as {"entity_group", "score", "word", "start", "end"} (characters
    ``text[start:end]``: transformers' token-classification with aggregation_strategy="simple"); one str in,
    its list out. ``run``: :func:`glassbert.tasks.tagger.tag`'s TaggedTexts (words and their tags too)."""

    task = "token-classification"

    def _loader(self):
        from .tasks.tagger import load_tagger
        return load_tagger

    def run(self, texts: Sequence[str] | None = None, **options: Any) -> list:
        from .tasks.tagger import tag
        return tag(self.loaded, texts, **self._options(), **options)

    def __call__(self, texts: str | Sequence[str], batch_size: int = 64) -> list:
        texts, one = _one_or_many(texts)
        results = [[{"entity_group": e.type, "score": e.score, "word": e.text, "start": e.start, "end": e.end}
                    for e in tagged.entities] for tagged in self.run(texts, batch_size=batch_size, progress=False)]
        return results[0] if one else results


class QuestionAnsweringPipeline(Pipeline):
    """``qa(question=..., context=..., top_k=1)``: {"answer", "score" (a probability), "start", "end"} (characters
    of ``context``; None for no span); several questions (a list): one result each; ``top_k`` > 1: a list of
    candidates, best first (transformers' question-answering shapes). ``run``:
    :func:`glassbert.tasks.answerer.answer`'s Answers (``input=`` a SQuAD file, scored when it holds answers)."""

    task = "question-answering"

    def _loader(self):
        from .tasks.answerer import load_answerer
        return load_answerer

    def run(self, questions: Sequence[str] | None = None, context: str | None = None, **options: Any) -> Any:
        from .tasks.answerer import answer
        return answer(self.loaded, questions, context, **self._options(), **options)

    def __call__(self, question: str | Sequence[str], context: str, top_k: int = 1, batch_size: int = 64) -> Any:
        questions, one = _one_or_many(question)
        result = self.run(questions, context, n_best=top_k, batch_size=batch_size, progress=False)
        answers = [[{"answer": c.text, "score": c.probability, "start": c.start, "end": c.end}
                    for c in a.candidates[:top_k]] for a in result.answers]
        answers = [found[0] if top_k == 1 else found for found in answers]
        return answers[0] if one else answers


class FeatureExtractionPipeline(Pipeline):
    """``fe(texts, pooling="mean", normalize=True)``: (N, H) float32 sentence vectors, as `glassbert embed`
    writes them (unit length unless ``normalize=False``); ``fe.similarity(texts)``: their cosine matrix, as
    `glassbert similarity` prints it. ``fe.embedder``: the :class:`glassbert.Embedder` behind them."""

    task = "feature-extraction"

    def _load(self, model: str | Path, threads: int | None) -> Any:
        from .embed import Embedder  # it chooses the threads for the model it loads, as `embed` does
        return Embedder(model, device=self.device, max_length=self.max_length, precision=self.precision,
                        threads=threads)

    @property
    def embedder(self):
        return self.loaded

    def __call__(self, texts: str | Sequence[str], pooling: str = "mean", normalize: bool = True,
                 batch_size: int = 32, show_progress: bool | None = None):
        return self.loaded.encode(texts, pooling=pooling, normalize=normalize, batch_size=batch_size,
                                  show_progress=show_progress)

    run = __call__

    def similarity(self, texts: Sequence[str], pooling: str = "mean"):
        from .embed import cosine_matrix
        return cosine_matrix(self(list(texts), pooling=pooling, normalize=False))


PIPELINES: dict[str, type[Pipeline]] = {cls.task: cls for cls in (
    FillMaskPipeline, TextClassificationPipeline, TokenClassificationPipeline, QuestionAnsweringPipeline,
    FeatureExtractionPipeline)}


def pipeline(task: str, model: str | Path, *, threads: int | None = None, precision: str | None = None,
             max_length: int | None = None, device: str | None = None) -> Pipeline:
    """A callable that applies ``model`` (a directory, a run or an alias such as "minilm") to ``task``:
    fill-mask, text-classification, token-classification, question-answering or feature-extraction (or the
    commands' names: embed, classify, tag, answer). The model loads now, once.

    ``threads``: this process's intra-op threads (default: chosen for the model and for what else runs here,
    as the commands choose: glassbert.threads); ``precision``: fp32 (default), bf16, auto or int8
    (glassbert.precision; the model is prepared for it once, at load: glassbert.quantize); ``max_length``: tokens per input (default: the run's, else the model's);
    ``device``: default cuda where there is one, else cpu."""
    name = ALIASES.get(task, task)
    if name not in PIPELINES:
        raise InputError(f"unknown pipeline task {task!r}: choose one of {', '.join(TASKS)} "
                         f"(or {', '.join(ALIASES)})")
    return PIPELINES[name](model, threads=threads, precision=precision, max_length=max_length, device=device)


def finetune(model: str | Path, train: str | Path, out: str | Path, *, threads: int | None = None,
             **options: Any) -> dict[str, Any]:
    """Fine-tune ``model`` on ``train`` into ``out``, as `glassbert finetune` does; returns the run's summary.

    ``options``: the fields of glassbert.tasks.FinetuneArgs (the command's options): task ("classify", "token",
    "qa"), eval, text_column, text_pair_column, label_column, epochs, batch_size, lr, max_length, doc_stride,
    freeze, pooling, early_stop_patience, minutes, seed, resume, overwrite, save_every, log_every, record, precision
    (default auto; a resumed run keeps its own), progress, quiet. ``threads``: chosen as the command chooses."""
    from .tasks.job import FinetuneArgs
    from .tasks.job import finetune as run
    try:
        args = FinetuneArgs(model, train, out, **options)
    except TypeError as e:
        raise InputError(f"finetune(): {e}") from None
    return run(args, threads=threads)


def pretrain(*args: Any, **options: Any) -> dict[str, Any]:
    """Pretrain on a corpus, as `glassbert pretrain` does: :func:`glassbert.pretrain.call.pretrain_with` (what
    ``glassbert.pretrain(...)`` calls too)."""
    from .pretrain.call import pretrain_with
    return pretrain_with(*args, **options)


__all__ = ["pipeline", "finetune", "pretrain", "Pipeline", "FillMaskPipeline", "TextClassificationPipeline",
           "TokenClassificationPipeline", "QuestionAnsweringPipeline", "FeatureExtractionPipeline", "TASKS",
           "ALIASES", "PIPELINES"]
