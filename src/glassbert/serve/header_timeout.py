"""A time limit on a request's headers, which uvicorn does not have: its ``timeout_keep_alive`` closes a
connection idle *between* requests, but a client that opens one and sends its headers a byte at a time (or
half of them and then nothing) holds it, and a worker's share of the server, forever. text-embeddings-inference
(hyper) closes a connection whose headers have not arrived 30 s after it began waiting for them; so does this.

:func:`with_header_timeout` subclasses uvicorn's HTTP protocol (httptools or h11, whichever uvicorn picks): the
clock starts when the connection opens and when the first byte of each next request arrives, and stops when
that request's headers are complete. When it runs out, a client that had sent part of a request gets a 408
with the server's JSON error, and the connection is closed."""
from __future__ import annotations

import json

HEADER_TIMEOUT = 30.0  # seconds, as TEI


def timeout_response(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request's headers did not arrive within {seconds:g} s: the connection is "
                                "closed; send the whole request at once", "error_type": "timeout"}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def with_header_timeout(protocol: type, seconds: float = HEADER_TIMEOUT) -> type:
    """``protocol`` (uvicorn's HttpToolsProtocol or H11Protocol) with a ``seconds`` limit on each request's
    headers."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(protocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport) -> None:
            self._head_timer, self._head_begun = None, False
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer, self._head_begun = None, False

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                if self._head_begun:
                    self.transport.write(timeout_response(seconds))
                self.transport.close()

        if issubclass(protocol, H11Protocol):
            def handle_events(self) -> None:
                import h11
                if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                    self._head_begun = True
                    self._arm()
                super().handle_events()
                if self.conn.their_state is not h11.IDLE:
                    self._disarm()
        else:  # httptools: the parser's callbacks
            def on_message_begin(self) -> None:
                super().on_message_begin()
                self._head_begun = True
                self._arm()

            def on_headers_complete(self) -> None:
                self._disarm()
                super().on_headers_complete()

    HeaderTimeout.__name__ = HeaderTimeout.__qualname__ = f"HeaderTimeout{protocol.__name__}"
    return HeaderTimeout
