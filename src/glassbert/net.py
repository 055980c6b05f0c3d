"""The network side of both HTTP servers (`glassbert serve` and `glassbert explore`): one way to bind a
listening socket, one Host-header policy against DNS rebinding. Each server answers a refusal in its own
shape (serve: TEI's JSON error; explorer: its JSON error); the decision is made here.

Binding (:func:`bind`): 127.0.0.1 unless told otherwise; a name is resolved, IPv4 preferred, IPv6 when
that is all it names; port 0 picks a free one. A host that resolves to nothing, an address that is not
this machine's, a port outside 0..65535 or one already taken is an :class:`InputError` of one line that
says what to give instead.

Host names (:class:`HostPolicy`). A page on another site can make its own host name resolve to
127.0.0.1 and then read a local server as if it were that site (DNS rebinding); the one thing it cannot
change is the ``Host`` header, which carries *its* name. So a request is answered only when

- it carries exactly one Host header: two or more are refused (400), whatever they say, since a proxy and
  a server may each read a different one (serve used to read the last, and answered a foreign Host
  followed by a loopback one); an HTTP/1.1 request without one is refused (400); an HTTP/1.0 request
  without one is let through (no browser sends that);
- that header is ``name``, ``name:port``, ``[v6]`` or ``[v6]:port`` with any port (a tunnel such as
  ``ssh -L 9000:localhost:PORT`` arrives under its own number), and its name, in any case and with one
  trailing dot or none, is
    * a loopback name: ``localhost``, ``127.0.0.1``, ``::1``; or
    * the host the server was started with (``--host NAME``: to serve under a name, bind to it); or
    * when bound to all interfaces (``0.0.0.0``, ``::`` or ``""``: the user asked for remote access),
      this machine's own names (``socket.gethostname()``, ``socket.getfqdn()``) or any IP-address
      literal. A literal is safe to accept: rebinding needs a name the attacker controls, and a browser
      that sends ``Host: 192.0.2.7`` is showing a page that came from this server at that address.

Anything else is refused (403) with a message naming the host refused and the names accepted. This is the
stricter of the two policies the servers had (the explorer's): serve used to let every Host through when
bound to all interfaces, so a name that is not this machine's (a proxy's upstream name, say) now needs an
IP-address Host or ``--host`` that name.
"""
from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Sequence
from typing import NamedTuple

from .errors import InputError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")
_CHOOSE_HOST = "give --host 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)"


def _quoted(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


# ─── binding ────────────────────────────────────────────────────────────────────────────────
def bind(host: str = "127.0.0.1", port: int = 8080, backlog: int = 2048) -> socket.socket:
    """A listening (blocking) socket on host:port; port 0 picks a free one. InputError, one line, for a
    port outside 0..65535, a host that is no address or name this machine resolves, an address that is not
    this machine's, or a port that is taken."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"--port {port!r}: a port is a whole number from 0 to 65535 (0 picks a free one)")
    host = str(host).strip()
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        detail = e.strerror if isinstance(e, socket.gaierror) and e.strerror else str(e)
        raise InputError(f"--host {_quoted(host)} is not an address or a name this machine can resolve "
                         f"({detail}); {_CHOOSE_HOST}") from None
    infos = [info for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        raise InputError(f"--host {_quoted(host)} names no IPv4 or IPv6 address; {_CHOOSE_HOST}")
    family, _, _, _, address = min(infos, key=lambda info: info[0] != socket.AF_INET)  # IPv4 first
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRNOTAVAIL:
            raise InputError(f"cannot serve on {where}: {host} is not an address of this machine; "
                             f"{_CHOOSE_HOST}") from None
        raise InputError(f"cannot serve on {where}: {e.strerror or e}; choose another --port "
                         "(0 picks a free one)") from None
    return sock


def url_of(address: Sequence) -> str:
    """``http://host:port`` for a bound socket's ``getsockname()``; all interfaces: this machine's loopback."""
    host, port = str(address[0]), address[1]
    if host in ALL_INTERFACES:
        host = "::1" if host == "::" else "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# ─── Host headers ───────────────────────────────────────────────────────────────────────────
def host_name(value: str) -> str | None:
    """The name in a Host header (``name``, ``name:port``, ``[v6]``, ``[v6]:port``), lower-case, without
    port, brackets or one trailing dot; None when it is not of that form."""
    value = value.strip()
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        name = inside if bracket and ":" in inside else None
    else:
        name, colon, port = value.partition(":")
        if ":" in port:
            return None
        rest = colon + port
    if name is None or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)):
        return None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    return name if name and re.fullmatch(r"[a-z0-9._:%-]+", name) else None


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Refusal(NamedTuple):
    status: int     # 400: not one Host header; 403: a Host the server was not started for
    message: str


class HostPolicy:
    """Which Host headers a server bound to ``host`` answers (see the module docstring). ``url``: where
    the server is, for the refusal's message."""

    def __init__(self, host: str = "127.0.0.1", url: str = ""):
        self.host, self.url = str(host).strip(), url
        names = set(LOOPBACK_NAMES)
        if self.host:
            names.add(host_name(f"[{self.host}]" if ":" in self.host else self.host) or self.host.lower())
        self.any_ip = self.host in ALL_INTERFACES
        if self.any_ip:
            for own in (socket.gethostname(), socket.getfqdn()):
                if own:
                    names.add(own.lower().rstrip("."))
        self.names = frozenset(names)

    def allows(self, name: str) -> bool:
        """``name`` as :func:`host_name` gives it."""
        return name in self.names or (self.any_ip and is_ip(name))

    def shown(self) -> list[str]:
        """The accepted names as a user would type them (IPv6 literals in brackets), loopback first."""
        ordered = sorted(self.names, key=lambda n: (n not in LOOPBACK_NAMES, n))
        return [f"[{n}]" if ":" in n else n for n in ordered] + (["any IP address"] if self.any_ip else [])

    def refusal(self, values: Sequence[str], http11: bool = True) -> Refusal | None:
        """None when a request with these Host header values (all of them, in order) is answered; else
        the status and the message to answer with. ``http11``: the request is HTTP/1.1 (or later)."""
        if len(values) > 1:
            return Refusal(400, f"{len(values)} Host headers: a request carries exactly one (more than one "
                                "Host header is refused, whatever they say)")
        if not values:
            return Refusal(400, "no Host header: an HTTP/1.1 request must carry one") if http11 else None
        name = host_name(values[0])
        if name is not None and self.allows(name):
            return None
        where = f"open {self.url}, or " if self.url else ""
        return Refusal(403, f"host {_quoted(values[0], 100)} refused: this server answers only to "
                            f"{', '.join(self.shown())} (a page on another site must not reach it through DNS "
                            f"rebinding); {where}start it with --host NAME to serve it under another name")


__all__ = ["LOOPBACK_NAMES", "ALL_INTERFACES", "bind", "url_of", "host_name", "is_ip", "Refusal", "HostPolicy"]
