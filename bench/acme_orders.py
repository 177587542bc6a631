"""ACME throughput (part of `make bench`; alone: `.venv/bin/python bench/acme_orders.py`).

Complete ACME orders per second against the system `run.py` started, over its HTTPS directory
(`make run`'s second api process, the development CA trusted), and where each order's time
goes. One account, registered once with an EAB key made through the REST API, is reused by
every worker, as a busy ACME client (cert-manager, a fleet's certbot) would. Each worker loops:

1. **order**: `newOrder` for one fresh name under `.bench.test`, and the POST-as-GET of its
   authorization (what every client does next);
2. **validation**: the http-01 key authorization is put on the local responder, the challenge
   is answered, and the authorization is polled until `valid`: the api's challenge POST, the
   outbox, JetStream, the validator's DNS lookup (a local authoritative server) and HTTP fetch,
   its verdict back through the outbox;
3. **finalize**: `finalize` with a fresh EC P-256 CSR, the order polled until `valid`: the same
   issue command, issuer and lint as API enrollment;
4. **download**: the certificate chain (POST-as-GET).

Polls run every `--acme-poll-ms` (default 50 ms) rather than after the server's `Retry-After`
(1 s), so the figures show the server's latency rather than a client's sleep. The client
(`acme`, certbot's library) runs in this process on the same cores as the system measured; its
CPU share is reported.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from acme import challenges, client, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import QTYPE, RR, A  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSLogger, DNSServer  # type: ignore[import-untyped]
from josepy.jwa import ES256
from josepy.jwk import JWKEC

STEPS = ("order", "validation", "finalize", "download")
DOMAIN = "bench.test"


# --- the peers a requester's machine would provide ------------------------------------------


class _Responder(BaseHTTPRequestHandler):
    tokens: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.tokens.get(self.path.rsplit("/", 1)[-1])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Everything127(BaseResolver):  # type: ignore[misc]
    """Every name is 127.0.0.1 (A); nothing else exists."""

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        if request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=60))
        return reply


class _Quiet(DNSLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data")


@dataclass
class Peers:
    """An http-01 responder and an authoritative DNS server on loopback: what the validator
    of the system under test is pointed at (`settings()`)."""

    http_port: int = 0
    dns_port: int = 0
    tokens: dict[str, bytes] = field(default_factory=dict)
    _http: ThreadingHTTPServer | None = None
    _dns: list[Any] = field(default_factory=list)

    def start(self) -> Peers:
        handler = type("Responder", (_Responder,), {"tokens": self.tokens})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.dns_port = _free_udp_and_tcp_port()
        for tcp in (False, True):
            server = DNSServer(
                _Everything127(), port=self.dns_port, address="127.0.0.1", tcp=tcp, logger=_Quiet()
            )
            server.start_thread()
            self._dns.append(server)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for server in self._dns:
            server.stop()

    def settings(self) -> dict[str, str]:
        return {
            "CERTFORGE_VALIDATOR__HTTP01_PORT": str(self.http_port),
            "CERTFORGE_VALIDATOR__RESOLVER": f"127.0.0.1:{self.dns_port}",
        }


def _free_udp_and_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


# --- the client -----------------------------------------------------------------------------


@dataclass
class Account:
    directory_url: str
    ca_file: Path
    key: JWKEC
    registration: messages.RegistrationResource

    def client(self) -> client.ClientV2:
        """A client of its own (a session and its nonces) for one worker thread."""
        net = client.ClientNetwork(
            self.key,
            account=self.registration,
            alg=ES256,
            verify_ssl=str(self.ca_file),  # type: ignore[arg-type]  # requests takes a CA file
            user_agent="certforge-bench",
        )
        return client.ClientV2(client.ClientV2.get_directory(self.directory_url, net), net)


def register(directory_url: str, ca_file: Path, eab_key_id: str, eab_hmac_key: str) -> Account:
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = client.ClientNetwork(
        key,
        alg=ES256,
        verify_ssl=str(ca_file),  # type: ignore[arg-type]
        user_agent="certforge-bench",
    )
    directory = client.ClientV2.get_directory(directory_url, net)
    acme = client.ClientV2(directory, net)
    eab = messages.ExternalAccountBinding.from_data(
        account_public_key=key.public_key(),
        kid=eab_key_id,
        hmac_key=eab_hmac_key,
        directory=directory,
    )
    registration = acme.new_account(
        messages.NewRegistration.from_data(
            email="bench@example.com",
            terms_of_service_agreed=True,
            external_account_binding=eab,
        )
    )
    return Account(directory_url, ca_file, key, registration)


def _csr(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _until(fetch: Any, done: set[str], poll: float, deadline: float) -> tuple[str, dict[str, Any]]:
    while True:
        body: dict[str, Any] = fetch().json()
        if body["status"] in done or time.monotonic() > deadline:
            return body["status"], body
        time.sleep(poll)


def one_order(
    acme: client.ClientV2, account: Account, tokens: dict[str, bytes], poll: float
) -> dict[str, float]:
    """One complete order; the seconds of each step. Raises on any failure."""
    name = f"o{uuid.uuid4().hex[:12]}.{DOMAIN}"
    csr = _csr(name)
    deadline = time.monotonic() + 60
    started = time.perf_counter()
    order = acme.new_order(csr)
    ordered = time.perf_counter()

    authorization = order.authorizations[0]
    challenge = next(
        c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)
    )
    response, validation = challenge.response_and_validation(account.key)
    token = challenge.chall.encode("token")
    tokens[token] = validation.encode()
    try:
        acme.answer_challenge(challenge, response)
        status, body = _until(
            lambda: acme.net.post(authorization.uri, None),
            {"valid", "invalid"},
            poll,
            deadline,
        )
    finally:
        tokens.pop(token, None)
    if status != "valid":
        raise RuntimeError(f"authorization {status}: {body.get('challenges')}")
    validated = time.perf_counter()

    order = acme.begin_finalization(order)
    status, body = _until(
        lambda: acme.net.post(order.uri, None), {"valid", "invalid"}, poll, deadline
    )
    if status != "valid":
        raise RuntimeError(f"order {status}: {body.get('error')}")
    finalized = time.perf_counter()

    chain = acme.net.post(body["certificate"], None).text
    if chain.count("BEGIN CERTIFICATE") < 2:
        raise RuntimeError("the download is not a certificate chain")
    downloaded = time.perf_counter()
    return {
        "order": ordered - started,
        "validation": validated - ordered,
        "finalize": finalized - validated,
        "download": downloaded - finalized,
    }


def drive(
    account: Account, tokens: dict[str, bytes], seconds: float, workers: int, poll: float
) -> dict[str, Any]:
    """`workers` threads completing orders for `seconds`; throughput, per-step latency,
    errors and the client's own CPU."""
    timings: list[dict[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def work() -> None:
        acme = account.client()
        while time.monotonic() < stop_at:
            try:
                steps = one_order(acme, account, tokens, poll)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            with lock:
                timings.append(steps)

    cpu = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    client_cpu = time.process_time() - cpu
    result: dict[str, Any] = {
        "orders": len(timings),
        "seconds": elapsed,
        "orders_per_second": len(timings) / elapsed,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "workers": workers,
        "poll_ms": poll * 1000,
        "client_cpu_cores": client_cpu / elapsed,
        "steps": {},
    }
    for step in (*STEPS, "total"):
        values = sorted(sum(t.values()) if step == "total" else t[step] for t in timings) or [0.0]
        result["steps"][step] = {
            "mean_ms": statistics.fmean(values) * 1000,
            "p50_ms": _percentile(values, 0.50) * 1000,
            "p99_ms": _percentile(values, 0.99) * 1000,
        }
    return result


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


# --- with the system run.py started ---------------------------------------------------------


def acme_bench(system: Any, peers: Peers, seconds: float, workers: int, poll: float) -> Any:
    """Register (EAB key through the REST API), warm up, then measure."""
    created = system.call(
        "POST", "/api/v1/applications/demo/profiles/dev-tls/enrollment/acme/eab-keys", {}
    )
    account = register(
        system.acme_directory, system.ca_file, created["key_id"], created["hmac_key"]
    )
    drive(account, peers.tokens, min(5.0, seconds / 3), workers, poll)  # warm-up
    return drive(account, peers.tokens, seconds, workers, poll)


def report(r: dict[str, Any]) -> None:
    print(
        f"ACME: {r['orders_per_second']:.1f} complete orders/s ({r['orders']} in "
        f"{r['seconds']:.0f} s, {r['workers']} workers, errors {r['errors']}"
        + (f": {r['first_error']}" if r["errors"] else "")
        + f"); client CPU {r['client_cpu_cores']:.2f} cores"
    )
    for step in (*STEPS, "total"):
        s = r["steps"][step]
        print(
            f"  {step:<10} mean {s['mean_ms']:7.1f} ms  p50 {s['p50_ms']:7.1f} ms  "
            f"p99 {s['p99_ms']:7.1f} ms"
        )


def record_text(r: dict[str, Any]) -> str:
    """The RESULTS.md paragraph and table."""
    lines = [
        "",
        "ACME (bench/acme_orders.py): complete orders over the HTTPS directory, one EAB-bound "
        f"account reused by {r['workers']} workers, http-01 against a local responder with names "
        f"resolved by a local DNS server, polls every {r['poll_ms']:.0f} ms: "
        f"**{r['orders_per_second']:.1f} orders/s** ({r['orders']} in {r['seconds']:.0f} s, "
        f"{r['errors']} errors); the client took {r['client_cpu_cores']:.2f} of the cores.",
        "",
        "| step | mean ms | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    names = {
        "order": "newOrder + authorization",
        "validation": "http-01: challenge POST → authorization valid",
        "finalize": "finalize → order valid",
        "download": "certificate download",
        "total": "whole order",
    }
    for step in (*STEPS, "total"):
        s = r["steps"][step]
        lines.append(
            f"| {names[step]} | {s['mean_ms']:.1f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


@contextmanager
def running_peers() -> Iterator[Peers]:
    peers = Peers().start()
    try:
        yield peers
    finally:
        peers.stop()


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=20, help="seconds measured")
    parser.add_argument("--acme-workers", type=int, default=8)
    parser.add_argument("--acme-poll-ms", type=int, default=50)
    parser.add_argument("--label", default="", help="a note for RESULTS.md (what changed)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    with running_peers() as peers, run.System(peers.settings()) as system:
        results = acme_bench(
            system, peers, args.duration, args.acme_workers, args.acme_poll_ms / 1000
        )
    report(results)
    if not args.no_record:
        run.append_results(
            f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — `bench/acme_orders.py`"
            + (f" — {args.label}" if args.label else "")
            + f"\n\nMachine: {os.cpu_count()} cores; everything on this machine.\n"
            + record_text(results)
        )


if __name__ == "__main__":
    main()
