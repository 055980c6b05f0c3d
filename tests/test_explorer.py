"""The explorer's server (read-only, confined to the run directory) and the single-file export."""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from glassbert.explorer import export_html, make_server
from glassbert.explorer.server import format_values, safe_join, PathRefused
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


def get(server, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request(method, path)  # sent as-is: no client-side normalisation of '..'
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
    status, headers, body = get(server, "/static/app.js")
    assert status == 200 and b"getTensor" in body
    assert get(server, "/static/style.css")[0] == 200


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
    assert len(data["metrics"]) == 10
    entry = data["tensors"][2][PROBS]
    arr = np.frombuffer(base64.b64decode(entry["b64"]), "<f4").reshape(entry["shape"])
    assert np.array_equal(arr[1], load_tensor(run, 2, PROBS, sample=1).numpy())


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


def test_export_escapes_urls_and_script_tags_in_texts(tmp_path):
    from glassbert.recording import record_once

    tok = toy_tokenizer()
    text = "visit https://example.com </script><script>alert(1)</script>"
    with pytest.warns(UserWarning, match="truncated"):
        run = record_once(toy_model(tok).bert, tok, [text], tmp_path / "url", max_length=16)
    html = export_html(run, tmp_path / "url.html").read_text(encoding="utf-8")
    assert "https://" not in html and "<script>alert" not in html
    assert _embedded(html)["manifest"]["samples"][0]["text"] == text


def test_a_busy_port_is_a_clear_error(run):
    from glassbert.errors import InputError
    first = make_server(run)
    try:
        port = first.server_address[1]
        with pytest.raises(InputError, match=f"127.0.0.1:{port}.*another --port"):
            make_server(run, port=port)
    finally:
        first.server_close()
