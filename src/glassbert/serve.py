"""`glassbert serve MODEL`: embeddings, similarity, classification, fill-mask and tokens over HTTP.

The request and response shapes are text-embeddings-inference's (TEI) where it has them, so a client
written for TEI talks to glassbert unchanged:

    POST /embed       {"inputs": str | [str], "normalize": true, "truncate": false}   → [[float]]
    POST /similarity  {"inputs": {"source_sentence": str, "sentences": [str]}}       → [float] (cosine)
    POST /predict     {"inputs": str | [str, str] (a pair) | [str | [str] | [str, str]], "raw_scores": false}
                      → [{"label", "score"}] (all labels, best first); a list of those for a batch
    POST /tokenize    {"inputs": str | [str], "add_special_tokens": true}  → [[{"id","text","special","start","stop"}]]
    POST /fill-mask   {"inputs": str | [str], "top_k": 5}  → per text, per [MASK]: [{"token","token_str","score"}]
    GET  /health, /info (model, type, hidden size, limits), /docs (OpenAPI)

How a request is answered:

    handler: parse + validate (422), count tokens (413 over the limits) ─▶ Batcher queue (429 when full)
      ─▶ a free worker thread (--workers, by default one per CPU thread): requests of one kind gathered up
         to its fair share of the waiting work and --max-batch-tokens real tokens, run through the
         library's length-sorted fast path (Embedder.encode, class_logits, predict_masks)
      ─▶ each request's own answers, in its order

Errors are JSON ``{"error": "...", "error_type": "..."}`` whose message says what to change: 413
(``validation``: more inputs than --max-client-batch-size, an input longer than the model takes without
``"truncate": true``, more tokens than --max-batch-tokens, a body over --payload-limit), 422
(``validation``: a malformed body, no [MASK]), 429 (``overloaded``: --max-queue requests waiting), 400
(``unsupported``: the model has no head for that endpoint), 403 (``host``: a Host header the server was
not started for: a page on another site must not reach it through DNS rebinding).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from pydantic import BaseModel, Field

from .checkpoint import resolve_model_path
from .embed import POOLINGS, Embedder
from .precision import PRECISIONS, autocast, model_device
from .errors import InputError
from .tokenizer import Tokenizer, check_text

log = logging.getLogger("glassbert.serve")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")


# ─── settings ───────────────────────────────────────────────────────────────────────────────
@dataclass
class ServeConfig:
    """The server's limits (TEI's defaults where TEI has the same setting)."""

    max_batch_tokens: int = 16384       # real tokens the worker runs in one go (and the most one request may hold)
    max_client_batch_size: int = 32     # inputs per request
    max_queue: int = 512                # requests waiting for the worker; one more is 429
    payload_limit: int = 2_000_000      # bytes in a request body
    pooling: str = "mean"               # how /embed turns token vectors into one vector (mean | cls | pooled)
    max_input_length: int | None = None  # tokens per input (default: the model's)
    precision: str = "fp32"             # fp32 | bf16 | auto: the model under bf16 autocast (glassbert.precision)
    workers: int | None = None          # batches computed at once, each in its own thread (default: one per
                                        # intra-op thread, see Batcher); the threads are shared among them

    def check(self) -> "ServeConfig":
        for name in ("max_batch_tokens", "max_client_batch_size", "max_queue", "payload_limit", "workers"):
            value = getattr(self, name)
            if name == "workers" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a whole number ≥ 1, got {value!r}")
        if self.pooling not in POOLINGS:
            raise InputError(f"--pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self


class ServeError(Exception):
    """An answer other than 200: its status, TEI's ``error_type`` and a message saying what to change."""

    def __init__(self, status: int, message: str, error_type: str = "validation"):
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


# ─── the model side: what the worker threads run ───────────────────────────────────────────
CLASSIFIER_SUFFIX = "ForSequenceClassification"
MLM_SUFFIXES = ("ForPreTraining", "ForMaskedLM")


class Service:
    """One loaded model and what it can answer. ``run(kind, items)`` is called from the worker threads,
    each with its own tokenizer and Embedder over the one model (a tokenizer sets its truncation per
    call, so threads share none); ``counter`` counts and shows tokens in the request handlers."""

    def __init__(self, model: str | Path, config: ServeConfig | None = None, device: str = "cpu"):
        from .heads import load_model
        self.config = (config or ServeConfig()).check()
        self.model_id = str(model)
        self.directory = resolve_model_path(model)
        self.model = load_model(self.directory).to(device).eval()
        self.architecture = type(self.model).__name__
        self.backbone, self.device = self.model.base_model, device
        self.counter = Tokenizer.from_pretrained(self.directory)     # the handlers'
        self._local = threading.local()                              # each worker thread's tokenizer, Embedder
        self.embedder = self._tools().embedder                       # (this thread's: the settings it resolved)
        self.precision = self.embedder.precision  # what it runs as on this device: fp32 | bf16
        self.max_input_length = self.embedder.max_length
        if self.config.pooling == "pooled" and self.backbone.pooler is None:
            raise InputError(f"{self.directory}: --pooling pooled needs a model with a pooler; use mean or cls")
        self.labels: list[str] | None = None
        if self.architecture.endswith(CLASSIFIER_SUFFIX):
            id2label = self.model.config.id2label or {i: f"LABEL_{i}" for i in range(self.model.config.num_labels)}
            self.labels = [id2label[i] for i in range(len(id2label))]
        self.endpoints = ["/embed", "/similarity", "/tokenize"] + (["/predict"] if self.labels else []) \
            + (["/fill-mask"] if self.architecture.endswith(MLM_SUFFIXES) else [])

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
            return list(tools.embedder.encode(items, pooling=self.config.pooling, batch_size=BATCH_SIZE))
        if kind == "predict":    # items: (text, pair | None) → (num_labels,) logits
            return self._logits(items, tools.tokenizer)
        if kind == "fill-mask":  # items: (text, its [MASK] count) → its MaskPredictions (top MAX_TOP_K)
            from .predict import predict_masks
            found = iter(predict_masks(self.model, tools.tokenizer, [text for text, _ in items], top_k=MAX_TOP_K,
                                       max_length=self.max_input_length, precision=self.precision))  # per [MASK]
            return [[next(found) for _ in range(n)] for _, n in items]
        raise ValueError(f"unknown kind {kind!r}")

    def _logits(self, items: list[tuple[str, str | None]], tokenizer: Tokenizer) -> list[np.ndarray]:
        from .tasks.classification import ClassificationData, class_logits, encode_classification
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


# ─── batching requests together ─────────────────────────────────────────────────────────────
@dataclass
class Job:
    kind: str                   # "embed" | "predict" | "fill-mask": requests of one kind share a batch
    items: list                 # what Service.run takes, one entry per input of the request
    tokens: int                 # real tokens in items (the batch budget)
    future: asyncio.Future = field(repr=False)


class Batcher:
    """An asyncio queue of jobs and ``workers`` model threads. A free worker takes the first job waiting
    and adds the next ones of the same kind while their tokens fit in ``max_batch_tokens`` and in its fair
    share of the work (the tokens waiting and being computed, over the workers), runs them as one call of
    ``service.run`` (length-sorted there) and hands each job its own slice of the results. While the
    workers compute, new requests queue up: the busier the server, the larger its batches.

    Why, by default, one single-threaded worker per intra-op thread rather than one worker with all of
    them (measured on 2 cores with MiniLM and real sentences in random order, bench/serve.py): one
    worker with 2 threads computes batches of 16 at 140 texts/s and of 32 at 180 (its threads wait for
    each other on small matrix products), and it idles while its answers go out and the next requests
    come in; a 1-thread worker computes about 105 texts/s at any batch size from 16 up, and two of them
    overlap: one computes while the other's clients send their next requests. The fair share keeps one
    worker from taking every waiting request while the other idles (without it, 32 clients settled into
    batches of 29 and 3). Requests one at a time gain nothing from a second thread either (one client:
    p50 14 ms with two 1-thread workers, 16 ms with one 2-thread worker). ``--workers 1`` gives all the
    threads to one batch at a time (the default on a GPU, where one stream runs the batches anyway)."""

    def __init__(self, service: Service):
        self.service = service
        self.config = service.config
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=self.config.max_queue)
        self.threads = torch.get_num_threads()          # intra-op threads of the process, shared among workers
        self.workers = self.config.workers or (self.threads if str(service.device) == "cpu" else 1)
        self.threads_per_worker = max(1, self.threads // self.workers)
        # torch's thread count is one setting per process: each worker sets it as it starts, stop() restores it
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="glassbert-model",
                                           initializer=torch.set_num_threads, initargs=(self.threads_per_worker,))
        self.batches = 0            # how many model calls ran, and over how many requests (in /info)
        self.requests = 0
        self.waiting_tokens = 0     # in the jobs queued (and one held back for the next batch)
        self.running_tokens = 0     # in the batches the workers are computing
        self._free: asyncio.Semaphore | None = None     # one unit per idle worker
        self._task: asyncio.Task | None = None
        self._batches: set[asyncio.Task] = set()        # batches in flight (asyncio keeps only weak references)

    def start(self) -> None:
        self._free = asyncio.Semaphore(self.workers)
        self._task = asyncio.get_running_loop().create_task(self._work(), name="glassbert-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.gather(*self._batches, return_exceptions=True)  # the batches in flight finish
        self.executor.shutdown(wait=True, cancel_futures=True)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    async def submit(self, kind: str, items: list, tokens: int) -> list:
        if tokens > self.config.max_batch_tokens:
            raise ServeError(413, f"the request holds {tokens} tokens, more than the server runs at once "
                                  f"(--max-batch-tokens {self.config.max_batch_tokens}): send fewer or shorter "
                                  "inputs per request")
        job = Job(kind, items, tokens, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise ServeError(429, f"the server is busy: {self.config.max_queue} requests are already waiting "
                                  "(--max-queue): retry in a moment, or send more inputs per request and fewer "
                                  "requests", "overloaded") from None
        self.waiting_tokens += tokens
        return await job.future

    async def _work(self) -> None:
        """Gather a batch whenever a worker is free, and start it."""
        assert self._free is not None
        held: Job | None = None     # a job that did not fit the last batch: it starts the next one
        while True:
            await self._free.acquire()
            first = held or await self.queue.get()
            held = None
            share = -(-(self.waiting_tokens + self.running_tokens) // self.workers)  # ceil
            jobs, tokens = [first], first.tokens
            while tokens < share and not self.queue.empty():
                job = self.queue.get_nowait()
                if job.kind != first.kind or tokens + job.tokens > self.config.max_batch_tokens:
                    held = job
                    break
                jobs.append(job)
                tokens += job.tokens
            self.waiting_tokens -= tokens
            jobs = [j for j in jobs if not j.future.done()]  # a client that went away is not computed
            if not jobs:
                self._free.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(first.kind, jobs, tokens))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run(self, kind: str, jobs: list[Job], tokens: int) -> None:
        """One batch on a worker thread; each job gets its own slice of the results."""
        assert self._free is not None
        items = [item for job in jobs for item in job.items]
        self.running_tokens += tokens
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self.service.run, kind, items)
        except Exception as e:  # a library error (or a bug) belongs to these requests, not to the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)
            return
        finally:
            self.running_tokens -= tokens
            self._free.release()
        self.batches += 1
        self.requests += len(jobs)
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[start:start + len(job.items)])
            start += len(job.items)


# ─── the HTTP app ───────────────────────────────────────────────────────────────────────────
# The request bodies (pydantic validates them; a body that does not fit is a 422 that shows the shape).
class EmbedRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["The cat chased the mouse."])
    normalize: bool = True
    truncate: bool = False


class SimilarityInputs(BaseModel):
    source_sentence: str
    sentences: list[str]


class SimilarityRequest(BaseModel):
    inputs: SimilarityInputs = Field(examples=[{"source_sentence": "The cat chased the mouse.",
                                                "sentences": ["A cat ran after a mouse.", "Stocks fell."]}])
    truncate: bool = False


class PredictRequest(BaseModel):
    inputs: Union[str, list[Union[str, list[str]]]] = Field(examples=["Best coffee I have ever had."])
    raw_scores: bool = False
    truncate: bool = False


class TokenizeRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["I love cats!"])
    add_special_tokens: bool = True


class FillMaskRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["The cat chased the [MASK]."])
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)
    truncate: bool = False


def create_app(service: Service):
    """The FastAPI app over ``service`` (its batcher starts with the app and stops with it)."""
    from fastapi import Request
    from fastapi_offline import FastAPIOffline  # FastAPI whose /docs page needs no CDN
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    config = service.config
    batcher = Batcher(service)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPIOffline(title="glassbert serve", version=service.info()["version"], lifespan=lifespan,
                  description=f"{service.architecture} from {service.directory}: "
                              f"{', '.join(service.endpoints)}. Shapes as text-embeddings-inference.")
    app.state.service, app.state.batcher = service, batcher

    def error(status: int, message: str, error_type: str) -> JSONResponse:
        return JSONResponse({"error": message, "error_type": error_type}, status_code=status)

    @app.exception_handler(ServeError)
    async def _serve_error(_request, e: ServeError):
        return error(e.status, e.message, e.error_type)

    @app.exception_handler(InputError)
    async def _input_error(_request, e: InputError):
        return error(422, str(e), "validation")

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, e: RequestValidationError):
        return error(422, describe_invalid(e.errors(), EXAMPLES.get(request.url.path)), "validation")

    @app.exception_handler(Exception)
    async def _bug(_request, e: Exception):
        log.exception("request failed")
        return error(500, f"internal error ({type(e).__name__}: {e}); the server log has the traceback",
                     "backend")

    def need(endpoint: str) -> None:
        if endpoint not in service.endpoints:
            what = ("a fine-tuned classifier (glassbert finetune … --task classify)" if endpoint == "/predict"
                    else "a model with an MLM head (a pretraining run, or BertForMaskedLM)")
            raise ServeError(400, f"{endpoint} needs {what}; {service.model_id} is a {service.architecture}, "
                                  f"which answers {', '.join(service.endpoints)}", "unsupported")

    def as_list(inputs: str | list[str]) -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts:
            raise ServeError(422, "inputs is an empty list: send at least one text")
        if len(texts) > config.max_client_batch_size:
            raise ServeError(413, f"{len(texts)} inputs in one request, more than --max-client-batch-size "
                                  f"{config.max_client_batch_size}: split them into requests of at most "
                                  f"{config.max_client_batch_size}")
        return texts

    async def vectors(texts: list[str], truncate: bool) -> list[np.ndarray]:
        tokens = service.count_tokens([(t, None) for t in texts], truncate)
        return await batcher.submit("embed", texts, tokens)

    @app.post("/embed", summary="Sentence vectors", response_model=list[list[float]])
    async def embed(body: EmbedRequest):
        found = await vectors(as_list(body.inputs), body.truncate)
        return [(unit(v) if body.normalize else v).tolist() for v in found]

    @app.post("/similarity", summary="Cosine of source_sentence with each of sentences",
              response_model=list[float])
    async def similarity(body: SimilarityRequest):
        sentences = as_list(body.inputs.sentences)
        found = await vectors([body.inputs.source_sentence, *sentences], body.truncate)
        source = unit(found[0])
        return [float(source @ unit(v)) for v in found[1:]]

    @app.post("/predict", summary="Label scores of a classifier, for a text, a pair or a batch")
    async def predict(body: PredictRequest):
        need("/predict")
        batch, items = predict_items(body.inputs)
        as_list(items)  # the batch-size limit
        logits = await batcher.submit("predict", items, service.count_tokens(items, body.truncate))
        labels = service.labels or []
        answers = []
        for row in logits:
            scores = row if body.raw_scores else torch.from_numpy(row).double().softmax(-1).numpy()
            answers.append(sorted(({"label": label, "score": float(s)} for label, s in zip(labels, scores)),
                                  key=lambda a: -a["score"]))
        return answers if batch else answers[0]

    @app.post("/tokenize", summary="Word pieces with ids and character offsets")
    async def tokenize(body: TokenizeRequest):
        return [service.tokens(t, i, body.add_special_tokens) for i, t in enumerate(as_list(body.inputs))]

    @app.post("/fill-mask", summary="The likeliest words for each [MASK]")
    async def fill_mask(body: FillMaskRequest):
        need("/fill-mask")
        texts = as_list(body.inputs)
        tokens = service.count_tokens([(t, None) for t in texts], body.truncate)
        found = await batcher.submit("fill-mask", list(zip(texts, service.count_masks(texts))), tokens)
        answers = [[[{"token": service.counter.convert_tokens_to_ids([w])[0], "token_str": w, "score": p}
                     for w, p in mask.candidates[:body.top_k]] for mask in masks] for masks in found]
        return answers[0] if isinstance(body.inputs, str) else answers

    @app.get("/health", summary="200 once the model is loaded")
    async def health():
        return {"status": "ok"}

    @app.get("/info", summary="The model, its type and the server's limits")
    async def info():
        return {**service.info(), "workers": batcher.workers, "threads_per_worker": batcher.threads_per_worker,
                "batches_run": batcher.batches, "requests_batched": batcher.requests}

    return PayloadLimit(HostCheck(app, "127.0.0.1"), config.payload_limit)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def predict_items(inputs: str | list) -> tuple[bool, list[tuple[str, str | None]]]:
    """(is a batch, [(text, pair or None)]) from /predict's inputs, read as TEI reads them: a string is one
    text; a list of two strings is one pair; any other list is a batch whose entries are a string, [text]
    or [text, pair]."""
    if isinstance(inputs, str):
        return False, [(inputs, None)]
    if len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
        return False, [(inputs[0], inputs[1])]
    items: list[tuple[str, str | None]] = []
    for i, entry in enumerate(inputs):
        if isinstance(entry, str):
            items.append((entry, None))
        elif len(entry) in (1, 2):
            items.append((entry[0], entry[1] if len(entry) == 2 else None))
        else:
            raise ServeError(422, f"inputs[{i}] holds {len(entry)} strings: an entry is a text, [text] or "
                                  "[text, pair]")
    return True, items


EXAMPLES = {
    "/embed": '{"inputs": ["a text", "another"], "normalize": true}',
    "/similarity": '{"inputs": {"source_sentence": "a text", "sentences": ["one", "two"]}}',
    "/predict": '{"inputs": "a text"} or {"inputs": ["a text", "its pair"]} or {"inputs": [["one"], ["two"]]}',
    "/tokenize": '{"inputs": "a text"}',
    "/fill-mask": '{"inputs": "the cat chased the [MASK].", "top_k": 5}',
}


JSON_TYPES = {int: "a number", float: "a number", bool: "true/false", str: "a string", list: "a list",
              dict: "an object", type(None): "null"}


def describe_invalid(errors: Sequence[dict], example: str | None) -> str:
    """pydantic's first complaint about a request body as one line, with the shape to send."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = loc[0] if loc else "body"
    # A field that may be of several types (a string or a list) gets one error per type: name them all.
    kinds = list(dict.fromkeys(str(e["loc"][2]) for e in errors
                               if len(e.get("loc", ())) > 2 and e["loc"][:2] == first["loc"][:2]))
    if first.get("type") == "json_invalid":
        what = f"the body is not JSON ({first.get('ctx', {}).get('error', first['msg'])})"
    elif first.get("type") == "missing":
        what = f"{'.'.join(loc) or 'body'} is missing"
    elif len(kinds) > 1:
        got = JSON_TYPES.get(type(first.get("input")), "value")
        what = f"{where} is {got}: expected {' or '.join(kinds)}"
    else:
        what = f"{'.'.join(loc) or 'body'}: {first['msg']}"
    return f"{what}; send JSON like {example}" if example else what


# ─── ASGI wrappers: body size and Host ──────────────────────────────────────────────────────
async def send_json_error(send, status: int, message: str, error_type: str) -> None:
    import json
    body = json.dumps({"error": message, "error_type": error_type}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class PayloadLimit:
    """413 for a request body over ``limit`` bytes, by its Content-Length or, when chunked, as it arrives
    (before the app parses any of it)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def __getattr__(self, name: str):  # app.state and the rest of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        too_large = (f"the request body is {{}} bytes, more than --payload-limit {self.limit}: send fewer or "
                     "shorter inputs per request")
        if length is not None:
            if length.isdigit() and int(length) > self.limit:
                return await send_json_error(send, 413, too_large.format(int(length)), "validation")
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await send_json_error(send, 413, too_large.format(f"over {size}"), "validation")
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def buffered():
            return replay.pop() if replay else await receive()
        return await self.app(scope, buffered, send)


class HostCheck:
    """403 for a Host header other than the loopback names and the host the server was started on, unless
    it listens on all interfaces (then the user asked for remote access). A page on another site that makes
    its own name resolve to 127.0.0.1 (DNS rebinding) still sends that name, and is refused."""

    def __init__(self, app, host: str):
        self.app = app
        self.set_host(host)

    def set_host(self, host: str) -> None:
        self.host = host
        self.names = {*LOOPBACK_NAMES, host.lower().strip("[]")}

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.host not in ALL_INTERFACES:
            value = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip().lower()
            name = value[1:].partition("]")[0] if value.startswith("[") else value.rpartition(":")[0] or value
            if value and name.rstrip(".") not in self.names:
                return await send_json_error(send, 403, f"host {value[:100]!r} refused: this server answers to "
                                                        f"{', '.join(sorted(self.names))}; start it with --host "
                                                        f"{value.split(':')[0][:100]} to serve that name", "host")
        return await self.app(scope, receive, send)


def set_host(app, host: str) -> None:
    """Tell the app's Host check which host it was bound to."""
    while not isinstance(app, HostCheck):
        app = app.app
    app.set_host(host)


# ─── binding and running ────────────────────────────────────────────────────────────────────
def bind(host: str = "127.0.0.1", port: int = 8080) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); InputError, one line, for a host that is no
    address of this machine or a port that is taken."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"--port {port!r}: a port is a whole number from 0 to 65535 (0 picks a free one)")
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        detail = e.strerror if isinstance(e, socket.gaierror) and e.strerror else str(e)
        raise InputError(f"--host {host!r} is not an address or a name this machine can resolve ({detail}); "
                         "give --host 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)") from None
    family, _, _, _, address = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRNOTAVAIL:
            raise InputError(f"cannot serve on {where}: {host} is not an address of this machine; give --host "
                             "127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)") from None
        raise InputError(f"cannot serve on {where}: {e.strerror or e}; choose another --port "
                         "(0 picks a free one)") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ALL_INTERFACES:
        host = "::1" if host == "::" else "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Server:
    """A bound, loaded server: ``run()`` serves until Ctrl-C or SIGTERM (uvicorn's own handlers, which
    finish the requests in flight); ``start()`` serves in a thread (tests, notebooks), ``stop()`` ends it."""

    def __init__(self, model: str | Path, host: str = "127.0.0.1", port: int = 8080,
                 config: ServeConfig | None = None, device: str = "cpu"):
        import uvicorn
        config = (config or ServeConfig()).check()
        self.socket = bind(host, port)  # a bad host or a taken port fails before the model loads
        try:
            self.service = Service(model, config, device)
        except BaseException:
            self.socket.close()
            raise
        self.app = create_app(self.service)
        set_host(self.app, host)
        self.url = url_of(self.socket)
        self.uvicorn = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                     timeout_graceful_shutdown=10))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> "Server":
        self._thread = threading.Thread(target=self.run, name="glassbert-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server thread did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8080, config: ServeConfig | None = None,
          echo=print) -> None:
    """`glassbert serve`: load MODEL, bind, print where, serve until Ctrl-C or SIGTERM."""
    server = Server(model, host, port, config)
    info, batcher = server.service.info(), server.app.state.batcher
    echo(f"glassbert serve: {server.service.architecture} from {server.service.directory} "
         f"(hidden {info['hidden_size']}, max input {info['max_input_length']} tokens, {info['precision']}; "
         f"{plural(batcher.workers, 'worker')} of {plural(batcher.threads_per_worker, 'thread')})")
    echo(f"  {server.url}  {' '.join(server.service.endpoints)}  docs: {server.url}/docs  (Ctrl-C stops)")
    # uvicorn catches Ctrl-C and SIGTERM, finishes the requests in flight, then raises the signal again:
    # both end here as a clean stop (exit status 0), not as a KeyboardInterrupt or a kill.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    echo("glassbert serve: stopped")


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


__all__ = ["ServeConfig", "ServeError", "Service", "Batcher", "Server", "create_app", "serve", "bind",
           "predict_items"]
