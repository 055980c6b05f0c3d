"""Binding and running `glassbert serve`: :class:`Server` (a bound socket, a loaded model, uvicorn) and
:func:`serve`, the command's entry point."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from ..net import bind, url_of
from ..threads import set_threads_for
from .app import create_app, set_host
from .header_timeout import with_header_timeout
from .service import ServeConfig, Service


class Server:
    """A bound, loaded server: ``run()`` serves until Ctrl-C or SIGTERM (uvicorn's own handlers, which
    finish the requests in flight); ``start()`` serves in a thread (tests, notebooks), ``stop()`` ends it.
    ``threads``: this process's intra-op threads, shared among the workers (default: chosen for MODEL and for
    what else runs here, as `glassbert serve` chooses: glassbert.threads)."""

    def __init__(self, model: str | Path, host: str = "127.0.0.1", port: int = 8080,
                 config: ServeConfig | None = None, device: str = "cpu", threads: int | None = None):
        import uvicorn
        config = (config or ServeConfig()).check()
        set_threads_for(threads, model)  # before the workers split them (Batcher)
        self.socket = bind(host, port)  # a bad host or a taken port fails before the model loads
        self.socket.setblocking(False)
        try:
            self.service = Service(model, config, device)
        except BaseException:
            self.socket.close()
            raise
        self.app = create_app(self.service)
        self.url = url_of(self.socket.getsockname())
        set_host(self.app, host, self.url)
        from uvicorn.protocols.http.auto import AutoHTTPProtocol  # httptools when installed, else h11
        self.uvicorn = uvicorn.Server(uvicorn.Config(
            self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=10,
            http=with_header_timeout(AutoHTTPProtocol, config.header_timeout)))
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
          echo=print, threads: int | None = None) -> None:
    """`glassbert serve`: load MODEL, bind, print where, serve until Ctrl-C or SIGTERM. ``threads``: as
    :class:`Server`'s."""
    server = Server(model, host, port, config, threads=threads)
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


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
