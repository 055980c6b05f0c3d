"""The explorer's local web server: bound to 127.0.0.1, serving one run directory (read-only) and running its
model on what the user types (the live what-if, the one POST).

Routes (GET and HEAD, and POST on /api/whatif and /api/whatif/attribution only; anything else is 405):

    /                       the page (static/index.html)
    /static/<file>          the page's own CSS/JS (this package's static folder only)
    /api/manifest           RUN/record/manifest.json, plus "whatif": whether the what-if can run and its limits
    /api/metrics            RUN/metrics.jsonl as a JSON list of rows
    /api/tensor?snap=K&name=NAME[&sample=I][&rows=A:B][&format=json|bin]
                            one recorded tensor, read lazily from snapshot K's safetensors file
                            (only sample I's slice, optionally rows A..B-1 of its first axis; B past
                            the end means "to the end"); json: {name, snap, sample, shape, dtype, data
                            (flat, 4 significant digits)}; bin: little-endian float32 bytes, shape in
                            the X-Shape header; &whatif=N reads what-if answer N's recording instead
    POST /api/whatif        JSON {text, pair (or null), mask: [token positions], snap (or null)}: the model at
                            snapshot ``snap``'s recorded weights (the saved model at the last snapshot) on that
                            input, recorded by the recorder's own code (:mod:`glassbert.recording.whatif`);
                            answers {id, weights, snap, manifest} (the recording's manifest: tokens,
                            predictions, tensors). Content-Type must be application/json (a page of another
                            site cannot send that without a preflight, which is refused), at most
                            MAX_BODY bytes (413), and the input within the limits the 400 names.
    POST /api/whatif/attribution  the same JSON body: that input explained with the same weights (integrated
                            gradients and layer conductance, the recorder's own code): {snap, weights, tokens,
                            attributions: [one entry per target, as a recording's], about}; refused as the
                            what-if is (400)
    /run/<path>             a raw file of the run directory (e.g. record/snap-000000.safetensors)

Every answer that is not a 200 is JSON ``{error, status, message, path}`` whose message says what was
wrong: a bad query parameter (not a whole number, negative, too large, given twice, unknown, a
``rows`` range that selects nothing) is a 400; an unknown file, tensor, snapshot, sample, row range
or route is a 404. A path with a ``..`` segment, an absolute path, a NUL, or a file that resolves
(symlinks included) outside the run directory or the static folder is refused with 403. Anything
else that goes wrong inside a handler is a bug: it answers 500 with a JSON message and logs its
traceback on the server (logger ``glassbert.explorer``); the connection is never just dropped.

Host names (DNS rebinding) and binding are :mod:`glassbert.net`'s, shared with `glassbert serve`: every
request's Host must be one the server was started for (``localhost``, ``127.0.0.1``, ``[::1]``, the
``host`` it was given, with any port; bound to all interfaces, also this machine's names and any
IP-address literal), else 403 naming the host refused; no Host header (HTTP/1.1) or more than one is 400.
"""
from __future__ import annotations

import errno
import json
import logging
import mimetypes
import re
import socket
import sys
import tempfile
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

from glassbert.errors import InputError
from glassbert.net import HostPolicy, bind, url_of
from glassbert.recording.store import PathRefused, RecordStore, quoted, safe_join
from glassbert.recording.whatif import WhatIf, WhatIfInput, WhatIfRefused

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")
TENSOR_PARAMS = ("snap", "name", "sample", "rows", "format", "whatif")
MAX_BODY = 64 * 1024    # bytes of a what-if request
_MAX_DIGITS = 18        # a count with more digits is refused as too large (it could never exist)
_MAX_NAME_BYTES = 255   # the longest file name (one path segment) a file system holds
_MAX_PATH_CHARS = 4096

log = logging.getLogger("glassbert.explorer")


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


class _Reply(Exception):
    """An answer other than 200, raised inside a route: the status and the message saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _count(key: str, text: str) -> int:
    """A query parameter that counts from 0 (snap, sample, a row): digits only, at most 18 of them."""
    if re.fullmatch(r"[0-9]+", text):
        if len(text) > _MAX_DIGITS:
            raise _Reply(400, f"{key}={quoted(text, 30)} is too large: give a whole number from 0 "
                              f"(at most {_MAX_DIGITS} digits)")
        return int(text)
    what = "negative" if re.fullmatch(r"-[0-9]+", text) else "not a whole number"
    raise _Reply(400, f"{key}={quoted(text, 30)} is {what}: give a whole number from 0 (digits only)")


def _parse_rows(text: str) -> tuple[int, int]:
    """``A:B`` (either side may be left out: ``:B`` from 0, ``A:`` to the end) → (start, stop), start < stop."""
    a, colon, b = text.partition(":")
    if not colon:
        raise _Reply(400, f"rows={quoted(text, 30)} is not a range: give rows=A:B (rows A to B-1)")
    start = _count("rows start", a) if a else 0
    stop = _count("rows stop", b) if b else 10 ** _MAX_DIGITS
    if stop <= start:
        raise _Reply(400, f"rows={quoted(text, 30)} selects no rows: B must be greater than A in rows=A:B")
    return start, stop


def _check_file_name(rel: str, shown: str) -> None:
    """A name no file system could hold is simply not there (and must not reach the OS as one)."""
    if len(rel) > _MAX_PATH_CHARS or any(len(seg.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES
                                         for seg in rel.split("/")):
        raise _Reply(404, f"no such file: {shown} (a name longer than a file system allows)")


class Handler(BaseHTTPRequestHandler):
    server_version = "glassbert-explorer"
    sys_version = ""
    store: RecordStore  # set on the subclass made by make_server
    whatif: WhatIf      # idem: the run's model for the live what-if
    server: "ExplorerServer"
    quiet = True

    # -- plumbing ------------------------------------------------------------------------------
    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self._answered = True
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

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a malformed request line or header, a request line over
        64 KiB, an HTTP version it does not speak) as JSON too, then the connection is closed."""
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
        self.log_error("code %d, message %s", code, message)
        body = json.dumps({"error": phrase, "status": code, "message": message or explain or phrase}).encode("utf-8")
        if self.request_version == "HTTP/0.9":  # a request line it could not read: answer with a status line
            self.request_version = "HTTP/1.0"
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
            self.wfile.write(body)
        self.close_connection = True

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        path = self.path if len(self.path) <= 200 else self.path[:200] + "…"
        self._send(status, json.dumps({"error": HTTPStatus(status).phrase, "status": status,
                                       "message": message, "path": path}).encode("utf-8"),
                   "application/json; charset=utf-8", extra)

    def _file(self, path: Path, shown: str) -> None:
        try:
            if not path.is_file():
                raise _Reply(404, f"no such file: {shown}")
            body = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _Reply(404, f"no such file: {shown}") from None
        except PermissionError:
            raise _Reply(403, f"{shown} is not readable by the server") from None
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise _Reply(404, f"no such file: {shown} (a name longer than a file system allows)") from None
            raise
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        self._send(200, body, ctype)

    def _answer(self, route) -> None:
        """Check the Host, then answer with ``route``; every failure becomes a JSON answer, never a drop."""
        self._answered = False
        try:
            self._check_host()
            route()
        except _Reply as r:
            self._error(r.status, r.message)
        except PathRefused:
            self._error(403, "path refused: it leaves the served directory")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except InputError as e:  # the run's own files are broken (changed on disk while serving)
            log.error("explorer: %s: %s", self.path[:200], e)
            self._fail(f"the run's files cannot be read: {e}")
        except Exception as e:  # a bug: say so, log the traceback, keep the server answering
            log.exception("explorer: unexpected error while answering %s %s", self.command, self.path[:200])
            self._fail(f"internal error while answering this request ({type(e).__name__}); "
                       "the server's log has the traceback")

    def _fail(self, message: str) -> None:
        if self._answered:  # the status line is out already: all that is left is to end the connection
            self.close_connection = True
            return
        try:
            self._error(500, message)
        except OSError:
            self.close_connection = True

    def _check_host(self) -> None:
        """:mod:`glassbert.net`'s Host policy decides; a refusal is this server's JSON error."""
        refusal = self.server.host_policy.refusal(self.headers.get_all("Host") or [],
                                                  http11=self.request_version != "HTTP/1.0")
        if refusal is not None:
            raise _Reply(refusal.status, refusal.message)

    def _refuse_write(self) -> None:
        def refuse() -> None:
            self._error(405, "the explorer is read-only: GET and HEAD only (POST on /api/whatif and "
                             "/api/whatif/attribution)",
                        {"Allow": "GET, HEAD"})
        self._answer(refuse)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_write  # type: ignore[assignment]

    def do_POST(self) -> None:
        route = {"/api/whatif": self._whatif, "/api/whatif/attribution": self._whatif_attribution}.get(
            urlsplit(self.path).path)
        if route is None:
            self._refuse_write()
            return
        self._answer(route)

    def do_HEAD(self) -> None:
        self._answer(self._route)

    def do_GET(self) -> None:
        self._answer(self._route)

    # -- routes --------------------------------------------------------------------------------
    def _route(self) -> None:
        if not self.path.startswith("/"):
            raise _Reply(400, f"request target {quoted(self.path)} is not a path: ask for /, /api/… or /run/…")
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path in ("/", "/index.html"):
            self._file(STATIC_DIR / "index.html", "/index.html")
        elif path.startswith("/static/"):
            rel = path[len("/static/"):]
            _check_file_name(rel, quoted(path))
            self._file(safe_join(STATIC_DIR, rel), quoted(path))
        elif path.startswith("/run/"):
            rel = path[len("/run/"):]
            _check_file_name(rel, quoted(path))
            self._file(safe_join(self.store.run_dir, rel), quoted(path))
        elif path == "/api/manifest":
            manifest = self.store.manifest()
            self._json(dict(manifest, whatif=self.whatif.status(manifest)))
        elif path == "/api/metrics":
            self._json(self.store.metrics())
        elif path == "/api/tensor":
            self._tensor(self._query(parts.query))
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            raise _Reply(404, f"no such route: {quoted(path)} (routes: /, /static/…, /api/manifest, "
                              "/api/metrics, /api/tensor, /run/…)")

    @staticmethod
    def _query(query: str) -> dict[str, str]:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=2 * len(TENSOR_PARAMS))
        except ValueError:
            raise _Reply(400, "too many query parameters: /api/tensor takes snap, name, sample, rows, format") from None
        q: dict[str, str] = {}
        for key, value in pairs:
            if key not in TENSOR_PARAMS:
                raise _Reply(400, f"unknown parameter {quoted(key, 30)}: /api/tensor takes "
                                  f"{', '.join(TENSOR_PARAMS)}")
            if key in q:
                raise _Reply(400, f"{key} is given more than once: give each parameter once")
            q[key] = value
        return q

    def _tensor(self, q: dict[str, str]) -> None:
        name = q.get("name", "")
        if not name:
            raise _Reply(400, "missing name= (a tensor name from /api/manifest)")
        snap = _count("snap", q.get("snap") or "0")
        sample = _count("sample", q["sample"]) if q.get("sample") else None
        rows = _parse_rows(q["rows"]) if q.get("rows") else None
        fmt = q.get("format") or "json"
        if fmt not in ("json", "bin"):
            raise _Reply(400, f"format={quoted(fmt, 30)}: format must be json or bin")
        try:
            store = self.store
            if q.get("whatif"):
                store = RecordStore(self.whatif.answer(_count("whatif", q["whatif"])).directory)
            arr, dtype = store.tensor(snap, name, sample, rows)
        except LookupError as e:
            raise _Reply(404, str(e.args[0] if e.args else e)) from None
        shape = list(arr.shape)
        if fmt == "bin":
            body = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            self._send(200, body, "application/octet-stream",
                       {"X-Shape": ",".join(map(str, shape)), "X-Dtype": dtype})
        else:
            head = json.dumps({"name": name, "snap": snap, "sample": sample, "shape": shape, "dtype": dtype})
            body = head[:-1] + ',"data":' + format_values(arr) + "}"
            self._send(200, body.encode("utf-8"), "application/json; charset=utf-8")


    def _body_json(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _Reply(415, f"Content-Type {quoted(ctype or '(none)', 60)}: send the what-if as application/json")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise _Reply(411, "no Content-Length: send the JSON body with its length")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the body is not read: this connection cannot carry another request
            raise _Reply(413, f"the request is {int(length)} bytes; a what-if takes at most {MAX_BODY}: "
                              "shorten the text")
        try:
            body = json.loads(self.rfile.read(int(length)).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _Reply(400, f"the body is not UTF-8 JSON ({e})") from None
        if not isinstance(body, dict):
            raise _Reply(400, "send a JSON object {text, pair, mask, snap}")
        return body

    def _whatif_input(self) -> tuple[WhatIfInput, int | None]:
        """The what-if's JSON body {text, pair, mask, snap}, checked."""
        body = self._body_json()
        unknown = sorted(set(body) - {"text", "pair", "mask", "snap"})
        if unknown:
            raise _Reply(400, f"unknown field {quoted(unknown[0], 30)}: a what-if takes text, pair, mask, snap")
        text, pair, mask, snap = body.get("text"), body.get("pair"), body.get("mask") or [], body.get("snap")
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise _Reply(400, "text (and pair, when given) must be strings: type a sentence")
        if not isinstance(mask, list):
            raise _Reply(400, "mask must be a list of token positions, e.g. [2, 9]")
        if snap is not None and (isinstance(snap, bool) or not isinstance(snap, int) or snap < 0):
            raise _Reply(400, f"snap {snap!r}: give a snapshot index from 0, or null for the saved model")
        return WhatIfInput(text, pair if pair and pair.strip() else None, mask), snap

    def _whatif(self) -> None:
        given, snap = self._whatif_input()
        try:
            answer = self.whatif.run(given, snap)
        except WhatIfRefused as e:
            raise _Reply(400, str(e)) from None
        self._json({"id": answer.id, "weights": answer.weights, "snap": answer.snap, "manifest": answer.manifest,
                    "note": answer.note})

    def _whatif_attribution(self) -> None:
        given, snap = self._whatif_input()
        try:
            self._json(self.whatif.attribute(given, snap))
        except WhatIfRefused as e:
            raise _Reply(400, str(e)) from None


class ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    host_policy = HostPolicy("127.0.0.1")  # which Host headers it answers: make_server sets its own

    @property
    def url(self) -> str:
        return url_of(self.server_address) + "/"  # bound everywhere: this machine reaches it on loopback

    def start(self) -> "ExplorerServer":
        """Serve in a daemon thread (for tests and notebooks); stop with ``shutdown()``."""
        t = threading.Thread(target=self.serve_forever, name="glassbert-explorer", daemon=True)
        t.start()
        self._thread = t
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-request (half a request, then close or reset) is no error of the server's:
        writing its answer to the closed socket is dropped quietly; anything else keeps its traceback."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        whatif = getattr(self.RequestHandlerClass, "whatif", None)
        if whatif is not None:
            whatif.close()  # the what-if answers' recordings


class _ExplorerServer6(ExplorerServer):
    address_family = socket.AF_INET6


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                verbose: bool = False, model: str | Path | None = None) -> ExplorerServer:
    """A server for one run directory (not started). ``port=0`` picks a free port. ``model``: the model the
    live what-if runs (default: the run directory's own, when it holds one).

    InputError (one line, naming what to change) for a broken manifest, a port outside 0..65535, a host
    that names no address, an address that is not this machine's, or a port already in use.
    """
    store = RecordStore(run_dir)
    store.manifest()  # a broken manifest is one clear error now, not a failed request later
    sock = bind(host, port, backlog=ExplorerServer.request_queue_size)  # InputError for a bad host or port
    try:
        whatif = WhatIf(store, model, Path(tempfile.mkdtemp(prefix="glassbert-whatif-")))
    except BaseException:
        sock.close()
        raise
    handler = type("RunHandler", (Handler,), {"store": store, "whatif": whatif, "quiet": not verbose})
    cls = _ExplorerServer6 if sock.family == socket.AF_INET6 else ExplorerServer
    server = cls(sock.getsockname(), handler, bind_and_activate=False)
    server.socket.close()  # the one it made: it serves on the socket net.bind bound (and listens on)
    server.socket, server.server_address = sock, sock.getsockname()
    server.host_policy = HostPolicy(host, server.url)
    return server


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0, open_browser: bool = False,
          block: bool = True, verbose: bool = False, model: str | Path | None = None) -> ExplorerServer:
    """Serve the explorer page for ``run_dir`` on http://host:port/ (127.0.0.1 unless told otherwise).

    ``block=True`` serves until Ctrl-C; ``block=False`` serves in a thread and returns the server.
    ``model``: the model the live what-if runs (default: the run directory's own).
    """
    server = make_server(run_dir, host, port, verbose=verbose, model=model)
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
