"""glassbert serve driven by clients nobody on this project wrote (issue 32): huggingface_hub's InferenceClient
(TEI's root route) and the official openai client (/v1/embeddings), answers equal to the Embedder's; one error
shape for every 4xx; a client that stalls in its headers is cut off.

Servers run in a thread of the test process on a free loopback port (tests/test_serve.py's helpers)."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest

from glassbert.embed import Embedder
from glassbert.serve import ServeConfig, Server
from test_serve import TEXTS, assert_error, call, raw_get, tiny_dirs  # noqa: F401  (tiny_dirs: a fixture)

huggingface_hub = pytest.importorskip("huggingface_hub")
openai = pytest.importorskip("openai")

ATOL = 1e-6


@pytest.fixture(scope="module")
def server(minilm_path):
    server = Server(minilm_path, port=0, config=ServeConfig(max_client_batch_size=8, payload_limit=20_000,
                                                            header_timeout=1.0)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def library(minilm_path):
    """The Embedder's raw (not normalized) mean-pooled vectors of TEXTS: what every answer is compared with."""
    return Embedder(minilm_path).encode(TEXTS, pooling="mean", normalize=False)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def hub_client(monkeypatch):
    """InferenceClient for a URL. The suite runs with HF_HUB_OFFLINE=1 (conftest), under which huggingface_hub
    refuses every request, a loopback one too: lifted here, for a client that only talks to 127.0.0.1."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return lambda url: huggingface_hub.InferenceClient(model=url, timeout=60)


def openai_client(server: Server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)


# ─── huggingface_hub's InferenceClient: TEI's root ─────────────────────────────────────────
def test_inference_client_feature_extraction_text_and_list(server, library, hub_client):
    client = hub_client(server.url)
    one = client.feature_extraction(TEXTS[0])
    assert one.shape == (1, 384)
    np.testing.assert_allclose(one[0], unit(library[0]), atol=ATOL)
    several = client.feature_extraction(TEXTS)
    np.testing.assert_allclose(several, unit(library), atol=ATOL)
    raw = client.feature_extraction(TEXTS, normalize=False)  # sent as {"parameters": {"normalize": false}}
    np.testing.assert_allclose(raw, library, atol=1e-5)


def test_the_root_and_invocations_answer_by_the_models_kind(server, library, tiny_dirs, hub_client):
    for path in ("/", "/invocations"):
        status, vectors = call(server.url, path, {"inputs": TEXTS[:2]})
        assert status == 200
        np.testing.assert_allclose(vectors, unit(library[:2]), atol=ATOL)
    status, cut = call(server.url, "/", {"inputs": TEXTS[0], "parameters": {"dimensions": 16}})
    np.testing.assert_allclose(cut[0], unit(library[0][:16]), atol=ATOL)
    assert_error(call(server.url, "/", {"inputs": "a", "parameters": {"prompt_name": "query"}}), 422,
                 "validation", "no prompts")
    assert_error(call(server.url, "/", {"inputs": 3}), 422, "validation", '{"inputs": ["a text", "another"]')

    classifier = Server(tiny_dirs["classifier"], port=0).start()  # a classifier's root is /predict
    try:
        status, expected = call(classifier.url, "/predict", {"inputs": TEXTS[0]})
        assert call(classifier.url, "/", {"inputs": TEXTS[0]}) == (200, expected)
        assert call(classifier.url, "/invocations", {"inputs": TEXTS[0]}) == (200, expected)
        top = hub_client(classifier.url).text_classification(TEXTS[0])
        # TEI answers one text with a flat list, of which huggingface_hub's parser keeps the first: the best label
        top = top if not isinstance(top, list) else top[0]
        assert (top.label, top.score) == pytest.approx((expected[0]["label"], expected[0]["score"]))
        status, one = call(classifier.url, "/", {"inputs": TEXTS[0], "parameters": {"top_k": 1,
                                                                                   "function_to_apply": "none"}})
        assert status == 200 and len(one) == 1 and one[0]["label"] == expected[0]["label"]
    finally:
        classifier.stop()


# ─── the openai client: /v1/embeddings, /v1/models ─────────────────────────────────────────
def test_openai_embeddings_string_list_and_base64(server, library):
    client = openai_client(server)
    answer = client.embeddings.create(model="anything", input=TEXTS[1], encoding_format="float")
    assert len(answer.data) == 1 and answer.data[0].index == 0 and answer.object == "list"
    np.testing.assert_allclose(answer.data[0].embedding, unit(library[1]), atol=ATOL)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 3
    answer = client.embeddings.create(model="anything", input=TEXTS, encoding_format="float")
    assert [d.index for d in answer.data] == list(range(len(TEXTS)))
    np.testing.assert_allclose([d.embedding for d in answer.data], unit(library), atol=ATOL)
    # Without encoding_format the client asks for base64 and decodes it itself (little-endian float32)
    decoded = client.embeddings.create(model="anything", input=TEXTS)
    np.testing.assert_allclose([d.embedding for d in decoded.data], unit(library), atol=ATOL)
    as_float = call(server.url, "/v1/embeddings", {"input": TEXTS[0]})[1]["data"][0]["embedding"]
    status, raw = call(server.url, "/v1/embeddings", {"input": TEXTS[0], "encoding_format": "base64"})
    assert status == 200 and raw["model"] == server.service.model_id
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), "<f4"),
                                  np.float32(as_float))
    short = client.embeddings.create(model="anything", input=TEXTS[0], dimensions=32, encoding_format="float")
    np.testing.assert_allclose(short.data[0].embedding, unit(library[0][:32]), atol=ATOL)


def test_openai_models_lists_the_served_model(server):
    models = openai_client(server).models.list()
    assert [m.id for m in models.data] == [server.service.model_id]


def test_openai_errors_are_openais_shape_and_the_client_reads_them(server):
    client = openai_client(server)
    with pytest.raises(openai.UnprocessableEntityError, match="token ids") as caught:
        client.embeddings.create(model="m", input=[[101, 2023, 102]])
    assert caught.value.code == "validation" and caught.value.type == "invalid_request_error"
    with pytest.raises(openai.UnprocessableEntityError, match="input is an empty list"):
        client.embeddings.create(model="m", input=[])
    with pytest.raises(openai.UnprocessableEntityError, match="384 numbers"):
        client.embeddings.create(model="m", input="a", dimensions=500)
    with pytest.raises(openai.APIStatusError, match="--max-client-batch-size 8") as caught:
        client.embeddings.create(model="m", input=["a"] * 9)
    assert caught.value.status_code == 413
    with pytest.raises(openai.APIStatusError, match='"truncate": true'):
        client.embeddings.create(model="m", input="word " * 600)
    cut = client.embeddings.create(model="m", input="word " * 600, extra_body={"truncate": True})
    assert len(cut.data[0].embedding) == 384 and cut.usage.total_tokens == 512
    for answer, status in [(call(server.url, "/v1/embeddings", raw=b"\xff\xfe{"), 400),
                           (call(server.url, "/v1/embeddings", raw=b"{no"), 422),
                           (call(server.url, "/v1/embeddings", {"inputs": "a"}), 422),
                           (call(server.url, "/v1/embeddings", {"input": "x" * 30_000}), 413),
                           (call(server.url, "/v1/nothing", {"input": "a"}), 404),
                           (call(server.url, "/v1/models", {"input": "a"}), 405),
                           (call(server.url, "/v1/models", headers={"Host": "attacker.example"}), 403)]:
        got, body = answer
        assert got == status, body
        assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
        assert body["error"]["message"] and body["error"]["code"], body


# ─── one error shape for every 4xx of TEI's routes ─────────────────────────────────────────
def test_every_4xx_is_the_servers_json_error(server):
    url = server.url
    assert_error(call(url, "/embed", raw=b'{"inputs": "caf\xe9"}'), 400, "validation", "must be UTF-8 JSON")
    assert_error(call(url, "/", raw=b"\xff\xfe\xfd"), 400, "validation", "must be UTF-8 JSON")
    assert_error(call(url, "/embed", raw=b"{not json"), 422, "validation", "must be UTF-8 JSON")
    form = {"content-type": "application/x-www-form-urlencoded"}  # curl -d without -H
    assert_error(call(url, "/embed", raw=b'{"inputs": "a"}', headers=form), 422, "validation",
                 "Content-Type: application/json (this one says application/x-www-form-urlencoded)")
    assert_error(call(url, "/nothing-here", {"inputs": "a"}), 404, "not_found", "/embed")
    assert_error(call(url, "/embed"), 405, "method", "answers POST, not GET")
    assert_error(call(url, "/embed", {"inputs": "a", "parameters": {"truncation_direction": "left"}}), 422,
                 "validation", "truncation_direction")
    status, vectors = call(url, "/embed", {"inputs": "still serving"})
    assert status == 200 and len(vectors[0]) == 384


def test_two_host_headers_are_still_refused_on_the_new_routes(server):
    status, body = raw_get(server.url, "/v1/models", ["attacker.example", "127.0.0.1"])
    assert status == 400 and "2 Host headers" in body["error"]["message"], body


# ─── a client that stalls in its headers ───────────────────────────────────────────────────
def read_all(conn: socket.socket) -> bytes:
    reply = b""
    while chunk := conn.recv(65536):
        reply += chunk
    return reply


def test_a_client_stalled_in_its_headers_is_closed_with_408(server):
    where = urlsplit(server.url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as stalled, \
            socket.create_connection((where.hostname, where.port), timeout=10) as silent:
        began = time.monotonic()
        stalled.sendall(b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica")
        # meanwhile the server answers others
        assert call(server.url, "/embed", {"inputs": "a"})[0] == 200
        reply = read_all(stalled)
        waited = time.monotonic() - began
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert "did not arrive within 1 s" in json.loads(reply.partition(b"\r\n\r\n")[2])["error"]
        assert read_all(silent) == b""  # one that sent nothing is closed without an answer
    assert 0.9 < waited < 5, waited


@pytest.mark.slow
def test_a_slow_body_or_an_idle_keep_alive_is_not_a_header_timeout(server):
    """The limit is on the headers: a request whose headers came in time is answered, however slow its body."""
    where = urlsplit(server.url)
    body = json.dumps({"inputs": "a slow body"}).encode()
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        head = (f"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        conn.sendall(head + body[:5])
        time.sleep(1.5)
        conn.sendall(body[5:])
        assert read_all(conn).startswith(b"HTTP/1.1 200"), "a slow body was cut off"


def ok_reply(conn: socket.socket) -> bool:
    """Whether the next reply on ``conn`` is the test app's 200 "ok" (read to its end, however it arrives)."""
    reply = b""
    while not reply.endswith(b"\r\n\r\nok"):
        chunk = conn.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply.startswith(b"HTTP/1.1 200")


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["h11", "httptools"])
def test_the_header_timeout_works_on_both_of_uvicorns_parsers(protocol):
    import uvicorn
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    from glassbert.serve.header_timeout import with_header_timeout
    pytest.importorskip(protocol)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    http = with_header_timeout(import_from_string(HTTP_PROTOCOLS[protocol]), 0.5)
    server = uvicorn.Server(uvicorn.Config(app, http=http, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # one request in time, kept alive
            assert ok_reply(conn)
            time.sleep(0.7)  # idle between requests: uvicorn's keep-alive (5 s), not the header limit
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert ok_reply(conn)
            conn.sendall(b"GET / HTTP/1.1\r\nHo")  # the next one stalls
            began = time.monotonic()
            assert read_all(conn).startswith(b"HTTP/1.1 408")
            assert 0.4 < time.monotonic() - began < 3
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.read() == b"ok"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
