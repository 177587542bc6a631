"""Loopback ports and reachability checks for the dev stack and the test harness.

The machines we run on already have PostgreSQL on 5432 and NATS on 4222, so embedded servers
never take a well-known port: they ask the OS for a free one. Reachability is a plain TCP
connect, because the question the callers ask ("is something listening where this URL points?")
must be answered before any driver or credentials are involved.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

__all__ = ["free_port", "tcp_reachable", "unix_socket_reachable", "url_reachable"]

_DEFAULT_PORTS = {
    "nats": 4222,
    "tls": 4222,
    "postgres": 5432,
    "postgresql": 5432,
}


def free_port(host: str = "127.0.0.1", *, avoid: Collection[int] = ()) -> int:
    """Return a TCP port on `host` that was free a moment ago, and not one of `avoid`.

    Binding to port 0 lets the kernel choose, which avoids collisions with the system services and
    with other test runs. There is a small window before the caller binds it; that is acceptable
    for local development and tests. `avoid` names ports promised to something not yet started
    (the API's): the kernel may well hand out a port that was chosen, free, a moment ago.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def tcp_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on `host:port` within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_socket_reachable(path: Path, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on the Unix domain socket at `path`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        return False
    else:
        return True
    finally:
        sock.close()


def _base_scheme(scheme: str) -> str:
    # `postgresql+asyncpg` (SQLAlchemy dialect+driver) names the same server as `postgresql`.
    return scheme.lower().split("+", 1)[0]


def url_reachable(url: str, timeout: float = 0.5) -> bool:
    """Whether the server a `nats://` or `postgresql[+driver]://` URL points at accepts connections.

    A NATS URL may list several servers separated by commas (any reachable one is enough, as for
    the client). A PostgreSQL URL may name a Unix-socket directory in its `host` query parameter
    (libpq style); then the socket file `.s.PGSQL.<port>` in it is tried instead of TCP.
    """
    for part in (p.strip() for p in url.split(",")):
        if not part:
            continue
        if "://" not in part:
            # Bare `host:port` items inside a NATS server list inherit the first item's scheme.
            part = f"nats://{part}"
        parts = urlsplit(part)
        scheme = _base_scheme(parts.scheme)
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {part!r}")
        port = parts.port or _DEFAULT_PORTS[scheme]
        if scheme.startswith("postgres"):
            socket_dir = parse_qs(parts.query).get("host", [""])[0]
            if socket_dir.startswith("/"):
                if unix_socket_reachable(Path(socket_dir) / f".s.PGSQL.{port}", timeout):
                    return True
                continue
        host = parts.hostname or "127.0.0.1"
        if tcp_reachable(host, port, timeout):
            return True
    return False
