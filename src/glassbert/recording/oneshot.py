"""One snapshot of any model, outside training: ``glassbert explore MODEL "text"``, the page's live what-if and
the tests record through these, with the recorder's own code (:class:`~glassbert.recording.recorder.Recorder`).

    record_model(dir, texts, out)  ─▶ load the class config.json names ─▶ record_once ─▶ swapped into out
    record_once(model, tok, texts) ─▶ tokenize (pairs, [MASK]) ─▶ record_batch ─▶ Recorder.record, one snapshot
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from glassbert.errors import InputError
from glassbert.modeldir import resolve_model_path
from glassbert.precision import check_precision, model_device, precision_context
from glassbert.recording.recorder import DEFAULT_MAX_BYTES, Recorder
from glassbert.recording.spec import RecordSpec
from glassbert.recording.store import MANIFEST, RECORD_DIR
from glassbert.registry import load_model
from glassbert.runfiles import check_target_dir, swap_dir_into_place
from glassbert.tokenizer import Tokenizer


def record_once(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str | tuple[str, str]],
                out_dir: str | Path, *, include: Sequence[str] | None = None,
                max_bytes: int | float = DEFAULT_MAX_BYTES, max_length: int | None = None,
                dtype: str = "auto", explain: str = "all") -> Path:
    """One snapshot of any checkpoint on the given texts (strings or (a, b) pairs) → ``out_dir``.

    Text with ``[MASK]`` tokens gets its MLM head recorded at those positions (for models with one).
    ``explain``: the attributions recorded with it (all | ig | none, as ``--record``'s ``explain=``).
    Returns the run directory, ready for :func:`glassbert.explorer.serve` / ``export_html``.
    """
    if not texts:
        raise InputError("record_once needs at least one text")
    firsts = [t[0] if isinstance(t, (tuple, list)) else t for t in texts]
    seconds = [t[1] if isinstance(t, (tuple, list)) else None for t in texts]
    kwargs: dict[str, Any] = {"padding": True}
    if max_length is not None:
        kwargs.update(max_length=max_length, truncation=True)
    if any(s is not None for s in seconds):
        if not all(s is not None for s in seconds):
            raise InputError("mix of single texts and pairs: give all as pairs or all as single texts")
        batch = tokenizer(firsts, text_pair=seconds, **kwargs)
    else:
        batch = tokenizer(firsts, **kwargs)
    shown = [f"{a} ‖ {b}" if b is not None else a for a, b in zip(firsts, seconds)]
    return record_batch(model, tokenizer, dict(batch), out_dir, texts=shown, include=include,
                        max_bytes=max_bytes, dtype=dtype, explain=explain)


def record_batch(model: torch.nn.Module, tokenizer: Any, batch: Mapping[str, Any], out_dir: str | Path, *,
                 texts: Sequence[str] | None = None, include: Sequence[str] | None = None,
                 max_bytes: int | float = DEFAULT_MAX_BYTES, dtype: str = "auto", explain: str = "all",
                 weights: bool = True) -> Path:
    """One snapshot of ``model`` on an encoded ``batch`` (input_ids, token_type_ids, attention_mask and, to
    name the words behind [MASK] tokens, MLM ``labels``) → ``out_dir``: what :func:`record_once` and the
    explorer's live what-if both record through."""
    rec = Recorder(out_dir, batch, tokenizer, RecordSpec(explain=explain), include=include, max_bytes=max_bytes,
                   expected_snapshots=1, texts=texts, dtype=dtype, metrics=None, weights=weights)
    if not rec.record(model, epoch=0, step=0):
        raise InputError(f"the recording does not fit in {int(max_bytes)} bytes")
    # one snapshot of the model as it was loaded (not trained here): the page names it so, not "epoch 0 · step 0"
    assert rec.manifest is not None
    rec.manifest["as_loaded"] = True
    rec._write_manifest()
    return Path(out_dir)


def record_model(model: str | Path, texts: Sequence[str], out_dir: str | Path, *, pair: bool = False,
                 overwrite: bool = False, max_length: int | None = None, precision: str = "fp32") -> Path:
    """Load a model directory (or an alias such as ``minilm``) as the class its config names, and record one
    snapshot of it on ``texts`` (``pair``: the two texts are one sentence pair) into ``out_dir``.

    An ``out_dir`` that already holds files is refused (ExistsError) unless ``overwrite``; then it is replaced
    whole: the recording is made in a temp directory beside it and swapped in, so ``out_dir`` never mixes
    old and new snapshots, and a recording that fails leaves the old contents as they were.
    """
    check_precision(precision)
    resolve_model_path(model)  # a path that does not exist says so, before anything about recordings
    if not texts:
        raise InputError(f"{model} holds no recording ({RECORD_DIR}/{MANIFEST}): give one or more texts to "
                         "record a snapshot of the model, or record a run with `glassbert demo` / "
                         "`glassbert pretrain --record ...`")
    if pair and len(texts) != 2:
        raise InputError(f"a pair is two texts, got {len(texts)}")
    out = Path(out_dir)
    check_target_dir(out, overwrite=overwrite, option="--out", reads=(("the model", model),))
    tokenizer = Tokenizer.from_pretrained(model)
    items: list = [tuple(texts)] if pair else list(texts)
    loaded = load_model(model)

    def record(tmp: Path) -> Path:  # ``max_length``: truncate the texts; ``precision``: fp32, or bf16 autocast
        with precision_context(precision, model_device(loaded)):
            return record_once(loaded, tokenizer, items, tmp, max_length=max_length)
    _record_then_swap(out, record)
    return out


def _record_then_swap(out: Path, record: Callable[[Path], Any]) -> None:
    """``record(tmp)`` into a temp dir beside ``out``, then put it at ``out`` (the old ``out`` moved aside first
    and deleted last): ``out`` is the old recording or the new one, never a mix, and a failure leaves the old."""
    target = out.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.recording-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        record(tmp)
        swap_dir_into_place(tmp, target, old=target.with_name(f".{target.name}.replaced-{os.getpid()}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["record_once", "record_batch", "record_model"]
