"""The HTTP side of `glassbert serve`: the request bodies, the FastAPI app over a :class:`Service` and its
:class:`Batcher`, the error answers (JSON ``{"error", "error_type"}``), and the ASGI wrappers in front of
it: :class:`PayloadLimit` (413) and :class:`HostCheck` (the Host policy of :mod:`glassbert.net`).

Besides TEI's routes: TEI's root ``POST /`` (and ``/invocations``), answered by the model's kind as TEI does
(``/predict`` for a classifier, ``/embed`` for any other model), which huggingface_hub's ``InferenceClient``
posts to; and OpenAI's ``POST /v1/embeddings`` and ``GET /v1/models``, whose errors are OpenAI's shape
(``{"error": {"message", "type", "code"}}``), which the ``openai`` client reads."""
from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Literal, Optional, Union

import numpy as np
import torch
from pydantic import BaseModel, Field

from ..errors import InputError, ServeError
from ..net import HostPolicy
from .batcher import Batcher
from .service import MAX_TOP_K, Service

log = logging.getLogger("glassbert.serve")


# The request bodies (pydantic validates them; a body that does not fit is a 422 that shows the shape).
class EmbedParameters(BaseModel):
    """Where huggingface_hub's InferenceClient.feature_extraction puts its arguments (``{"inputs", "parameters"}``);
    one given here wins over the same one at the top."""
    normalize: Optional[bool] = None
    truncate: Optional[bool] = None
    dimensions: Optional[int] = Field(None, ge=1)
    truncation_direction: Optional[Literal["right", "Right"]] = None  # the end is cut; "left" is not done
    prompt_name: Optional[str] = None  # refused: glassbert models have no prompts
    encoding_format: Optional[Literal["float"]] = None


class EmbedRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["The cat chased the mouse."])
    normalize: bool = True
    truncate: bool = False
    dimensions: Optional[int] = Field(None, ge=1)  # the first d numbers of each vector (then normalized), as TEI
    parameters: Optional[EmbedParameters] = None

    def options(self) -> tuple[bool, bool, Optional[int]]:
        """(normalize, truncate, dimensions), ``parameters`` over the top-level fields."""
        p = self.parameters or EmbedParameters()
        if p.prompt_name is not None:
            raise ServeError(422, f"parameters.prompt_name {p.prompt_name!r}: this model has no prompts; "
                                  "leave prompt_name out")
        return (self.normalize if p.normalize is None else p.normalize,
                self.truncate if p.truncate is None else p.truncate,
                self.dimensions if p.dimensions is None else p.dimensions)


class SimilarityInputs(BaseModel):
    source_sentence: str
    sentences: list[str]


class SimilarityRequest(BaseModel):
    inputs: SimilarityInputs = Field(examples=[{"source_sentence": "The cat chased the mouse.",
                                                "sentences": ["A cat ran after a mouse.", "Stocks fell."]}])
    truncate: bool = False


class PredictParameters(BaseModel):
    """InferenceClient.text_classification's arguments."""
    function_to_apply: Optional[Literal["softmax", "sigmoid", "none"]] = None
    top_k: Optional[int] = Field(None, ge=1)


class PredictRequest(BaseModel):
    inputs: Union[str, list[Union[str, list[str]]]] = Field(examples=["Best coffee I have ever had."])
    raw_scores: bool = False
    truncate: bool = False
    parameters: Optional[PredictParameters] = None


class OpenAIEmbeddingRequest(BaseModel):
    """OpenAI's embeddings request (the ``openai`` client sends ``encoding_format`` "base64" unless told)."""
    input: Union[str, list[str], list[int], list[list[int]]] = Field(examples=[["I love cats!", "Stocks fell."]])
    model: Optional[str] = None  # any name: the one model served answers
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(None, ge=1)
    user: Optional[str] = None
    truncate: bool = False  # glassbert's (as /embed's): cut an input longer than the model takes (extra_body)


class TokenizeRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["I love cats!"])
    add_special_tokens: bool = True


class FillMaskRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["The cat chased the [MASK]."])
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)
    truncate: bool = False


class SearchRequest(BaseModel):
    inputs: Union[str, list[str]] = Field(examples=["how do I reset my password?"])
    top_k: int = Field(10, ge=1)
    truncate: bool = False


def create_app(service: Service):
    """The FastAPI app over ``service`` (its batcher starts with the app and stops with it)."""
    from fastapi import Request
    from fastapi_offline import FastAPIOffline  # FastAPI whose /docs page needs no CDN
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from starlette.exceptions import HTTPException as StarletteHTTPException

    config = service.config
    batcher = Batcher(service)
    started = int(time.time())

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

    def error(request: Request, status: int, message: str, error_type: str, headers=None) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, status, message, error_type), status_code=status,
                            headers=headers)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, e: ServeError):
        return error(request, e.status, e.message, e.error_type)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError):
        return error(request, 422, str(e), "validation")

    root = "/predict" if service.labels else "/embed"  # what TEI's root / and /invocations answer

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, e: RequestValidationError):
        path = root if request.url.path in ("/", "/invocations") else request.url.path
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        errors = e.errors()
        whole_body = bool(errors) and tuple(errors[0].get("loc", ())) == ("body",)
        if kind and not kind.endswith(("/json", "+json")) and whole_body:
            # FastAPI reads a body as JSON only when its Content-Type says so (curl -d sends a form's)
            return error(request, 422, f"the body must be UTF-8 JSON sent with Content-Type: application/json "
                                       f"(this one says {kind}); send JSON like {EXAMPLES.get(path, '{}')}",
                         "validation")
        return error(request, 422, describe_invalid(errors, EXAMPLES.get(path)), "validation")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        """FastAPI's own answers (no such route, wrong method, a body it cannot read) in the server's shape."""
        where = f"{request.method} {request.url.path}"
        example = EXAMPLES.get(root if request.url.path in ("/", "/invocations") else request.url.path, "{}")
        if e.status_code == 404:
            paths = sorted({r.path for r in app.routes if getattr(r, "include_in_schema", False)})
            message, kind = (f"{where}: no such route; this server answers {', '.join(paths)} (and /docs)",
                             "not_found")
        elif e.status_code == 405:
            allowed = (e.headers or {}).get("Allow", "another method")
            message, kind = f"{where}: {request.url.path} answers {allowed}, not {request.method}", "method"
        elif e.status_code == 400 and e.__cause__ is not None:  # the body could not be read as JSON
            message, kind = (f"the body must be UTF-8 JSON ({type(e.__cause__).__name__}: {e.__cause__}); "
                             f"send JSON like {example}", "validation")
        else:
            message, kind = f"{where}: {e.detail}", "validation" if e.status_code < 500 else "backend"
        return error(request, e.status_code, message, kind, headers=e.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        log.exception("request failed")
        return error(request, 500, f"internal error ({type(e).__name__}: {e}); the server log has the traceback",
                     "backend")

    def need(endpoint: str) -> None:
        if endpoint not in service.endpoints:
            what = ("a fine-tuned classifier (glassbert finetune … --task classify)" if endpoint == "/predict"
                    else "a model with an MLM head (a pretraining run, or BertForMaskedLM)")
            raise ServeError(400, f"{endpoint} needs {what}; {service.model_id} is a {service.architecture}, "
                                  f"which answers {', '.join(service.endpoints)}", "unsupported")

    def as_list(inputs: str | list[str], name: str = "inputs") -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts:
            raise ServeError(422, f"{name} is an empty list: send at least one text")
        if len(texts) > config.max_client_batch_size:
            raise ServeError(413, f"{len(texts)} inputs in one request, more than --max-client-batch-size "
                                  f"{config.max_client_batch_size}: split them into requests of at most "
                                  f"{config.max_client_batch_size}")
        return texts

    async def vectors(texts: list[str], truncate: bool) -> list[np.ndarray]:
        tokens = service.count_tokens([(t, None) for t in texts], truncate)
        return await batcher.submit("embed", texts, tokens)

    def cut(v: np.ndarray, dimensions: int | None, name: str = "dimensions") -> np.ndarray:
        """The first ``dimensions`` numbers of ``v`` (all of them for None); 422 for more than it has."""
        if dimensions is not None and dimensions > len(v):
            raise ServeError(422, f"{name} {dimensions}: this model's vectors have {len(v)} numbers; ask for "
                                  f"at most {len(v)}, or leave it out")
        return v if dimensions is None else v[:dimensions]

    @app.post("/embed", summary="Sentence vectors", response_model=list[list[float]])
    async def embed(body: EmbedRequest):
        normalize, truncate, dimensions = body.options()
        found = await vectors(as_list(body.inputs), truncate)
        return [(unit(cut(v, dimensions)) if normalize else cut(v, dimensions)).tolist() for v in found]

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
        p = body.parameters or PredictParameters()
        apply = "none" if body.raw_scores else (p.function_to_apply or "softmax")
        answers = []
        for row in logits:
            logit = torch.from_numpy(row).double()
            scores = {"none": logit, "softmax": logit.softmax(-1), "sigmoid": logit.sigmoid()}[apply].numpy()
            answers.append(sorted(({"label": label, "score": float(s)} for label, s in zip(labels, scores)),
                                  key=lambda a: -a["score"])[:p.top_k])
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

    # TEI's root, which huggingface_hub's InferenceClient(model="http://host:port") posts {"inputs", "parameters"} to
    for path in ("/", "/invocations"):
        app.add_api_route(path, predict if service.labels else embed, methods=["POST"],
                          summary=f"TEI's root{' (SageMaker)' if path != '/' else ''}: {root} for this model")

    # ─── OpenAI's embeddings API ─────────────────────────────────────────────────────────────────
    @app.post("/v1/embeddings", summary="OpenAI's embeddings API: unit-length vectors, float or base64")
    async def openai_embeddings(body: OpenAIEmbeddingRequest):
        texts = as_list(openai_texts(body.input), "input")
        tokens = service.count_tokens([(t, None) for t in texts], body.truncate)
        found = await batcher.submit("embed", texts, tokens)
        data = []
        for i, v in enumerate(found):
            v = unit(cut(v, body.dimensions)).astype("<f4")  # little-endian float32, as OpenAI's client decodes
            data.append({"object": "embedding", "index": i,
                         "embedding": base64.b64encode(v.tobytes()).decode("ascii")
                         if body.encoding_format == "base64" else v.tolist()})
        return {"object": "list", "data": data, "model": service.model_id,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.get("/v1/models", summary="OpenAI's model list: the one model served")
    async def openai_models():
        return {"object": "list", "data": [{"id": service.model_id, "object": "model", "created": started,
                                            "owned_by": "glassbert"}]}

    @app.post("/search", summary="The nearest texts of the index (serve --index) to each query")
    async def search(body: SearchRequest):
        from ..search import check_queries
        if service.index is None:
            raise ServeError(400, "/search needs an index: start the server with --index DIR (a directory "
                                  "written by glassbert index with this model)", "unsupported")
        texts = check_queries(as_list(body.inputs))
        found = np.stack(await vectors(texts, body.truncate))
        if service.index.info["normalize"]:
            found = np.stack([unit(v) for v in found])
        return [[hit.as_dict() for hit in hits] for hits in service.index.search_vectors(found, body.top_k)]

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


def openai_texts(found: str | list) -> str | list[str]:
    """OpenAI's ``input`` as texts; 422 for token ids (a client's own tokenizer's ids, such as tiktoken's, mean
    nothing to this model)."""
    if isinstance(found, list) and found and not all(isinstance(x, str) for x in found):
        raise ServeError(422, "input holds token ids: this server embeds text, with its model's own tokenizer; "
                              "send a string or a list of strings (LangChain's OpenAIEmbeddings: "
                              "check_embedding_ctx_length=False)")
    return found


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
    "/v1/embeddings": '{"model": "any", "input": ["a text", "another"], "encoding_format": "float"}',
    "/similarity": '{"inputs": {"source_sentence": "a text", "sentences": ["one", "two"]}}',
    "/predict": '{"inputs": "a text"} or {"inputs": ["a text", "its pair"]} or {"inputs": [["one"], ["two"]]}',
    "/tokenize": '{"inputs": "a text"}',
    "/fill-mask": '{"inputs": "the cat chased the [MASK].", "top_k": 5}',
    "/search": '{"inputs": "a query", "top_k": 10}',
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
        what = f"the body is not JSON ({first.get('ctx', {}).get('error', first['msg'])}): it must be UTF-8 JSON"
    elif first.get("type") == "missing":
        what = f"{'.'.join(loc) or 'body'} is missing"
    elif len(kinds) > 1:
        got = JSON_TYPES.get(type(first.get("input")), "value")
        what = f"{where} is {got}: expected {' or '.join(kinds)}"
    else:
        what = f"{'.'.join(loc) or 'body'}: {first['msg']}"
    return f"{what}; send JSON like {example}" if example else what


# ─── the error shape, and ASGI wrappers: body size and Host ─────────────────────────────────
OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                429: "rate_limit_error"}


def error_body(path: str, status: int, message: str, error_type: str) -> dict:
    """The server's JSON error: TEI's ``{"error", "error_type"}``, or under /v1/ OpenAI's
    ``{"error": {"message", "type", "code"}}`` (``code``: glassbert's error_type)."""
    if path.startswith("/v1/") or path == "/v1":
        kind = "server_error" if status >= 500 else OPENAI_TYPES.get(status, "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": error_type}}
    return {"error": message, "error_type": error_type}


async def send_json_error(send, status: int, message: str, error_type: str, path: str = "") -> None:
    import json
    body = json.dumps(error_body(path, status, message, error_type)).encode()
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
                return await send_json_error(send, 413, too_large.format(int(length)), "validation",
                                             scope["path"])
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
                return await send_json_error(send, 413, too_large.format(f"over {size}"), "validation",
                                             scope["path"])
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
                return await send_json_error(send, refusal.status, refusal.message, "host", scope["path"])
        return await self.app(scope, receive, send)


def set_host(app, host: str, url: str = "") -> None:
    """Tell the app's Host check which host it was bound to (and its URL, for the refusal's message)."""
    while not isinstance(app, HostCheck):
        app = app.app
    app.set_host(host, url)
