"""The model side of `glassbert serve`: its settings (:class:`ServeConfig`) and one loaded model with what
it can answer (:class:`Service`), whose ``run`` the batcher's worker threads call."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..embed import Embedder, check_pooling
from ..errors import InputError, ServeError
from ..modeldir import resolve_model_path
from ..precision import PRECISIONS, autocast, model_device
from ..quantize import for_inference
from ..tokenizer import Tokenizer, check_text


# ─── settings ───────────────────────────────────────────────────────────────────────────────
@dataclass
class ServeConfig:
    """The server's limits (TEI's defaults where TEI has the same setting)."""

    max_batch_tokens: int = 16384       # real tokens the worker runs in one go (and the most one request may hold)
    max_client_batch_size: int = 32     # inputs per request
    max_queue: int = 512                # requests waiting for the worker; one more is 429
    payload_limit: int = 2_000_000      # bytes in a request body
    pooling: str = "mean"               # how /embed turns token vectors into one vector (mean | cls | pooler)
    max_input_length: int | None = None  # tokens per input (default: the model's)
    precision: str = "fp32"             # fp32 | bf16 | auto | int8 (glassbert.precision, glassbert.quantize)
    workers: int | None = None          # batches computed at once, each in its own thread (default: one per
                                        # intra-op thread, see Batcher); the threads are shared among them
    index: str | None = None            # an index directory (glassbert index) that /search answers from
    header_timeout: float = 30.0        # seconds a request's headers may take to arrive (TEI's); then 408, closed

    def check(self) -> "ServeConfig":
        for name in ("max_batch_tokens", "max_client_batch_size", "max_queue", "payload_limit", "workers"):
            value = getattr(self, name)
            if name == "workers" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a whole number ≥ 1, got {value!r}")
        if isinstance(self.header_timeout, bool) or not isinstance(self.header_timeout, (int, float)) \
                or not self.header_timeout > 0:
            raise InputError(f"header_timeout must be a number of seconds > 0, got {self.header_timeout!r}")
        self.pooling = check_pooling(self.pooling)
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self



# ─── the model side: what the worker threads run ───────────────────────────────────────────
class Service:
    """One loaded model and what it can answer. ``run(kind, items)`` is called from the worker threads,
    each with its own tokenizer and Embedder over the one model (a tokenizer sets its truncation per
    call, so threads share none); ``counter`` counts and shows tokens in the request handlers."""

    def __init__(self, model: str | Path, config: ServeConfig | None = None, device: str = "cpu"):
        from ..registry import load_model
        self.config = (config or ServeConfig()).check()
        self.model_id = str(model)
        self.directory = resolve_model_path(model)
        self.index = None  # before the model loads: an index of another model or pooling is refused at start
        if self.config.index is not None:
            from ..search import Index
            self.index = Index.load(self.config.index, model=self.directory, pooling=self.config.pooling)
        self.model = load_model(self.directory).to(device).eval()
        for_inference(self.model, self.config.precision, device)     # once: bf16 weights, or int8 layers
        self.architecture = type(self.model).__name__
        self.backbone, self.device = self.model.base_model, device
        self.counter = Tokenizer.from_pretrained(self.directory)     # the handlers'
        self._local = threading.local()                              # each worker thread's tokenizer, Embedder
        self.embedder = self._tools().embedder                       # (this thread's: the settings it resolved)
        self.precision = self.embedder.precision  # what it runs as on this device: fp32 | bf16 | int8
        self.max_input_length = self.embedder.max_length
        if self.config.pooling == "pooler" and self.backbone.pooler is None:
            raise InputError(f"{self.directory}: --pooling pooler needs a model with a pooler; use mean or cls")
        self.labels: list[str] | None = None
        if "classifier" in self.model.heads:
            id2label = self.model.config.id2label or {i: f"LABEL_{i}" for i in range(self.model.config.num_labels)}
            self.labels = [id2label[i] for i in range(len(id2label))]
        self.endpoints = ["/embed", "/similarity", "/tokenize"] + (["/predict"] if self.labels else []) \
            + (["/fill-mask"] if "mlm" in self.model.heads else [])
        if self.index is not None:
            self.endpoints.append("/search")

    # -- in the handlers: counts and tokens ---------------------------------------------------
    def count_tokens(self, items: Sequence[tuple[str, str | None]], truncate: bool) -> int:
        """Real tokens of ``items`` ((text, pair or None)) as the model will see them; 413 for an input
        longer than the model takes unless ``truncate``."""
        total = 0
        for i, (text, pair) in enumerate(items):
            n = len(self.counter.encode(check_text(text, i, "input"),
                                        None if pair is None else check_text(pair, i, "pair")))
            if n > self.max_input_length:
                if not truncate:
                    raise ServeError(413, f"input {i} has {n} tokens, more than this model takes "
                                          f"({self.max_input_length}): shorten it, or send \"truncate\": true "
                                          "to cut it to the first tokens")
                n = self.max_input_length
            total += n
        return total

    def count_masks(self, texts: Sequence[str]) -> list[int]:
        """[MASK]s in each text within the model's input length; 422 for a text with none."""
        counts, mask = [], self.counter.specials["mask_token"]
        for i, text in enumerate(texts):
            ids = self.counter.encode(text)[:self.max_input_length - 1]  # truncation keeps the last [SEP]
            counts.append(ids.count(self.counter.mask_token_id))
            if not counts[-1]:
                raise ServeError(422, f"input {i} has no {mask} within its first "
                                      f"{self.max_input_length} tokens: write {mask} where a "
                                      "word should be predicted")
        return counts

    def tokens(self, text: str, index: int, add_special_tokens: bool) -> list[dict[str, Any]]:
        encoding = self.counter.backend.encode(check_text(text, index, "input"), add_special_tokens=add_special_tokens)
        return [{"id": i, "text": t, "special": bool(s), "start": a, "stop": b}
                for i, t, s, (a, b) in zip(encoding.ids, encoding.tokens, encoding.special_tokens_mask,
                                           encoding.offsets)]

    # -- in the worker threads ---------------------------------------------------------------
    def _tools(self) -> "WorkerTools":
        """This thread's tokenizer and Embedder (made on its first batch; the model is shared)."""
        tools = getattr(self._local, "tools", None)
        if tools is None:
            tokenizer = Tokenizer.from_pretrained(self.directory)
            tools = self._local.tools = WorkerTools(tokenizer, Embedder(
                self.backbone, tokenizer, device=self.device, max_length=self.config.max_input_length,
                precision=self.config.precision))
        return tools

    @torch.inference_mode()
    def run(self, kind: str, items: list) -> list:
        """One result per item, for a batch gathered from several requests (items in request order)."""
        tools = self._tools()
        if kind == "embed":      # items: texts → (H,) vectors, not normalized (each request says)
            return list(tools.embedder.encode(items, pooling=self.config.pooling, normalize=False,
                                              batch_size=BATCH_SIZE))
        if kind == "predict":    # items: (text, pair | None) → (num_labels,) logits
            return self._logits(items, tools.tokenizer)
        if kind == "fill-mask":  # items: (text, its [MASK] count) → its MaskPredictions (top MAX_TOP_K)
            from ..fill_mask import predict_masks
            found = iter(predict_masks(self.model, tools.tokenizer, [text for text, _ in items], top_k=MAX_TOP_K,
                                       max_length=self.max_input_length, precision=self.precision))  # per [MASK]
            return [[next(found) for _ in range(n)] for _, n in items]
        raise ValueError(f"unknown kind {kind!r}")

    def _logits(self, items: list[tuple[str, str | None]], tokenizer: Tokenizer) -> list[np.ndarray]:
        from ..tasks.classification import ClassificationData, class_logits, encode_classification
        out: list[Any] = [None] * len(items)
        for with_pair in (False, True):  # singles and pairs: one dataset each (a dataset has pairs or not)
            rows = [i for i, (_, pair) in enumerate(items) if (pair is not None) == with_pair]
            if not rows:
                continue
            data = ClassificationData([items[i][0] for i in rows],
                                      [items[i][1] for i in rows] if with_pair else None, [0] * len(rows),
                                      list(self.labels or []))
            with autocast(model_device(self.model), self.precision == "bf16"):
                logits = class_logits(self.model, encode_classification(data, tokenizer,
                                                                        self.max_input_length), batch_size=BATCH_SIZE)
            for i, row in zip(rows, logits):
                out[i] = row
        return out

    def info(self) -> dict[str, Any]:
        config = self.model.config
        kind = ({"classifier": {"id2label": dict(enumerate(self.labels))}} if self.labels
                else {"embedding": {"pooling": self.config.pooling}})
        from importlib.metadata import version
        return {"model_id": self.model_id, "model_dir": str(self.directory), "model_type": kind,
                "architecture": self.architecture, "hidden_size": config.hidden_size,
                "num_hidden_layers": config.num_hidden_layers, "max_input_length": self.max_input_length,
                "pooling": self.config.pooling, "precision": self.precision, "endpoints": self.endpoints,
                "max_batch_tokens": self.config.max_batch_tokens,
                "max_client_batch_size": self.config.max_client_batch_size,
                "max_queue": self.config.max_queue, "payload_limit": self.config.payload_limit,
                "version": version("glassbert")}


@dataclass
class WorkerTools:
    tokenizer: Tokenizer
    embedder: Embedder


MAX_TOP_K = 100   # /fill-mask's largest top_k: each text's candidates are computed once, cut per request
BATCH_SIZE = 32   # rows per forward pass within a gathered batch (length-sorted), as Embedder.encode's default
