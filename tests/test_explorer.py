"""The explorer's server (read-only, confined to the run directory) and the single-file export."""
from __future__ import annotations

import base64
import http.client
import json
import os
import logging
import re
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from glassbert.explorer import export_html, make_server
from glassbert.errors import ExistsError, InputError
from glassbert.explorer.server import STATIC_DIR, format_values, safe_join, PathRefused
from glassbert.recording import MANIFEST_VERSION, load_manifest, load_tensor

from helpers_record import toy_model, toy_run, toy_tokenizer

PROBS = "bert.encoder.layer.1.attention.self.probs"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("explorer") / "demo"
    toy_run(run, epochs=10, spec="samples=0,1,4;epochs=0,4,last")
    (run / "config.json").write_text("{}")
    outside = run.parent / "secret.txt"
    outside.write_text("do not serve me")
    os.symlink(outside, run / "escape.txt")
    return run


@pytest.fixture(scope="module")
def server(run):
    srv = make_server(run).start()
    yield srv
    srv.stop()


def get(server, path: str, method: str = "GET", hosts: list[str] | None = None) -> tuple[int, dict, bytes]:
    """One raw request (the path as-is: no client-side normalisation of '..'); ``hosts``: the Host
    header(s) to send instead of the server's own address."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest(method, path, skip_host=hosts is not None, skip_accept_encoding=True)
    for value in hosts or []:
        conn.putheader("Host", value)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def test_binds_localhost_by_default(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")


def test_page_and_static_files(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="epoch-slider"' in body and b'src="static/app.js"' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    scripts = re.findall(r'<script src="(static/[^"]+)"></script>', body.decode("utf-8"))
    assert scripts[0] == "static/core.js" and scripts[-1] == "static/app.js" and "static/views/attribution.js" in scripts
    for src in scripts:  # the core, each view (in the views/ subfolder) and the app
        status, headers, _ = get(server, "/" + src)
        assert status == 200 and "javascript" in headers["Content-Type"], src
    assert b"function getTensor" in get(server, "/static/core.js")[2]
    assert b'id="attribution-view"' in get(server, "/static/views/attribution.js")[2]
    assert get(server, "/static/style.css")[0] == 200


def test_the_page_is_a_core_and_one_module_per_view():
    """index.html lists every file of static/views/ once (the registry of views: a new view is its file and
    one line there), each registers one view, and no script is over 500 lines."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    listed = re.findall(r'<script src="static/([^"]+)"></script>', html)
    assert listed[:2] == ["core.js", "draw.js"] and listed[-1] == "app.js" and len(set(listed)) == len(listed)
    views = sorted(p.relative_to(STATIC_DIR).as_posix() for p in (STATIC_DIR / "views").glob("*.js"))
    assert sorted(s for s in listed if s.startswith("views/")) == views and len(views) >= 12
    assert sorted(p.name for p in STATIC_DIR.glob("*.js")) == ["app.js", "core.js", "draw.js", "forward.js",
                                                               "pagemodel.js", "tokenize.js"]
    for rel in listed:
        text = (STATIC_DIR / rel).read_text(encoding="utf-8")
        assert text.count("\n") <= 500, rel
        assert not rel.startswith("views/") or text.count("GB.registerView(") == 1, rel


def test_manifest_and_metrics(server, run):
    status, _, body = get(server, "/api/manifest")
    assert status == 200
    manifest = json.loads(body)
    on_disk = load_manifest(run)
    assert manifest["snapshots"] == on_disk["snapshots"] and manifest["tensors"] == on_disk["tensors"]
    status, _, body = get(server, "/api/metrics")
    rows = json.loads(body)
    assert status == 200 and len(rows) == 10 and rows[0]["step"] == 1 and "mlm_loss" in rows[0]


def test_tensor_json_and_binary_equal_the_recording(server, run):
    expected = load_tensor(run, 1, PROBS, sample=2)
    status, _, body = get(server, f"/api/tensor?snap=1&name={PROBS}&sample=2")
    assert status == 200
    got = json.loads(body)
    assert got["shape"] == list(expected.shape) and got["dtype"] == "F32"
    np.testing.assert_allclose(np.array(got["data"]).reshape(got["shape"]), expected.numpy(), rtol=5e-4, atol=1e-12)
    status, headers, body = get(server, f"/api/tensor?snap=1&name={PROBS}&sample=2&format=bin")
    assert status == 200 and headers["X-Shape"] == ",".join(map(str, expected.shape))
    assert np.array_equal(np.frombuffer(body, "<f4").reshape(expected.shape), expected.numpy())
    # another sample, a weight (no sample axis), a row window
    other = json.loads(get(server, f"/api/tensor?snap=1&name={PROBS}&sample=0")[2])
    assert not np.allclose(other["data"], got["data"])
    w = "bert.encoder.layer.0.attention.self.query.weight"
    status, headers, body = get(server, f"/api/tensor?snap=2&name={w}&rows=3:7&format=bin")
    assert status == 200 and headers["X-Shape"] == "4,7"
    assert np.array_equal(np.frombuffer(body, "<f4").reshape(4, 7), load_tensor(run, 2, w)[3:7].numpy())
    # an alias is served as the tensor it equals
    alias = json.loads(get(server, "/api/tensor?snap=0&name=bert.embeddings.dropout&sample=1")[2])
    ln = json.loads(get(server, "/api/tensor?snap=0&name=bert.embeddings.layernorm&sample=1")[2])
    assert alias["data"] == ln["data"]


def test_masked_scores_become_null_in_json():
    assert format_values(np.array([1.23456, -np.inf, np.nan, 0.0, -3.4e38], dtype=np.float32)) \
        == "[1.235,null,null,0,-3.4e+38]"


@pytest.mark.parametrize("path, message", [
    (f"/api/tensor?snap=0&name=no.such.tensor", "was not recorded"),
    (f"/api/tensor?snap=99&name={PROBS}", "snapshot 99 does not exist"),
    (f"/api/tensor?snap=0&name={PROBS}&sample=9", "sample 9 does not exist"),
    ("/api/nothing", "no such route"),
    ("/static/nothing.js", "no such file"),
    ("/run/record/snap-999999.safetensors", "no such file"),
])
def test_unknown_things_are_clear_404s(server, path, message):
    status, headers, body = get(server, path)
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert message in json.loads(body)["message"]


@pytest.mark.parametrize("path", [
    "/static/../../record.py",
    "/static/%2e%2e/%2e%2e/record.py",
    "/static/..%2f..%2frecord.py",
    "/run/../secret.txt",
    "/run/%2e%2e/secret.txt",
    "/run/record/../../secret.txt",
    "/run//etc/passwd",
    "/run/%2Fetc%2Fpasswd",
    "/run/escape.txt",          # a symlink inside the run dir that points outside it
    "/run/..\\secret.txt",
    "/run/record/%00manifest.json",
])
def test_paths_leaving_the_run_dir_are_refused(server, path):
    status, _, body = get(server, path)
    assert status == 403, (path, status, body[:200])
    assert b"do not serve me" not in body and b"import" not in body


def test_files_inside_the_run_dir_are_served_read_only(server, run):
    status, _, body = get(server, "/run/record/manifest.json")
    assert status == 200 and json.loads(body)["version"] == MANIFEST_VERSION
    status, _, body = get(server, "/run/config.json")
    assert status == 200 and body == b"{}"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = get(server, "/api/manifest", method)
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, _, body = get(server, "/api/manifest", "HEAD")
    assert status == 200 and body == b""


def test_safe_join():
    root = Path("/srv/run")
    assert safe_join(root, "record/a.json") == Path("/srv/run/record/a.json").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\x00b", "c:/x"):
        with pytest.raises(PathRefused):
            safe_join(root, bad)


# ------------------------------------------------------------------------------- export
def _embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="glassbert-data">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def test_export_is_one_self_contained_file(run, tmp_path):
    out = export_html(run, tmp_path / "demo.html")
    assert [p.name for p in tmp_path.iterdir()] == ["demo.html"]
    html = out.read_text(encoding="utf-8")
    for needle in ("http://", "https://", "//cdn", "@import", "url(http", "src=\"//"):
        assert needle not in html, needle
    assert not re.search(r"<script[^>]*\ssrc=", html) and not re.search(r"<link[^>]*\shref=", html)
    assert re.search(r"<img[^>]*\ssrc=", html) is None
    assert "<style>" in html and "function getTensor" in html
    data = _embedded(html)
    assert data["manifest"]["snapshots"] == load_manifest(run)["snapshots"]
    assert all(len(s["attributions"]) == 3 for s in data["manifest"]["snapshots"])  # the attribution view's data
    assert len(data["metrics"]) == 10
    arr = _decoded(data, 2, PROBS)
    assert arr.dtype == np.float16 and data["tensors"][2][PROBS]["delta"] == 1  # XOR-ed with snapshot 1's bits
    assert np.array_equal(arr[1], load_tensor(run, 2, PROBS, sample=1).numpy().astype(np.float16))
    # exact=True keeps float32 as recorded
    exact = _embedded(export_html(run, tmp_path / "exact.html", exact=True).read_text(encoding="utf-8"))
    assert np.array_equal(_decoded(exact, 2, PROBS)[1], load_tensor(run, 2, PROBS, sample=1).numpy())
    # layout changes are rebuilt by the page from their source, not stored
    derived = data["manifest"]["export_derived"]
    kt = "bert.encoder.layer.0.attention.self.key_transposed"
    assert derived[kt] == {"op": "transpose", "from": ["bert.encoder.layer.0.attention.self.key"]}
    assert all(kt not in snap for snap in data["tensors"])


def _decoded(data: dict, snap: int, name: str) -> np.ndarray:
    """What the page decodes: deflated bytes, float16 split into low and high halves, XOR-ed with snapshot snap−1."""
    import zlib

    entry = data["tensors"][snap][name]
    raw = zlib.decompress(base64.b64decode(entry["b64"]))
    if entry["dtype"] == "f32":
        return np.frombuffer(raw, "<f4").reshape(entry["shape"])
    bits = np.frombuffer(raw, np.uint8).reshape(2, -1).T.copy().view("<u2").ravel()
    if entry["delta"]:
        bits = bits ^ _decoded(data, snap - 1, name).view("<u2").ravel()
    return bits.view("<f2").reshape(entry["shape"])


def test_export_inlines_every_script_of_the_page_in_order(run, tmp_path, monkeypatch):
    import glassbert.explorer.export as export

    html = export_html(run, tmp_path / "demo.html").read_text(encoding="utf-8")
    listed = re.findall(r'<script src="static/([^"]+)"></script>', (STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    at = [html.index("<script>\n" + (STATIC_DIR / rel).read_text(encoding="utf-8") + "\n</script>") for rel in listed]
    assert at == sorted(at) and html.index('id="glassbert-data"') < at[0]
    # a missing script, or one that would end its <script> early, is refused (and nothing is written)
    static = tmp_path / "static"
    shutil.copytree(STATIC_DIR, static)
    monkeypatch.setattr(export, "STATIC_DIR", static)
    (static / "views" / "diff.js").unlink()
    with pytest.raises(InputError, match="static/views/diff.js, which is not a file"):
        export_html(run, tmp_path / "missing.html")
    shutil.copy(STATIC_DIR / "views" / "diff.js", static / "views" / "diff.js")
    (static / "views" / "curves.js").write_text("const s = '</script>';", encoding="utf-8")
    with pytest.raises(InputError, match="static/views/curves.js contains a closing tag"):
        export_html(run, tmp_path / "closing.html")
    assert sorted(p.name for p in tmp_path.glob("*.html")) == ["demo.html"]


def test_export_size_bound_leaves_out_weights_first(run, tmp_path):
    full = _embedded(export_html(run, tmp_path / "full.html").read_text(encoding="utf-8"))
    payload = sum(len(e["b64"]) for snap in full["tensors"] for e in snap.values())
    bound = 2_000_000 + payload - 10_000  # the exporter keeps 2 MB of room for the page itself
    out = export_html(run, tmp_path / "small.html", max_bytes=bound)
    assert out.stat().st_size <= bound
    data = _embedded(out.read_text(encoding="utf-8"))
    dropped = data["manifest"]["export_dropped"]
    assert dropped and "bert.embeddings.word_embeddings.weight" in dropped
    kinds = {load_manifest(run)["tensors"][n]["kind"] for n in dropped}
    assert kinds == {"weight"}
    assert all(n not in data["tensors"][0] for n in dropped)
    assert PROBS in data["tensors"][0]
    with pytest.raises(ValueError):
        export_html(run, tmp_path / "none.html", max_bytes=2_000_000)


def test_export_over_its_bound_leaves_tensors_out_and_says_so(run, tmp_path):
    """Issue 30, defect 11: over its bound an export leaves whole tensors out (none of their bytes in the file), lists
    them in its manifest and carries the page's note naming them (#export-note, which the browser test reads)."""
    full = _embedded(export_html(run, tmp_path / "full.html").read_text(encoding="utf-8"))
    assert not full["manifest"].get("export_dropped")
    payload = sum(len(e["b64"]) for snap in full["tensors"] for e in snap.values())
    out = export_html(run, tmp_path / "small.html", max_bytes=2_000_000 + payload - 10_000)
    html = out.read_text(encoding="utf-8")
    data = _embedded(html)
    dropped = data["manifest"]["export_dropped"]
    assert dropped and out.stat().st_size <= 2_000_000 + payload - 10_000
    assert all(n not in snap for snap in data["tensors"] for n in dropped)
    assert "id: 'export-note'" in html and "to stay under its size bound" in html


def test_export_escapes_urls_and_script_tags_in_texts(tmp_path):
    from glassbert.recording import record_once

    tok = toy_tokenizer()
    text = "visit https://example.com </script><script>alert(1)</script>"
    with warnings.catch_warnings():  # the text is truncated to 16 tokens: said elsewhere, not checked here
        warnings.simplefilter("ignore")
        run = record_once(toy_model(tok).bert, tok, [text], tmp_path / "url", max_length=16)
    html = export_html(run, tmp_path / "url.html").read_text(encoding="utf-8")
    assert "https://" not in html and "<script>alert" not in html
    assert _embedded(html)["manifest"]["samples"][0]["text"] == text


def test_a_busy_port_is_a_clear_error(run):
    first = make_server(run)
    try:
        port = first.server_address[1]
        with pytest.raises(InputError, match=f"127.0.0.1:{port}.*another --port"):
            make_server(run, port=port)
    finally:
        first.server_close()


# ------------------------------------------------------------------------------- bad requests
LONG = "a" * 8000
WEIGHT = "bert.encoder.layer.0.attention.self.query.weight"


@pytest.mark.parametrize("path, status, fragment", [
    # rows: past the end, huge, empty, backwards, negative, not numbers, not a range
    (f"/api/tensor?snap=0&name={PROBS}&rows=0:99999999999999999999999", 400, "rows stop='99999999999999999999999"),
    (f"/api/tensor?snap=0&name={PROBS}&rows=100:200", 404, "rows 100:200 do not exist"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=100:200", 404, "has rows 0..19"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=5:5", 400, "selects no rows"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=3:1", 400, "selects no rows"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=-3:2", 400, "is negative"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=a:b", 400, "rows start='a' is not a whole number"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=0:1_0", 400, "not a whole number"),
    (f"/api/tensor?snap=0&name={WEIGHT}&rows=7", 400, "is not a range"),
    # snap and sample: negative, not numbers (a non-ASCII digit too), huge
    (f"/api/tensor?snap=-1&name={PROBS}", 400, "snap='-1' is negative"),
    (f"/api/tensor?snap=x&name={PROBS}", 400, "snap='x' is not a whole number"),
    (f"/api/tensor?snap=1e3&name={PROBS}", 400, "not a whole number"),
    (f"/api/tensor?snap=99999999999999999999999&name={PROBS}", 400, "too large"),
    (f"/api/tensor?snap=0&name={PROBS}&sample=-1", 400, "sample='-1' is negative"),
    (f"/api/tensor?snap=0&name={PROBS}&sample=%D9%A3", 400, "not a whole number"),
    (f"/api/tensor?snap=0&name={PROBS}&sample=%2B1", 400, "not a whole number"),
    # repeated and unknown parameters
    (f"/api/tensor?snap=0&name={PROBS}&snap=1", 400, "snap is given more than once"),
    (f"/api/tensor?snap=0&name={PROBS}&name=x", 400, "name is given more than once"),
    (f"/api/tensor?snap=0&name={PROBS}&smaple=1", 400, "unknown parameter 'smaple'"),
    # names no file system holds
    (f"/api/tensor?snap=0&name={LONG}", 404, "(8000 characters) was not recorded"),
    (f"/run/{LONG}", 404, "no such file"),
    (f"/static/{LONG}", 404, "no such file"),
    ("/run/" + "a/" * 3000 + "x", 404, "no such file"),
    ("/run/record/" + "b" * 300 + ".json", 404, "longer than a file system allows"),
])
def test_bad_requests_are_clear_400s_and_404s(server, path, status, fragment):
    got, headers, body = get(server, path)
    assert got == status and headers["Content-Type"].startswith("application/json"), (got, body[:300])
    message = json.loads(body)["message"]
    assert fragment in message, message
    assert len(message) < 400, "a message quotes a long input cut short"
    assert get(server, "/api/manifest")[0] == 200, "the server keeps answering"


def test_a_request_target_that_is_not_a_path_is_refused(server):
    """The absolute form names its own host, which must not slip past the Host check."""
    status, _, body = get(server, "http://evil.example/api/manifest", hosts=["127.0.0.1"])
    assert status == 400 and "not a path" in json.loads(body)["message"]


def test_a_malformed_request_is_answered_in_json_too(server):
    """What the standard library refuses itself (bad request line, too many headers) is JSON as well."""
    for raw in (b"GET /api/manifest?rows= 1:2 HTTP/1.1\r\nHost: localhost\r\n\r\n", b"GARBAGE\r\n\r\n",
                b"GET /api/manifest HTTP/1.1\r\nHost: localhost\r\n" + b"X: y\r\n" * 200 + b"\r\n"):
        with socket.create_connection(server.server_address[:2], timeout=10) as s:
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split()[1] in (b"400", b"431") and b"application/json" in head, data[:300]
        assert json.loads(body)["message"]


@pytest.mark.slow
def test_a_client_that_hangs_up_mid_request_is_dropped_quietly(server, monkeypatch, capsys):
    """Issue 32: half a request, then a reset: answering it wrote to a closed socket, and every such client left a
    ConnectionResetError / BrokenPipeError traceback on the server's terminal. The server stays up, and quiet."""
    import struct
    import threading
    finished = threading.Semaphore(0)
    real = server.shutdown_request
    monkeypatch.setattr(server, "shutdown_request", lambda request: (real(request), finished.release()))
    halves = (b"GET /api/manifest?rows= 1:2 HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"GARBAGE\r\n\r\n",
              b"POST /api/whatif HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 50\r\n\r\n{\"te")
    for raw in halves * 10:
        s = socket.create_connection(server.server_address[:2], timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        s.sendall(raw)
        s.close()
    for _ in halves * 10:
        assert finished.acquire(timeout=30)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    assert get(server, "/api/manifest")[0] == 200


def test_a_row_window_past_the_end_is_cut_to_the_end(server, run):
    status, headers, body = get(server, f"/api/tensor?snap=0&name={WEIGHT}&rows=18:99999&format=bin")
    assert status == 200 and headers["X-Shape"] == "2,7"
    assert np.array_equal(np.frombuffer(body, "<f4").reshape(2, 7), load_tensor(run, 0, WEIGHT)[18:].numpy())


def test_a_bug_in_a_handler_is_a_500_with_its_traceback_logged(run, monkeypatch, caplog):
    srv = make_server(run).start()
    try:
        def broken(*args, **kwargs):
            raise RuntimeError("a bug in the metrics reader")
        monkeypatch.setattr(srv.RequestHandlerClass.store, "metrics", broken)
        with caplog.at_level(logging.ERROR, logger="glassbert.explorer"):
            status, headers, body = get(srv, "/api/metrics")
        assert status == 500 and headers["Content-Type"].startswith("application/json")
        assert "internal error" in json.loads(body)["message"] and "RuntimeError" in json.loads(body)["message"]
        logged = [r for r in caplog.records if r.name == "glassbert.explorer"]
        assert logged and logged[0].exc_info and "a bug in the metrics reader" in str(logged[0].exc_info[1])
        assert get(srv, "/api/manifest")[0] == 200
    finally:
        srv.stop()


def test_damaged_run_files_while_serving_are_a_500_naming_the_file(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    srv = make_server(copy).start()
    try:
        snap = copy / "record" / load_manifest(copy)["snapshots"][1]["file"]
        snap.write_bytes(snap.read_bytes()[:200])
        status, _, body = get(srv, f"/api/tensor?snap=1&name={PROBS}")
        assert status == 500 and snap.name in json.loads(body)["message"], body[:300]
        (copy / "record" / "manifest.json").write_text("{")
        status, _, body = get(srv, "/api/manifest")
        assert status == 500 and "manifest.json line 1 column 2: invalid JSON" in json.loads(body)["message"], body[:300]
    finally:
        srv.stop()


# ------------------------------------------------------------------------------- host names (DNS rebinding)
@pytest.mark.parametrize("hosts", [
    ["evil.example"], ["evil.example:{port}"], ["localhost.evil.example"], ["127.0.0.1.evil.example:{port}"],
    ["[::2]:{port}"], ["10.0.0.1"], [""], ["localhost:abc"], ["localhost:{port}:1"], ["localhost", "evil.example"],
    [],  # none at all
])
def test_a_foreign_host_header_is_refused(server, hosts):
    port = server.server_address[1]
    hosts = [h.format(port=port) for h in hosts]
    for path in ("/api/manifest", "/api/metrics", f"/api/tensor?snap=0&name={PROBS}", "/run/record/manifest.json", "/"):
        status, headers, body = get(server, path, hosts=hosts)
        assert status in (400, 403) and headers["Content-Type"].startswith("application/json"), (hosts, status)
        assert b"snapshots" not in body and b"mlm_loss" not in body and b"<html" not in body.lower()
    message = json.loads(get(server, "/api/manifest", hosts=hosts)[2])["message"]
    if len(hosts) == 1:
        assert f"host {hosts[0]!r} refused" in message and "127.0.0.1" in message, message
    assert get(server, "/api/manifest", "HEAD", hosts=hosts)[0] in (400, 403)


@pytest.mark.parametrize("hosts", [["evil.example", "127.0.0.1"], ["127.0.0.1", "evil.example"],
                                   ["localhost", "localhost"]])
def test_two_host_headers_are_refused(server, hosts):
    """Whatever they say (glassbert.net's policy, as serve applies it: tests/test_serve.py)."""
    status, _, body = get(server, "/api/manifest", hosts=hosts)
    assert status == 400 and "2 Host headers" in json.loads(body)["message"], body
    assert b"snapshots" not in body


def test_a_foreign_host_is_refused_with_the_shared_message(server):
    from glassbert.net import HostPolicy
    status, _, body = get(server, "/api/manifest", hosts=["evil.example"])
    expected = HostPolicy("127.0.0.1", server.url).refusal(["evil.example"])
    assert (status, json.loads(body)["message"]) == (expected.status, expected.message) and status == 403
    assert server.url in expected.message


def test_the_hosts_it_was_started_for_are_served(server):
    """Any port: a tunnel (ssh -L 9000:localhost:PORT) arrives under its own port number."""
    port = server.server_address[1]
    for host in ("localhost", f"localhost:{port}", f"LocalHost:{port}", f"localhost.:{port}", "127.0.0.1",
                 f"127.0.0.1:{port}", f"[::1]:{port}", "localhost:9000"):
        status, _, body = get(server, "/api/manifest", hosts=[host])
        assert status == 200 and "snapshots" in json.loads(body), host
    assert get(server, "/api/manifest", hosts=[f"evil.example:{port}"])[0] == 403


def test_bound_to_all_interfaces_it_also_answers_to_this_machines_names_and_addresses(run):
    srv = make_server(run, host="0.0.0.0").start()
    try:
        assert srv.url.startswith("http://127.0.0.1:")
        port = srv.server_address[1]
        for ok in ("0.0.0.0", f"192.0.2.7:{port}", f"[2001:db8::1]:{port}", socket.gethostname(),
                   f"{socket.getfqdn()}:{port}", "localhost"):
            assert get(srv, "/api/manifest", hosts=[ok])[0] == 200, ok
        for bad in ("evil.example", f"{socket.gethostname()}.evil.example", "192.0.2.7.nip.io"):
            status, _, body = get(srv, "/api/manifest", hosts=[bad])
            assert status == 403 and bad in json.loads(body)["message"], bad
    finally:
        srv.stop()


def test_ipv6_loopback_is_served_and_checked(run):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = make_server(run, host="::1").start()
    try:
        assert srv.url.startswith("http://[::1]:")
        assert get(srv, "/api/manifest", hosts=[f"[::1]:{srv.server_address[1]}"])[0] == 200
        assert get(srv, "/api/manifest", hosts=["evil.example"])[0] == 403
    finally:
        srv.stop()


# ------------------------------------------------------------------------------- starting the server
@pytest.mark.parametrize("host, fragment", [
    ("invalid.host.name", "--host 'invalid.host.name' is not an address"),
    ("999.1.1.1", "--host '999.1.1.1' is not an address"),
    ("a" * 70, "is not an address"),
    ("192.0.2.1", "192.0.2.1 is not an address of this machine"),
])
def test_a_host_that_cannot_be_served_is_a_clear_error(run, host, fragment):
    with pytest.raises(InputError) as e:
        make_server(run, host=host)
    assert fragment in str(e.value) and "127.0.0.1" in str(e.value)


def test_a_port_out_of_range_is_a_clear_error(run):
    for port in (70000, -1):
        with pytest.raises(InputError, match="0 to 65535"):
            make_server(run, port=port)


def test_a_broken_manifest_is_refused_before_serving(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    (copy / "record" / "manifest.json").write_text('{"version": 2,\n  "snapshots": [}')
    with pytest.raises(InputError, match=r"manifest\.json line 2 column 17: invalid JSON"):
        make_server(copy)


# ------------------------------------------------------------------------------- export targets
def test_export_refuses_an_existing_file_unless_overwrite(run, tmp_path):
    out = tmp_path / "page.html"
    out.write_bytes(b"my own page")
    with pytest.raises(ExistsError, match="page.html already exists: pass --overwrite"):
        export_html(run, out)
    assert out.read_bytes() == b"my own page"
    with pytest.raises(InputError, match="is a directory"):
        export_html(run, tmp_path)
    export_html(run, out, overwrite=True)
    assert _embedded(out.read_text(encoding="utf-8"))["manifest"]["snapshots"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_export_writes_atomically(run, tmp_path, monkeypatch):
    """A write that fails half way (a full disk) leaves the old file whole and no temp file behind."""
    out = tmp_path / "page.html"
    out.write_bytes(b"the previous export")
    real = Path.write_text

    def half_then_full(self, text, *args, **kwargs):
        real(self, text[:100], *args, **kwargs)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(OSError, match="No space"):
        export_html(run, out, overwrite=True)
    monkeypatch.undo()
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


# ─── live what-if ────────────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """A recorded toy run that also saved its model (as the demo and pretrain do), served."""
    run = tmp_path_factory.mktemp("whatif") / "run"
    model, _ = toy_run(run, epochs=10, spec="epochs=0,4,last")
    model.save_pretrained(run, tokenizer=toy_tokenizer())
    srv = make_server(run).start()
    yield run, srv
    srv.stop()


def post(server, body: bytes | dict, ctype: str = "application/json", path: str = "/api/whatif",
         host: str | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    headers = {"Content-Type": ctype, **({"Host": host} if host else {})}
    conn.request("POST", path, body=data, headers=headers)
    r = conn.getresponse()
    answer = json.loads(r.read())
    conn.close()
    return r.status, answer


def _library(run: Path, a: str, b: str, masked: list[int], snap: int | None = None):
    """The library's MLM probabilities and layer-0 attention for the pair with ``masked`` positions as [MASK]."""
    from glassbert.heads import BertForPreTraining
    model = BertForPreTraining.from_pretrained(run).eval()
    if snap is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(load_tensor(run, snap, name))
    batch = toy_tokenizer()(a, text_pair=b)
    ids = batch["input_ids"].clone()
    ids[0, masked] = toy_tokenizer().mask_token_id
    with torch.no_grad():
        probs = model(ids, batch["token_type_ids"], batch["attention_mask"]).prediction_logits.softmax(-1)
        attn = model.bert(ids, batch["token_type_ids"], batch["attention_mask"], output_attentions=True).attentions
    return batch["input_ids"][0], probs[0], attn[0][0].numpy()


@pytest.mark.parametrize("snap", [None, 1])
def test_whatif_answers_what_the_library_computes(model_run, snap):
    run, srv = model_run
    a, b = "the cat chased the mouse", "it was a fast chase"
    status, answer = post(srv, {"text": a, "pair": b, "mask": [2, 11], "snap": snap})
    assert status == 200, answer
    assert ("the model saved in" in answer["weights"]) == (snap is None)
    if snap is not None:
        assert answer["weights"].startswith("the weights recorded at epoch 4") and answer["snap"] == 1
    original, probs, attn = _library(run, a, b, [2, 11], snap)
    info = answer["manifest"]["samples"][0]
    assert info["masked_positions"] == [2, 11] and info["masked_tokens"] == ["cat", "chase"]
    assert info["input_ids"][2] == toy_tokenizer().mask_token_id
    pred = answer["manifest"]["snapshots"][0]["predictions"][0]
    for k, pos in enumerate([2, 11]):
        top = probs[pos].topk(5)
        assert pred["masked_topk_ids"][k] == top.indices.tolist()
        np.testing.assert_allclose(pred["masked_topk_probs"][k], top.values.numpy(), atol=5e-5)
    assert pred["masked_true_ids"] == [int(original[2]), int(original[11])]
    # every tensor of that input, read as the page reads it
    status, _, body = get(srv, f"/api/tensor?whatif={answer['id']}&snap=0&sample=0&name=bert.encoder.layer.0.attention.self.probs")
    assert status == 200
    np.testing.assert_allclose(np.array(json.loads(body)["data"]).reshape(attn.shape), attn, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("body, fragment", [
    ({"text": "x" * 2001}, "text is 2001 characters: shorten it to at most 2000"),
    ({"text": "the cat " * 10}, "this model reads at most 16: shorten the text"),
    ({"text": "the cat", "mask": [0]}, "mask position 0 is [CLS]: mask a word"),
    ({"text": "the cat", "mask": [7]}, "mask position 7 is not a token of this input (0..3)"),
    ({"text": "the cat", "mask": "1"}, "mask must be a list"),
    ({"text": "  "}, "text is empty"),
    ({"text": 3}, "must be strings"),
    ({"text": "the cat", "snap": 9}, "snap 9 does not exist"),
    ({"text": "the cat", "snap": -1}, "give a snapshot index from 0"),
    ({"text": "the cat", "model": "x"}, "unknown field 'model'"),
    ([1, 2], "send a JSON object"),
])
def test_whatif_refusals_say_what_to_change(model_run, body, fragment):
    status, answer = post(model_run[1], body)
    assert status == 400 and fragment in answer["message"], answer


def test_whatif_transport_refusals(model_run, server):
    srv = model_run[1]
    assert post(srv, b"{not json")[0] == 400
    status, answer = post(srv, {"text": "the cat"}, ctype="text/plain")  # what a foreign page can send unasked
    assert status == 415 and "application/json" in answer["message"]
    status, answer = post(srv, {"text": "a" * 70_000})
    assert status == 413 and "at most 65536" in answer["message"]
    assert post(srv, {"text": "the cat"}, host="evil.example")[0] == 403
    assert post(srv, {"text": "the cat"}, path="/api/manifest")[0] == 405
    status, _, body = get(srv, "/api/tensor?whatif=999&name=x")
    assert status == 404 and b"what-if 999 is gone" in body
    # a run without a saved model: the page is told, a what-if is refused with the reason
    manifest = json.loads(get(server, "/api/manifest")[2])
    assert manifest["whatif"]["available"] is False and "holds no model" in manifest["whatif"]["reason"]
    status, answer = post(server, {"text": "the cat"})
    assert status == 400 and "holds no model" in answer["message"]


# ─── the what-if input explained (the page's attribution view) ──────────────────────────────────
def _model_at(run: Path, snap: int | None):
    from glassbert.heads import BertForPreTraining
    model = BertForPreTraining.from_pretrained(run).eval()
    if snap is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(load_tensor(run, snap, name))
    return model


@pytest.mark.parametrize("snap", [None, 1])
def test_whatif_attribution_is_the_library_s_for_that_input(model_run, snap):
    """POST /api/whatif/attribution: integrated gradients and layer conductance of the typed input with the weights
    the what-if uses there, equal to glassbert.explain on the same model (the clicked word: a true target; the
    pair head's class: its prediction)."""
    from glassbert.explain import Explainer
    run, srv = model_run
    a, b = "the cat chased the mouse", "it was a fast chase"
    status, answer = post(srv, {"text": a, "pair": b, "mask": [2], "snap": snap}, path="/api/whatif/attribution")
    assert status == 200, answer
    n = len(load_manifest(run)["snapshots"])
    assert answer["snap"] == (n - 1 if snap is None else snap)
    assert ("the model saved in" in answer["weights"]) == (snap is None)
    tok = toy_tokenizer()
    batch = tok(a, text_pair=b)
    ids, types = batch["input_ids"][0].tolist(), batch["token_type_ids"][0].tolist()
    ids[2] = tok.mask_token_id
    assert answer["tokens"] == tok.convert_ids_to_tokens(ids)
    word, pair = answer["attributions"]
    assert (word["class"], word["gold"], word["position"]) == ("cat", True, 2)
    assert word["kind"] == "word" and pair["kind"] == "nsp" and pair["gold"] is False
    model = _model_at(run, snap)
    with torch.no_grad():
        nsp = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).seq_relationship_logits[0]
    assert pair["class"] == ("IsNext", "NotNext")[int(nsp.argmax())]
    explainer = Explainer(model, tok)
    for entry, target in ((word, "cat@2"), (pair, pair["class"])):
        ig = explainer.explain_ids(ids, types, target, "ig", steps=32)
        lc = explainer.explain_ids(ids, types, target, "conductance", steps=32)
        np.testing.assert_allclose(entry["ig"], ig.attributions, rtol=1e-3, atol=1e-9)
        np.testing.assert_allclose(entry["layers"], lc.layers, rtol=1e-3, atol=1e-9)
        assert entry["probability"] == pytest.approx(ig.probability, abs=1e-4)
    # asked again: the same answer, kept (the page asks again as the slider comes back)
    assert post(srv, {"text": a, "pair": b, "mask": [2], "snap": snap}, path="/api/whatif/attribution") == (200, answer)


def test_whatif_attribution_targets_and_refusals(model_run):
    """A [MASK] typed in the text: its predicted word (no true word is known); one sentence without a [MASK]: the
    pair head's prediction; the what-if's refusals, as the what-if's."""
    run, srv = model_run
    status, answer = post(srv, {"text": "the [MASK] chased the mouse"}, path="/api/whatif/attribution")
    assert status == 200, answer
    [entry] = answer["attributions"]
    assert entry["kind"] == "word" and entry["position"] == 2 and entry["gold"] is False
    assert entry["class"] == entry["prediction"]
    status, answer = post(srv, {"text": "the cat chased the mouse"}, path="/api/whatif/attribution")
    [entry] = answer["attributions"]
    assert status == 200 and entry["kind"] == "nsp" and entry["gold"] is False
    for body, fragment in (({"text": "  "}, "text is empty"), ({"text": "the cat", "snap": 9}, "snap 9 does not exist"),
                           ({"text": "the cat", "mask": [0]}, "mask a word"), ({"text": "x", "explain": 1}, "unknown field")):
        status, answer = post(srv, body, path="/api/whatif/attribution")
        assert status == 400 and fragment in answer["message"], answer
    assert post(srv, {"text": "the cat"}, ctype="text/plain", path="/api/whatif/attribution")[0] == 415
