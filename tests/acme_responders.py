"""Real peers for ACME challenge validation on one machine: what a requester's machine and its
DNS would answer.

- `Http01Responder`: an HTTP server on 127.0.0.1 and ::1 (one free port for both) serving
  `/.well-known/acme-challenge/<token>`; `serve(token, key_authz)`, `redirect(token, location)`,
  `respond(path, status, body)`; `requests` records `(path, Host header)` of each request.
- `HttpsResponder`: the same over TLS, where an http-01 redirect to https lands.
- `DnsServer`: an authoritative server (dnslib) over UDP and TCP on one free port of 127.0.0.1.
  Every name under `.test` exists and has the A record 127.0.0.1 (no AAAA) unless told
  otherwise; every other name is NXDOMAIN. `set_a`, `set_aaaa`, `set_txt`, `set_nxdomain`,
  `clear` change one name.
- `TlsAlpnResponder`: a TLS listener on 127.0.0.1 and ::1 (one free port) that answers a
  ClientHello for a registered identifier's SNI (the reverse name for an IP, RFC 8738 §6) with
  the RFC 8737 certificate, negotiating ALPN `acme-tls/1`; `serve(identifier, key_authz, ...)`
  takes faults for negative tests (another ALPN, a non-critical or missing acmeIdentifier, a
  wrong digest, extra SANs).

Each runs on its own threads (`start()` / `stop()`), so they answer whatever event loop the
code under test runs on. Names and tokens are the caller's choice: tests sharing a session
responder use random ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import socket
import socketserver
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import AAAA, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ALPN = "acme-tls/1"
CHALLENGE_PATH = "/.well-known/acme-challenge/"


def _free_port_on_both() -> int:
    """A TCP port free on 127.0.0.1 and ::1 (and UDP on 127.0.0.1), so both servers share it."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as v6:
                v6.bind(("::1", port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


class _Threaded:
    """Servers started on daemon threads and shut down together."""

    def __init__(self) -> None:
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    def _run(self, server: socketserver.BaseServer) -> None:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()


# --- http-01 ------------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class _HttpServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class Http01Responder(_Threaded):
    """An HTTP server answering registered paths; anything else is a 404."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self._answers: dict[str, _Answer] = {}
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        """`(path, Host header)` of every request, in arrival order."""

    def start(self) -> Http01Responder:
        self.port = _free_port_on_both()
        handler = self._handler()
        self._run(self._prepare(_HttpServer(("127.0.0.1", self.port), handler)))
        self._run(self._prepare(_HttpServer6(("::1", self.port), handler)))
        return self

    def _prepare(self, server: HTTPServer) -> HTTPServer:
        return server

    def serve(self, token: str, key_authz: str) -> None:
        """Answer the challenge path of `token` with the key authorization (200, text/plain)."""
        self.respond(CHALLENGE_PATH + token, 200, key_authz.encode())

    def redirect(self, token_or_path: str, location: str, status: int = 302) -> None:
        """Answer `token_or_path` (a token, or a path starting with `/`) with a redirect."""
        path = token_or_path if token_or_path.startswith("/") else CHALLENGE_PATH + token_or_path
        self.respond(path, status, b"", {"Location": location})

    def respond(
        self, path: str, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._answers[path] = _Answer(status, body, dict(headers or {}))

    def withdraw(self, token_or_path: str) -> None:
        path = token_or_path if token_or_path.startswith("/") else CHALLENGE_PATH + token_or_path
        with self._lock:
            self._answers.pop(path, None)

    def hosts_asked_for(self, token_or_path: str) -> list[str]:
        """The Host header of every request for `token_or_path` so far."""
        path = token_or_path if token_or_path.startswith("/") else CHALLENGE_PATH + token_or_path
        with self._lock:
            return [host for asked, host in self.requests if asked == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with responder._lock:
                    responder.requests.append((path, self.headers.get("Host", "")))
                    answer = responder._answers.get(path) or _Answer(404, b"not found")
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class HttpsResponder(Http01Responder):
    """The same server over TLS (a self-signed certificate for any name): where an http-01
    redirect to https lands. `server_names` records the SNI of each handshake."""

    def __init__(self) -> None:
        super().__init__()
        self.server_names: list[str | None] = []
        self._files = Path(tempfile.mkdtemp(prefix="cf-https-"))

    def start(self) -> HttpsResponder:
        cert_pem, key_pem = acme_tls_certificate("https.test", "unused", with_extension=False)
        (self._files / "cert.pem").write_bytes(cert_pem)
        (self._files / "key.pem").write_bytes(key_pem)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self._files / "cert.pem", self._files / "key.pem")
        self._context.sni_callback = self._remember
        super().start()
        return self

    def _remember(self, _: ssl.SSLObject, server_name: str | None, __: ssl.SSLContext) -> None:
        self.server_names.append(server_name)

    def _prepare(self, server: HTTPServer) -> HTTPServer:
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        return server


# --- DNS ----------------------------------------------------------------------------------------


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


_QUIET = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
"""dnslib logs every query on stdout by default."""


class DnsServer(BaseResolver):  # type: ignore[misc]
    """An authoritative DNS server whose records the test sets."""

    DEFAULT_SUFFIX = ".test."
    DEFAULT_A = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self.address = "127.0.0.1"
        self._records: dict[tuple[str, str], list[str]] = {}
        self._nxdomain: set[str] = set()
        self._lock = threading.Lock()
        self._servers: list[DNSServer] = []
        self.queries: list[tuple[str, str]] = []
        """`(name, type)` of every question asked, in arrival order."""

    @property
    def nameserver(self) -> str:
        """`host:port`, the validator's `resolver` setting."""
        return f"{self.address}:{self.port}"

    def start(self) -> DnsServer:
        self.port = _free_port_on_both()
        for tcp in (False, True):
            server = DNSServer(self, port=self.port, address=self.address, tcp=tcp, logger=_QUIET)
            server.start_thread()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers.clear()

    def set_a(self, name: str, addresses: list[str]) -> None:
        self._set(name, "A", addresses)

    def set_aaaa(self, name: str, addresses: list[str]) -> None:
        self._set(name, "AAAA", addresses)

    def set_txt(self, name: str, values: list[str]) -> None:
        """TXT records of `name` (each value one record; long ones are split in 255-byte
        strings as a real zone would)."""
        self._set(name, "TXT", values)

    def set_nxdomain(self, name: str) -> None:
        """Make `name` (even under `.test`) not exist."""
        with self._lock:
            self._nxdomain.add(_fqdn(name))

    def clear(self, name: str) -> None:
        """Forget everything set for `name`: back to the default rule."""
        key = _fqdn(name)
        with self._lock:
            self._nxdomain.discard(key)
            for kind in ("A", "AAAA", "TXT"):
                self._records.pop((key, kind), None)

    def _set(self, name: str, kind: str, values: list[str]) -> None:
        key = _fqdn(name)
        with self._lock:
            self._nxdomain.discard(key)
            self._records[(key, kind)] = list(values)

    def _exists(self, name: str) -> bool:
        if name in self._nxdomain:
            return False
        if name.endswith(self.DEFAULT_SUFFIX):
            return True
        return any(key == name for key, _ in self._records)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = _fqdn(str(request.q.qname))
        kind = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, kind))
            if not self._exists(name):
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            values = self._records.get((name, kind))
            if values is None and kind == "A" and name.endswith(self.DEFAULT_SUFFIX):
                values = [self.DEFAULT_A]
        for value in values or []:
            if kind == "A":
                rdata: Any = A(value)
            elif kind == "AAAA":
                rdata = AAAA(tuple(ipaddress.IPv6Address(value).packed))  # any notation
            elif kind == "TXT":
                raw = value.encode()
                rdata = TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
            else:
                continue
            reply.add_answer(RR(request.q.qname, QTYPE.reverse[kind], rdata=rdata, ttl=5))
        return reply


# --- tls-alpn-01 --------------------------------------------------------------------------------


def reverse_name(identifier: str) -> str:
    """The SNI of a tls-alpn-01 handshake: the DNS name itself, or an IP address's reverse
    name (`1.0.0.127.in-addr.arpa`, RFC 8738 §6)."""
    try:
        return ipaddress.ip_address(identifier).reverse_pointer
    except ValueError:
        return identifier.lower()


def acme_tls_certificate(
    identifier: str,
    key_authz: str,
    *,
    critical: bool = True,
    with_extension: bool = True,
    digest: bytes | None = None,
    extra_sans: tuple[str, ...] = (),
) -> tuple[bytes, bytes]:
    """The self-signed RFC 8737 certificate (PEM) and its key (PEM) for `identifier`."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for value in (identifier, *extra_sans):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            names.append(x509.DNSName(value))
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme-tls-alpn-01")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme-tls-alpn-01")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    if with_extension:
        sha = digest if digest is not None else hashlib.sha256(key_authz.encode()).digest()
        der = b"\x04" + bytes([len(sha)]) + sha  # OCTET STRING (digests are < 128 bytes)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, der), critical=critical
        )
    certificate = builder.sign(key, hashes.SHA256())
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


class _TlsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TlsServer6(_TlsServer):
    address_family = socket.AF_INET6


class TlsAlpnResponder(_Threaded):
    """A TLS listener that completes the handshake with the certificate registered for the
    SNI it is sent, then closes; an unknown SNI gets an `unrecognized_name` alert."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._files = Path(tempfile.mkdtemp(prefix="cf-tls-alpn-"))
        self._default = self._context(["http/1.1"])
        self._default.sni_callback = self._pick
        self.server_names: list[str | None] = []
        """The SNI of every handshake, in arrival order."""

    def start(self) -> TlsAlpnResponder:
        self.port = _free_port_on_both()
        handler = self._handler()
        self._run(_TlsServer(("127.0.0.1", self.port), handler))
        self._run(_TlsServer6(("::1", self.port), handler))
        return self

    def serve(
        self,
        identifier: str,
        key_authz: str,
        *,
        alpn: list[str] | None = None,
        critical: bool = True,
        with_extension: bool = True,
        digest: bytes | None = None,
        extra_sans: tuple[str, ...] = (),
    ) -> None:
        """Present the acmeIdentifier certificate for `identifier`. `alpn` (default
        `["acme-tls/1"]`) is what the server accepts: `[]` or `["http/1.1"]` negotiate no
        acme-tls/1; the other keywords build faulty certificates."""
        cert_pem, key_pem = acme_tls_certificate(
            identifier,
            key_authz,
            critical=critical,
            with_extension=with_extension,
            digest=digest,
            extra_sans=extra_sans,
        )
        name = reverse_name(identifier)
        base = self._files / hashlib.sha256(name.encode()).hexdigest()[:16]
        cert_file, key_file = base.with_suffix(".crt"), base.with_suffix(".key")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        context = self._context([ALPN] if alpn is None else alpn)
        context.load_cert_chain(cert_file, key_file)
        with self._lock:
            self._contexts[name] = context

    def withdraw(self, identifier: str) -> None:
        with self._lock:
            self._contexts.pop(reverse_name(identifier), None)

    @staticmethod
    def _context(alpn: list[str]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    def _pick(
        self, connection: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext
    ) -> int | None:
        with self._lock:
            self.server_names.append(server_name)
            chosen = self._contexts.get((server_name or "").lower())
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = chosen
        return None

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        default = self._default

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                raw: socket.socket = self.request
                raw.settimeout(5)
                with contextlib.suppress(OSError, ssl.SSLError):
                    tls = default.wrap_socket(raw, server_side=True)
                    with contextlib.suppress(OSError):
                        tls.recv(1)  # until the client closes; it sends nothing
                    tls.close()

        return Handler
