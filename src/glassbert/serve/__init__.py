"""`glassbert serve MODEL`: embeddings, similarity, classification, fill-mask and tokens over HTTP.

The request and response shapes are text-embeddings-inference's (TEI) where it has them, so a client
written for TEI talks to glassbert unchanged:

    POST /embed       {"inputs": str | [str], "normalize": true, "truncate": false}   → [[float]]
    POST /similarity  {"inputs": {"source_sentence": str, "sentences": [str]}}       → [float] (cosine)
    POST /predict     {"inputs": str | [str, str] (a pair) | [str | [str] | [str, str]], "raw_scores": false}
                      → [{"label", "score"}] (all labels, best first); a list of those for a batch
    POST /tokenize    {"inputs": str | [str], "add_special_tokens": true}  → [[{"id","text","special","start","stop"}]]
    POST /fill-mask   {"inputs": str | [str], "top_k": 5}  → per text, per [MASK]: [{"token","token_str","score"}]
    POST /search      {"inputs": str | [str], "top_k": 10}  (serve --index DIR) → per query: [{"text","score","index"}]
    GET  /health, /info (model, type, hidden size, limits), /docs (OpenAPI)
    POST /, /invocations  TEI's root, by the model's kind: /predict for a classifier, else /embed
                      (huggingface_hub's InferenceClient posts {"inputs", "parameters"} here)
    POST /v1/embeddings  OpenAI's {"model", "input", "encoding_format", "dimensions"} → {"data": [{"embedding",
                      "index"}], "usage"}; GET /v1/models. Errors under /v1/ are OpenAI's {"error": {"message", ...}}

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
not started for: a page on another site must not reach it through DNS rebinding), 400 (``host``: no Host
header or more than one); the Host policy is :mod:`glassbert.net`'s, shared with the explorer.

The package: :mod:`.service` (ServeConfig, Service: the model and what it answers), :mod:`.batcher`
(Job, Batcher), :mod:`.app` (request bodies, create_app, errors, PayloadLimit, HostCheck), :mod:`.server`
(Server, serve: binding and running).
"""
from __future__ import annotations

from ..errors import ServeError
from ..net import bind
from .app import HostCheck, PayloadLimit, create_app, describe_invalid, predict_items
from .batcher import Batcher, Job
from .server import Server, serve
from .service import ServeConfig, Service

__all__ = ["ServeConfig", "ServeError", "Service", "Batcher", "Job", "Server", "create_app", "serve", "bind",
           "predict_items", "describe_invalid", "PayloadLimit", "HostCheck"]
