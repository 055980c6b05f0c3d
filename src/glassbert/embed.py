"""Sentence and word embeddings: `Embedder(path).encode(texts, pooling="mean", normalize=True)`.

Like sentence-transformers' encode: tokenize everything once, sort by length so each batch pads little,
run the batches (with a progress bar on large inputs), then restore the caller's order.
``precision="bf16"`` (or ``"auto"``: bf16 where the hardware has fast bf16) runs the model under bf16
autocast, its Linear weights cast to bf16 once at load; ``"int8"`` runs its Linear layers dynamically quantized
(glassbert.quantize); the vectors are pooled and returned in float32 either way (glassbert.precision).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .batching import sorted_batches
from .errors import InputError
from .registry import load_as
from .model import BertModel, pool
from .precision import autocast, check_precision, resolve
from .quantize import for_inference, prepared_copy
from .runfiles import atomic_write_text, atomic_write_with
from .threads import set_threads
from .tokenizer import Tokenizer

log = logging.getLogger("glassbert")

POOLINGS = ("mean", "cls", "pooler")   # the pooler: tanh(dense([CLS])), as BERT's NSP head reads it
POOLING_ALIASES = {"pooled": "pooler"}  # the old name, still accepted


def check_pooling(pooling: str) -> str:
    """``pooling`` as one of :data:`POOLINGS` (an old name in :data:`POOLING_ALIASES` becomes its new one)."""
    pooling = POOLING_ALIASES.get(pooling, pooling)
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    return pooling


class Embedder:
    def __init__(self, model: str | Path | BertModel, tokenizer: Tokenizer | None = None,
                 device: str | torch.device | None = None, max_length: int | None = None,
                 precision: str = "fp32", threads: int | None = None):
        """``model``: a directory or alias (its BertModel or AlbertModel, as config.json says), or a model.
        ``precision``: fp32 (default), bf16, auto or int8 (see glassbert.precision): a model loaded by name is
        prepared for it in place (glassbert.quantize); a model object is used as given, but for int8 a quantized
        copy (its own is not changed). ``threads``: the intra-op
        threads of this process, chosen for the model as the ``embed`` command chooses them (glassbert.threads:
        asked, else the environment, else by model size and the cores other work leaves free) when the
        Embedder loads ``model`` by name; a model object's caller has chosen (give ``threads`` to set them)."""
        check_precision(precision)
        by_name = isinstance(model, (str, Path))
        if by_name:
            tokenizer = tokenizer or Tokenizer.from_pretrained(model)
            model = load_as(model)
        if by_name or threads is not None:
            log.info("intra-op threads: %s", set_threads(threads, model.config.hidden_size))
        if tokenizer is None:
            raise InputError("Embedder(model_object) needs tokenizer=")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = resolve(precision, self.device)  # what it runs as here: fp32 | bf16 | int8
        model = model.to(self.device).eval()
        if by_name:
            for_inference(model, self.precision, self.device)   # once: bf16 weights, or int8 layers
        elif self.precision == "int8":
            model = prepared_copy(model, "int8", self.device)
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = min(max_length or tokenizer.model_max_length, model.config.max_position_embeddings)

    def _precision(self):
        return autocast(self.device, self.precision == "bf16")

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    def _batches(self, texts: Sequence[str], batch_size: int, show_progress: bool | None):
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise InputError("no texts to embed: pass at least one string")
        lengths = [len(t) if isinstance(t, str) else 0 for t in texts]  # longest first: memory peaks early
        if show_progress is None:
            show_progress = len(texts) >= 256
        truncated = 0
        for idx in sorted_batches(lengths, batch_size, progress=show_progress, desc="embedding", unit="text"):
            batch = self.tokenizer([texts[i] for i in idx], padding=True, max_length=self.max_length,
                                   warn_truncation=False)
            truncated += batch.truncated
            yield idx, batch
        if truncated:  # once for the whole call, not once per batch
            log.warning("%d of %d texts were longer than %d tokens and were truncated (longest first)",
                        truncated, len(texts), self.max_length or self.tokenizer.model_max_length)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], pooling: str = "mean", normalize: bool = True,
               batch_size: int = 32, show_progress: bool | None = None) -> np.ndarray:
        """(N, H) float32 sentence vectors, in the order of `texts`: unit length unless ``normalize=False``
        (as ``glassbert embed``; ``--no-normalize``). ``pooling``: mean, cls or pooler."""
        pooling = check_pooling(pooling)
        if pooling == "pooler" and self.model.pooler is None:
            raise InputError("pooling='pooler' needs a model with a pooler; use mean or cls")
        out = np.zeros((1 if isinstance(texts, str) else len(texts), self.dim), dtype=np.float32)
        for idx, batch in self._batches(texts, batch_size, show_progress):
            inputs = {k: v.to(self.device) for k, v in batch.items()}
            with self._precision():
                result = self.model(**inputs)
            pooled = None if result.pooled_output is None else result.pooled_output.float()
            vectors = pool(result.sequence_output.float(), inputs["attention_mask"], pooling, pooled)  # (B, H) fp32
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
            out[idx] = vectors.float().cpu().numpy()
        return out

    @torch.inference_mode()
    def encode_tokens(self, texts: Sequence[str], batch_size: int = 32) -> list[tuple[list[str], np.ndarray]]:
        """Contextual word-piece embeddings: per text, its tokens and a (T, H) array (specials included)."""
        results: list = [None] * (1 if isinstance(texts, str) else len(texts))
        for idx, batch in self._batches(texts, batch_size, False):
            inputs = {k: v.to(self.device) for k, v in batch.items()}
            with self._precision():
                hidden = self.model(**inputs).sequence_output.float().cpu().numpy()
            for row, i in enumerate(idx):
                n = int(batch["attention_mask"][row].sum())
                tokens = self.tokenizer.convert_ids_to_tokens(batch["input_ids"][row, :n])
                results[i] = (tokens, hidden[row, :n])
        return results


VECTOR_FORMATS = (".npy", ".jsonl")


def write_vectors(path: str | Path, texts: Sequence[str], vectors: np.ndarray) -> Path:
    """Save sentence vectors: ``.npy`` (N, H) float32, or ``.jsonl`` with one {text, vector} per line."""
    path = Path(path)
    if path.suffix not in VECTOR_FORMATS:
        raise InputError(f"{path}: use a file name ending in {' or '.join(VECTOR_FORMATS)}")
    if path.is_dir():
        raise InputError(f"{path} is a directory: give a file name ending in {' or '.join(VECTOR_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        atomic_write_with(path, lambda tmp: np.save(tmp, vectors, allow_pickle=False))
    else:
        lines = (json.dumps({"text": t, "vector": [round(float(x), 7) for x in v]}) for t, v in zip(texts, vectors))
        atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return unit @ unit.T


__all__ = ["Embedder", "pool", "cosine_matrix", "write_vectors", "POOLINGS", "POOLING_ALIASES", "check_pooling", "VECTOR_FORMATS"]
