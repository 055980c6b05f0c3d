"""The explorer's local web server: read-only, bound to 127.0.0.1, serving one run directory.

Routes (GET and HEAD only; anything else is 405):

    /                       the page (static/index.html)
    /static/<file>          the page's own CSS/JS (this package's static folder only)
    /api/manifest           RUN/record/manifest.json
    /api/metrics            RUN/metrics.jsonl as a JSON list of rows
    /api/tensor?snap=K&name=NAME[&sample=I][&rows=A:B][&format=json|bin]
                            one recorded tensor, read lazily from snapshot K's safetensors file
                            (only sample I's slice, optionally rows A:B of its first axis);
                            json: {name, snap, sample, shape, dtype, data (flat, 4 significant digits)};
                            bin: little-endian float32 bytes, shape in the X-Shape header
    /run/<path>             a raw file of the run directory (e.g. record/snap-000000.safetensors)

A path with a ``..`` segment, an absolute path, a NUL, or a file that resolves (symlinks included)
outside the run directory or the static folder is refused with 403; an unknown file, tensor or
route is a 404 with a JSON message saying what was not found.
"""
from __future__ import annotations

import json
import mimetypes
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from glassbert.errors import InputError
from glassbert.recording.store import PathRefused, RecordStore, safe_join

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")


def format_values(arr: np.ndarray) -> str:
    """A flat JSON list of the values with 4 significant digits; NaN/±inf become null."""
    flat = np.asarray(arr, dtype=np.float64).ravel()
    if flat.size == 0:
        return "[]"
    text = np.char.mod("%.4g", flat)
    bad = ~np.isfinite(flat)
    if bad.any():
        text = text.astype(object)
        text[bad] = "null"
    return "[" + ",".join(text.tolist()) + "]"


def _parse_rows(value: str) -> tuple[int, int]:
    a, _, b = value.partition(":")
    start, stop = int(a or 0), int(b) if b else 1 << 62
    if start < 0 or stop < start:
        raise ValueError(value)
    return start, stop


class Handler(BaseHTTPRequestHandler):
    server_version = "glassbert-explorer"
    sys_version = ""
    store: RecordStore  # set on the subclass made by make_server
    quiet = True

    # -- plumbing ------------------------------------------------------------------------------
    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": HTTPStatus(status).phrase, "status": status,
                                       "message": message, "path": self.path}).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _file(self, path: Path) -> None:
        if not path.is_file():
            self._error(404, f"no such file: {self.path}")
            return
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        self._send(200, path.read_bytes(), ctype)

    def _refuse_write(self) -> None:
        self.send_response(405)
        body = json.dumps({"error": "Method Not Allowed", "status": 405,
                           "message": "the explorer is read-only: GET and HEAD only"}).encode()
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_write  # type: ignore[assignment]

    def do_HEAD(self) -> None:
        self.do_GET()

    # -- routes --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        try:
            parts = urlsplit(self.path)
            raw = parts.path
            path = unquote(raw)
            if path in ("/", "/index.html"):
                self._file(STATIC_DIR / "index.html")
            elif path.startswith("/static/"):
                self._file(safe_join(STATIC_DIR, path[len("/static/"):]))
            elif path.startswith("/run/"):
                target = safe_join(self.store.run_dir, path[len("/run/"):])
                self._file(target)
            elif path == "/api/manifest":
                self._json(self.store.manifest())
            elif path == "/api/metrics":
                self._json(self.store.metrics())
            elif path == "/api/tensor":
                self._tensor(parse_qs(parts.query))
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                self._error(404, f"no such route: {path} (routes: /, /static/…, /api/manifest, "
                                 "/api/metrics, /api/tensor, /run/…)")
        except PathRefused:
            self._error(403, "path refused: it leaves the served directory")
        except FileNotFoundError as e:
            self._error(404, str(e))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _tensor(self, q: dict[str, list[str]]) -> None:
        def one(key: str, default: str | None = None) -> str | None:
            v = q.get(key)
            return v[0] if v else default

        name = one("name")
        if not name:
            self._error(400, "missing name= (a tensor name from /api/manifest)")
            return
        try:
            snap = int(one("snap", "0"))
            s = one("sample")
            sample = None if s is None or s == "" else int(s)
            r = one("rows")
            rows = _parse_rows(r) if r else None
        except ValueError:
            self._error(400, "snap, sample must be integers and rows A:B")
            return
        fmt = one("format", "json")
        try:
            arr, dtype = self.store.tensor(snap, name, sample, rows)
        except LookupError as e:
            self._error(404, str(e.args[0] if e.args else e))
            return
        shape = list(arr.shape)
        if fmt == "bin":
            body = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            self._send(200, body, "application/octet-stream",
                       {"X-Shape": ",".join(map(str, shape)), "X-Dtype": dtype})
        elif fmt == "json":
            head = json.dumps({"name": name, "snap": snap, "sample": sample, "shape": shape, "dtype": dtype})
            body = head[:-1] + ',"data":' + format_values(arr) + "}"
            self._send(200, body.encode("utf-8"), "application/json; charset=utf-8")
        else:
            self._error(400, f"format must be json or bin, not {fmt!r}")


class ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def start(self) -> "ExplorerServer":
        """Serve in a daemon thread (for tests and notebooks); stop with ``shutdown()``."""
        t = threading.Thread(target=self.serve_forever, name="glassbert-explorer", daemon=True)
        t.start()
        self._thread = t
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                verbose: bool = False) -> ExplorerServer:
    """A server for one run directory (not started). ``port=0`` picks a free port."""
    store = RecordStore(run_dir)
    handler = type("RunHandler", (Handler,), {"store": store, "quiet": not verbose})
    try:
        return ExplorerServer((host, port), handler)
    except OSError as e:
        raise InputError(f"cannot serve on {host}:{port}: {e.strerror or e}; choose another --port "
                         "(0 picks a free one)") from None


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0, open_browser: bool = False,
          block: bool = True, verbose: bool = False) -> ExplorerServer:
    """Serve the explorer page for ``run_dir`` on http://host:port/ (127.0.0.1 unless told otherwise).

    ``block=True`` serves until Ctrl-C; ``block=False`` serves in a thread and returns the server.
    """
    server = make_server(run_dir, host, port, verbose=verbose)
    if open_browser:
        threading.Timer(0.3, lambda: webbrowser.open(server.url)).start()
    if not block:
        return server.start()
    print(f"glassbert explorer: {server.url}  (run {Path(run_dir)}; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server
