"""glassbert serve (glassbert.serve) on a free loopback port, and the model directories others load (export).

Servers run in a thread of the test process (uvicorn), over real HTTP; the SIGTERM test starts the command.
"""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import glassbert as gb
from glassbert.cli import main
from glassbert.embed import Embedder
from glassbert.heads import BertForPreTraining, BertForSequenceClassification
from glassbert.fill_mask import fill_mask
from glassbert.serve import ServeConfig, Server, predict_items
from glassbert.tasks.classifier import classify
from glassbert.tokenizer import Tokenizer

TEXTS = ["I love cats!", "He hates pineapple pizza.",
         "The quick brown fox jumps over the lazy dog near the river bank at dawn.", "A man is playing a guitar."]


def call(url: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None):
    """(status, decoded JSON) of a GET (body None) or a JSON POST."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url + path, data=data, headers={"content-type": "application/json",
                                                                     **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def assert_error(answer, status: int, error_type: str, fragment: str) -> None:
    got, body = answer
    assert got == status, body
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type, body
    assert fragment in body["error"], body["error"]


# ─── fixtures: MiniLM, and tiny random heads on MiniLM's vocabulary ─────────────────────────
@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory, minilm_path):
    """A classifier (labels neg/pos) and a pretraining model (MLM + NSP): 2 layers, random, MiniLM's tokenizer."""
    tok = Tokenizer.from_pretrained(minilm_path)
    root = tmp_path_factory.mktemp("serve-models")
    torch.manual_seed(0)
    config = gb.BertConfig.preset("tiny", vocab_size=tok.vocab_size)
    classifier = BertForSequenceClassification(config.replace(id2label={0: "neg", 1: "pos"}))
    mlm = BertForPreTraining(config)
    return {"classifier": classifier.save_pretrained(root / "classifier", tokenizer=tok),
            "mlm": mlm.save_pretrained(root / "mlm", tokenizer=tok)}


def start(model, **limits) -> Server:
    return Server(model, port=0, config=ServeConfig(**limits)).start()


@pytest.fixture(scope="module")
def minilm_server(minilm_path):
    server = start(minilm_path, max_client_batch_size=8, max_batch_tokens=2048, payload_limit=20_000, workers=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def classifier_server(tiny_dirs):
    server = start(tiny_dirs["classifier"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlm_server(tiny_dirs):
    server = start(tiny_dirs["mlm"])
    yield server
    server.stop()


# ─── happy paths, equal to the library ──────────────────────────────────────────────────────
def test_embed_equals_the_library(minilm_server, minilm_path):
    library = Embedder(minilm_path).encode(TEXTS, normalize=False)
    status, raw = call(minilm_server.url, "/embed", {"inputs": TEXTS, "normalize": False})
    assert status == 200
    np.testing.assert_allclose(np.array(raw), library, atol=1e-5)
    status, unit = call(minilm_server.url, "/embed", {"inputs": TEXTS})  # normalize: true by default, as TEI
    np.testing.assert_allclose(np.array(unit), library / np.linalg.norm(library, axis=1, keepdims=True), atol=1e-5)
    status, one = call(minilm_server.url, "/embed", {"inputs": TEXTS[2]})  # a string: a list of one vector
    assert status == 200 and len(one) == 1
    np.testing.assert_allclose(one[0], unit[2], atol=1e-5)


def test_similarity_is_the_cosine_of_library_vectors(minilm_server, minilm_path):
    vectors = Embedder(minilm_path).encode(TEXTS, normalize=True)
    status, scores = call(minilm_server.url, "/similarity",
                          {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}})
    assert status == 200
    np.testing.assert_allclose(scores, vectors[1:] @ vectors[0], atol=1e-5)


def test_tokenize_gives_ids_and_offsets(minilm_server, minilm_path):
    tok = Tokenizer.from_pretrained(minilm_path)
    status, (tokens,) = call(minilm_server.url, "/tokenize", {"inputs": "Café au lait!"})
    assert status == 200
    assert [t["id"] for t in tokens] == tok.encode("Café au lait!")
    assert [t["text"] for t in tokens if not t["special"]] == tok.tokenize("Café au lait!")
    assert ["Café au lait!"[t["start"]:t["stop"]] for t in tokens[1:-1]] == ["Café", "au", "lai", "t", "!"]  # lai ##t
    status, plain = call(minilm_server.url, "/tokenize", {"inputs": ["a cat", "b"], "add_special_tokens": False})
    assert [[t["text"] for t in row] for row in plain] == [["a", "cat"], ["b"]]


def test_predict_single_pair_and_batch_equal_classify(classifier_server, tiny_dirs):
    url = classifier_server.url
    singles = classify(tiny_dirs["classifier"], texts=TEXTS[:2])
    pair = classify(tiny_dirs["classifier"], texts=[TEXTS[2]], text_pairs=[TEXTS[3]])[0]

    def as_dict(answer):
        assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)  # best first
        return {a["label"]: a["score"] for a in answer}

    status, one = call(url, "/predict", {"inputs": TEXTS[0]})
    assert status == 200 and as_dict(one) == pytest.approx(singles[0]["probs"], abs=1e-6)
    status, two = call(url, "/predict", {"inputs": [TEXTS[2], TEXTS[3]]})  # two strings: one pair, as TEI
    assert as_dict(two) == pytest.approx(pair["probs"], abs=1e-6)
    status, batch = call(url, "/predict", {"inputs": [[TEXTS[0]], [TEXTS[2], TEXTS[3]], TEXTS[1]]})
    assert status == 200 and len(batch) == 3
    for answer, expected in zip(batch, [singles[0], pair, singles[1]]):
        assert as_dict(answer) == pytest.approx(expected["probs"], abs=1e-6)
    status, raw = call(url, "/predict", {"inputs": TEXTS[0], "raw_scores": True})
    logits = torch.tensor([as_dict(raw)["neg"], as_dict(raw)["pos"]]).double()
    assert logits.softmax(-1).tolist() == pytest.approx([singles[0]["probs"]["neg"], singles[0]["probs"]["pos"]])


def test_predict_inputs_are_read_as_tei_reads_them():
    assert predict_items("a") == (False, [("a", None)])
    assert predict_items(["a", "b"]) == (False, [("a", "b")])
    assert predict_items(["a", "b", "c"]) == (True, [("a", None), ("b", None), ("c", None)])
    assert predict_items([["a"], ["b", "c"]]) == (True, [("a", None), ("b", "c")])


def test_fill_mask_equals_the_library(mlm_server, tiny_dirs):
    texts = ["the cat chased the [MASK].", "[MASK] went to [MASK] on monday."]
    expected = fill_mask(tiny_dirs["mlm"], texts, top_k=3)
    status, answers = call(mlm_server.url, "/fill-mask", {"inputs": texts, "top_k": 3})
    assert status == 200 and [len(masks) for masks in answers] == [1, 2]
    flat = [mask for masks in answers for mask in masks]
    for got, want in zip(flat, expected):
        assert [c["token_str"] for c in got] == [w for w, _ in want.candidates]
        assert [c["score"] for c in got] == pytest.approx([p for _, p in want.candidates], abs=1e-6)
    status, single = call(mlm_server.url, "/fill-mask", {"inputs": texts[0]})
    assert status == 200 and len(single) == 1 and len(single[0]) == 5  # a string: its masks; top_k 5 by default


def test_info_health_and_docs(minilm_server, classifier_server):
    status, info = call(minilm_server.url, "/info")
    assert status == 200
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert (info["hidden_size"], info["max_input_length"], info["max_client_batch_size"]) == (384, 512, 8)
    assert info["endpoints"] == ["/embed", "/similarity", "/tokenize"]
    status, info = call(classifier_server.url, "/info")
    assert info["model_type"] == {"classifier": {"id2label": {"0": "neg", "1": "pos"}}}
    assert "/predict" in info["endpoints"]
    assert call(minilm_server.url, "/health") == (200, {"status": "ok"})
    status, spec = call(minilm_server.url, "/openapi.json")
    assert {"/embed", "/similarity", "/predict", "/tokenize", "/fill-mask", "/info", "/health"} <= set(spec["paths"])
    with urllib.request.urlopen(minilm_server.url + "/docs", timeout=30) as r:
        page = r.read().decode()
    assert r.status == 200 and "swagger" in page.lower()
    scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert scripts and all(s.startswith("/") for s in scripts), scripts  # served here: the page works offline
    for script in scripts:
        with urllib.request.urlopen(minilm_server.url + script, timeout=30) as r:
            assert r.status == 200 and len(r.read()) > 10_000


# ─── errors: each says what to change, and the server goes on ───────────────────────────────
def test_413_over_the_limits_and_the_server_keeps_serving(minilm_server):
    url = minilm_server.url
    assert_error(call(url, "/embed", {"inputs": ["a"] * 9}), 413, "validation", "--max-client-batch-size 8")
    assert_error(call(url, "/embed", {"inputs": "word " * 600}), 413, "validation", '"truncate": true')
    assert_error(call(url, "/embed", {"inputs": ["word " * 300] * 8, "truncate": True}), 413, "validation",
                 "--max-batch-tokens 2048")
    assert_error(call(url, "/embed", {"inputs": ["x" * 5000] * 5}), 413, "validation", "--payload-limit 20000")
    status, vectors = call(url, "/embed", {"inputs": ["word " * 600], "truncate": True})
    assert status == 200 and len(vectors[0]) == 384
    status, vectors = call(url, "/embed", {"inputs": TEXTS})
    assert status == 200 and len(vectors) == len(TEXTS)


def test_422_bad_bodies(minilm_server, mlm_server):
    url = minilm_server.url
    assert_error(call(url, "/embed", raw=b"{not json"), 422, "validation", "not JSON")
    assert_error(call(url, "/embed", {"inputs": 3}), 422, "validation", "inputs is a number: expected str or list[str]")
    assert_error(call(url, "/embed", {"text": "a"}), 422, "validation", "inputs is missing; send JSON like")
    assert_error(call(url, "/embed", {"inputs": []}), 422, "validation", "empty list")
    assert_error(call(url, "/embed", {"inputs": "\udcff"}), 422, "validation", "not UTF-8")
    assert_error(call(url, "/predict", {"inputs": [["a", "b", "c"]]}), 400, "unsupported", "fine-tuned classifier")
    assert_error(call(mlm_server.url, "/fill-mask", {"inputs": ["a [MASK]", "no mask here"]}), 422, "validation",
                 "input 1 has no [MASK]")
    assert_error(call(mlm_server.url, "/fill-mask", {"inputs": "a [MASK]", "top_k": 0}), 422, "validation", "top_k")


def test_a_host_it_was_not_started_for_is_refused(minilm_server):
    assert_error(call(minilm_server.url, "/health", headers={"Host": "attacker.example:8080"}), 403, "host",
                 "attacker.example")
    assert call(minilm_server.url, "/health", headers={"Host": "localhost:1234"})[0] == 200


def raw_get(url: str, path: str, hosts: list[str], version: str = "HTTP/1.1") -> tuple[int, dict]:
    """(status, JSON body) of a GET carrying exactly these Host headers (none, one or several)."""
    where = urlsplit(url)
    head = "".join(f"Host: {h}\r\n" for h in hosts)
    with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
        conn.sendall(f"GET {path} {version}\r\n{head}Connection: close\r\n\r\n".encode("latin-1"))
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("hosts", [["attacker.example", "127.0.0.1"], ["127.0.0.1", "attacker.example"],
                                   ["localhost", "localhost"]])
def test_two_host_headers_are_refused(minilm_server, hosts):
    """Whatever they say: a foreign Host followed by a loopback one was answered 200 before (issue 32)."""
    status, body = raw_get(minilm_server.url, "/health", hosts)
    assert status == 400 and body["error_type"] == "host" and "2 Host headers" in body["error"], body


@pytest.mark.parametrize("host, status", [
    ("127.0.0.1", 200), ("localhost.", 200), ("LOCALHOST:9000", 200), ("[::1]:80", 200),
    ("", 403), ("localhost.attacker.example", 403), ("127.0.0.1.nip.io", 403), ("10.0.0.1", 403),
    ("localhost:abc", 403), ("[::2]", 403)])
def test_the_host_policy_is_the_explorers(minilm_server, host, status):
    """glassbert.net's policy, as the explorer applies it (tests/test_explorer.py)."""
    got, body = raw_get(minilm_server.url, "/health", [host])
    assert got == status, (host, body)
    if status == 403:
        assert body["error_type"] == "host" and f"host {host!r} refused" in body["error"], body
        assert minilm_server.url in body["error"] and "127.0.0.1" in body["error"], body


def test_a_request_without_host_is_refused_unless_http_1_0(minilm_server):
    status, body = raw_get(minilm_server.url, "/health", [])
    assert status == 400 and body["error_type"] == "host" and "no Host header" in body["error"], body
    assert raw_get(minilm_server.url, "/health", [], "HTTP/1.0") == (200, {"status": "ok"})


def test_bound_to_all_interfaces_it_answers_this_machines_names_and_addresses(tiny_dirs):
    server = Server(tiny_dirs["classifier"], host="0.0.0.0", port=0).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        for ok in ("192.0.2.7:8080", "[2001:db8::1]", socket.gethostname(), "localhost"):
            assert raw_get(server.url, "/health", [ok])[0] == 200, ok
        for bad in ("attacker.example", f"{socket.gethostname()}.attacker.example", "192.0.2.7.nip.io"):
            status, body = raw_get(server.url, "/health", [bad])
            assert status == 403 and "any IP address" in body["error"], (bad, body)
        assert raw_get(server.url, "/health", ["192.0.2.7", "localhost"])[0] == 400
    finally:
        server.stop()


# ─── batching: a blocked worker lets requests pile up ───────────────────────────────────────
class Gate:
    """Wraps Service.run so that the worker waits at a gate; counts the calls and their sizes."""

    def __init__(self, server: Server):
        self.entered, self.opened, self.sizes = threading.Event(), threading.Event(), []
        run = server.service.run

        def gated(kind, items):
            self.sizes.append(len(items))
            self.entered.set()
            self.opened.wait(60)
            return run(kind, items)
        server.service.run = gated


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_waiting_requests_run_as_one_batch_each_with_its_own_answers(tiny_dirs, minilm_path):
    server = start(tiny_dirs["classifier"], max_queue=6, max_batch_tokens=60, workers=1)
    try:
        gate, queue = Gate(server), server.app.state.batcher.queue
        embedder = Embedder(tiny_dirs["classifier"])

        def library(texts):
            return embedder.encode(texts, normalize=False)
        requests = [[f"request {i} text {j} " + "word " * (i % 3) for j in range(1 + i % 2)] for i in range(7)]
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(call, server.url, "/embed", {"inputs": requests[0], "normalize": False})
            assert gate.entered.wait(30)
            rest = []
            for body in requests[1:]:  # queued in this order while the worker waits
                rest.append(pool.submit(call, server.url, "/embed", {"inputs": body, "normalize": False}))
                wait_for(lambda: queue.qsize() == len(rest))
            assert_error(call(server.url, "/embed", {"inputs": "one too many"}), 429, "overloaded", "--max-queue")
            gate.opened.set()
            answers = [first.result()] + [f.result() for f in rest]
        for body, (status, vectors) in zip(requests, answers):
            assert status == 200
            np.testing.assert_allclose(np.array(vectors), library(body), atol=1e-5)
        # the waiting requests, in order, gathered while their tokens fit in 60
        tok = Tokenizer.from_pretrained(tiny_dirs["classifier"])
        expected, tokens = [[]], 0
        for body in requests[1:]:
            n = sum(len(tok.encode(text)) for text in body)
            if tokens + n > 60:
                expected, tokens = expected + [[]], 0
            expected[-1] += body
            tokens += n
        assert len(expected) > 1 and max(map(len, expected)) > 1  # the test shows both: gathering and the budget
        assert gate.sizes == [len(requests[0])] + [len(texts) for texts in expected]
        assert call(server.url, "/info")[1]["batches_run"] == 1 + len(expected)
    finally:
        gate.opened.set()
        server.stop()


class Turnstile:
    """Wraps Service.run so that each call waits until the test lets that call through; records the thread
    and the size of each call."""

    def __init__(self, server: Server):
        self.calls: list[tuple[str, int]] = []
        self.passes: list[threading.Event] = [threading.Event() for _ in range(16)]
        run, lock = server.service.run, threading.Lock()

        def gated(kind, items):
            with lock:
                number = len(self.calls)
                self.calls.append((threading.current_thread().name, len(items)))
            self.passes[number].wait(60)
            return run(kind, items)
        server.service.run = gated

    def let_through(self, number: int) -> None:
        self.passes[number].set()


def test_two_workers_compute_two_batches_at_once_and_share_the_waiting_work(tiny_dirs):
    server = start(tiny_dirs["classifier"], workers=2)
    gate = Turnstile(server)
    try:
        queue, batcher = server.app.state.batcher.queue, server.app.state.batcher
        assert call(server.url, "/info")[1]["workers"] == 2
        texts = [f"request {letter}" for letter in "abcdef"]
        tok = Tokenizer.from_pretrained(tiny_dirs["classifier"])
        assert len({len(tok.encode(t)) for t in texts}) == 1  # equal shares are counted in tokens
        with ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(call, server.url, "/embed", {"inputs": texts[0], "normalize": False})]
            wait_for(lambda: len(gate.calls) == 1)
            answers.append(pool.submit(call, server.url, "/embed", {"inputs": texts[1], "normalize": False}))
            wait_for(lambda: len(gate.calls) == 2)  # the first batch still runs: a second worker took this one
            assert gate.calls[0][0] != gate.calls[1][0]
            for i, text in enumerate(texts[2:], 1):
                answers.append(pool.submit(call, server.url, "/embed", {"inputs": text, "normalize": False}))
                wait_for(lambda: queue.qsize() == i)
            # the first worker comes free while the second computes 1 request and 4 wait: its share of the 5
            # is 3 (rounded up), not all 4; the second then takes the last one
            gate.let_through(0)
            wait_for(lambda: len(gate.calls) == 3)
            gate.let_through(1)
            wait_for(lambda: len(gate.calls) == 4)
            for number in range(2, 4):
                gate.let_through(number)
            results = [a.result() for a in answers]
        assert [size for _, size in gate.calls] == [1, 1, 3, 1]
        library = Embedder(tiny_dirs["classifier"]).encode(texts, normalize=False)
        for (status, vectors), expected in zip(results, library):
            assert status == 200
            np.testing.assert_allclose(np.array(vectors[0]), expected, atol=1e-5)
        assert batcher.running_tokens == 0 and batcher.waiting_tokens == 0
    finally:
        for number in range(16):
            gate.let_through(number)
        server.stop()


def test_concurrent_clients_get_their_own_answers_in_order(minilm_server, minilm_path):
    embedder = Embedder(minilm_path)
    bodies = [[f"client {i}: {TEXTS[(i + j) % len(TEXTS)]}" for j in range(1 + i % 4)] for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda b: call(minilm_server.url, "/embed", {"inputs": b, "normalize": False}),
                                bodies))
    for body, (status, vectors) in zip(bodies, answers):
        assert status == 200
        np.testing.assert_allclose(np.array(vectors), embedder.encode(body, normalize=False), atol=1e-5)


# ─── the command ────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("args, fragment", [
    (["--host", "no-such-host.invalid"], "--host 'no-such-host.invalid' is not an address"),
    (["--host", "192.0.2.1"], "192.0.2.1 is not an address of this machine"),
    (["--pooling", "pooled", "--port", "0"], "--pooling pooler needs a model with a pooler"),
])
def test_serve_bad_options_are_one_line(args, fragment, tiny_dirs):
    model = tiny_dirs["mlm"] if "--pooling" not in args else _no_pooler(tiny_dirs)
    result = CliRunner().invoke(main, ["serve", str(model), *args])
    assert result.exit_code == 1
    assert fragment in result.output and len(result.output.strip().splitlines()) == 1, result.output


def _no_pooler(tiny_dirs) -> Path:
    from glassbert.heads import BertForMaskedLM
    directory = tiny_dirs["mlm"].parent / "no-pooler"
    if not directory.exists():
        BertForMaskedLM.from_pretrained(tiny_dirs["mlm"]).save_pretrained(directory)
    return directory


def test_a_taken_port_is_one_line(minilm_server, tiny_dirs):
    port = minilm_server.url.rsplit(":", 1)[1]
    result = CliRunner().invoke(main, ["serve", str(tiny_dirs["mlm"]), "--port", port])
    assert result.exit_code == 1 and "choose another --port" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_the_command_cleanly(sig, tiny_dirs):
    proc = subprocess.Popen([sys.executable, "-m", "glassbert", "serve", str(tiny_dirs["classifier"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        url = lines[1].split()[0]
        assert url.startswith("http://127.0.0.1:"), lines
        assert call(url, "/predict", {"inputs": "fine"})[0] == 200
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip().endswith("glassbert serve: stopped"), out
    assert "Traceback" not in out


# ─── models others load ─────────────────────────────────────────────────────────────────────
@pytest.mark.slow
def test_sentence_transformers_loads_the_export_with_glassbert_embeddings(tmp_path, minilm_path):
    st = pytest.importorskip("sentence_transformers")
    texts = TEXTS + ["word " * 700]  # one longer than the model takes: cut at the same length
    for pooling, normalize in (("mean", True), ("cls", False)):
        out = tmp_path / pooling
        result = CliRunner().invoke(main, ["export", str(minilm_path), "--out", str(out), "--sentence-transformers",
                                           "--pooling", pooling] + ([] if normalize else ["--no-normalize"]))
        assert result.exit_code == 0, result.output
        theirs = st.SentenceTransformer(str(out), device="cpu").encode(texts)
        ours = Embedder(out).encode(texts, pooling=pooling, normalize=normalize)
        cosine = (theirs * ours).sum(1) / np.linalg.norm(theirs, axis=1) / np.linalg.norm(ours, axis=1)
        assert cosine.min() >= 0.99999
        np.testing.assert_allclose(np.linalg.norm(theirs, axis=1), np.linalg.norm(ours, axis=1), rtol=1e-4)
    modules = json.loads((tmp_path / "mean" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]


def test_sentence_transformers_option_refuses_what_it_cannot_write(tmp_path, minilm_path):
    model = gb.BertModel.from_pretrained(minilm_path)
    with pytest.raises(gb.errors.InputError, match="no mode for BERT's pooler output"):
        model.save_pretrained(tmp_path / "a", sentence_transformers=True, pooling="pooled")
    bare = gb.BertModel(gb.BertConfig.preset("tiny"))
    with pytest.raises(gb.errors.InputError, match="needs a tokenizer"):
        bare.save_pretrained(tmp_path / "b", sentence_transformers=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before writing


def test_export_refuses_an_existing_target_and_keeps_the_class(tmp_path, tiny_dirs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["export", str(tiny_dirs["classifier"]), "--out", str(out)])
    assert result.exit_code == 1 and "already holds files: pass --overwrite" in result.output
    assert (out / "mine.txt").read_text() == "keep me"
    fresh = tmp_path / "fresh"
    assert CliRunner().invoke(main, ["export", str(tiny_dirs["classifier"]), "--out", str(fresh)]).exit_code == 0
    config = json.loads((fresh / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and (fresh / "vocab.txt").is_file()


@pytest.mark.slow
def test_transformers_pipeline_gives_classify_scores(tiny_dirs):
    transformers = pytest.importorskip("transformers")
    pipe = transformers.pipeline("text-classification", model=str(tiny_dirs["classifier"]), top_k=None, device="cpu")
    theirs = pipe(TEXTS)
    ours = classify(tiny_dirs["classifier"], texts=TEXTS)
    for answer, row in zip(theirs, ours):
        assert {a["label"]: a["score"] for a in answer} == pytest.approx(row["probs"], abs=1e-5)
