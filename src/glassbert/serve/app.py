"""The HTTP side of `glassbert serve`: the request bodies, the FastAPI app over a :class:`Service` and its
:class:`Batcher`, the error answers (JSON ``{"error", "error_type"}``), and the ASGI wrappers in front of
it: :class:`PayloadLimit` (413) and :class:`HostCheck` (the Host policy of :mod:`glassbert.net`)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Union

import numpy as np
import torch
from pydantic import BaseModel, Field

from ..errors import InputError, ServeError
from ..net import HostPolicy
from .batcher import Batcher
from .service import MAX_TOP_K, Service

log = logging.getLogger("glassbert.serve")


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
    """The Host policy of :mod:`glassbert.net` (DNS rebinding) in front of the app: a request it refuses
    (400: not exactly one Host header; 403: a Host the server was not started for) is answered with the
    server's JSON error, ``error_type`` ``host``, and never reaches the app."""

    def __init__(self, app, host: str, url: str = ""):
        self.app = app
        self.set_host(host, url)

    def set_host(self, host: str, url: str = "") -> None:
        self.host, self.policy = host, HostPolicy(host, url)

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            values = [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == b"host"]
            refusal = self.policy.refusal(values, http11=scope.get("http_version") != "1.0")
            if refusal is not None:
                return await send_json_error(send, refusal.status, refusal.message, "host")
        return await self.app(scope, receive, send)


def set_host(app, host: str, url: str = "") -> None:
    """Tell the app's Host check which host it was bound to (and its URL, for the refusal's message)."""
    while not isinstance(app, HostCheck):
        app = app.app
    app.set_host(host, url)
