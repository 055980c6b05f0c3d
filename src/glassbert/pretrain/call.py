"""``glassbert.pretrain(...)``: the `glassbert pretrain` job from Python, its options as keywords.

The package glassbert.pretrain is itself what ``glassbert.pretrain`` names (a package attribute cannot be both a
subpackage and a function), so calling the package calls :func:`pretrain_with`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from .job import PretrainArgs, pretrain, resume_pretraining

LIMITS = ("steps", "epochs", "minutes")


def pretrain_with(corpus: str | Path | None = None, vocab: str | Path | None = None, out: str | Path | None = None,
                  *, resume: str | Path | None = None, threads: int | None = None, **options: Any) -> dict:
    """Pretrain on ``corpus`` into ``out``, as `glassbert pretrain` does; returns the run's result.

    ``vocab``: a tokenizer or model directory (default, with ``from_model``: that model's own). ``options``:
    PretrainArgs' fields: arch, preset, from_model, max_seq_length, batch_size, lr, steps, epochs, minutes, task,
    pack, whole_word_mask, masked_lm_prob, init_embeddings, seed, save_every, eval_every, log_every, text_column,
    record, precision (default auto, as the command), overwrite. ``resume``: continue that run (``corpus`` where
    it has moved; steps, epochs or minutes to extend it). ``threads``: chosen as the command chooses them
    (glassbert.threads) unless given."""
    if resume is not None:
        given = sorted([*(k for k in options if k not in LIMITS), *(n for n, v in (("vocab", vocab), ("out", out))
                                                                    if v is not None)])
        if given:
            raise InputError(f"resume continues {resume} with the options it was started with (its "
                             f"pretrain_args.json); {', '.join(given)} cannot be changed on resume")
        return resume_pretraining(resume, corpus=None if corpus is None else str(corpus), threads=threads,
                                  **{k: options[k] for k in LIMITS if k in options})
    vocab = vocab if vocab is not None else options.get("from_model")
    missing = [n for n, v in (("corpus", corpus), ("vocab (or from_model)", vocab), ("out", out)) if v is None]
    if missing:
        raise InputError(f"pretrain(): missing {', '.join(missing)} (or resume=RUN)")
    if not any(options.get(k) for k in LIMITS):
        raise InputError("pretrain(): say when to stop: steps=, epochs= or minutes=")
    try:
        args = PretrainArgs(corpus=str(corpus), vocab=str(vocab), out=str(out), **options)
    except TypeError as e:
        raise InputError(f"pretrain(): {e}") from None
    return pretrain(args, threads=threads)


__all__ = ["pretrain_with"]
