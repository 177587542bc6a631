"""The mixed load a real client would send while things fail: certificate requests (managed and
CSR, each with its Idempotency-Key), renewals and revocations, each retried with the same key
and body on a transport error, a 5xx or a 429 until it gets an answer, as a well-behaved client
retries. What the client was told is recorded for the checks."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

API = "/api/v1"
APP = "faults"
PROFILE = "faults"


@dataclass
class Sent:
    """One logical operation and what the client finally heard."""

    kind: str
    """managed, csr, renew or revoke"""
    key: str | None = None
    target: str | None = None
    """the certificate a renewal or revocation is about"""
    status: int | None = None
    body: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


@dataclass
class Tally:
    sent: list[Sent] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    """Every answer, retries included: `202`, `503`, `transport`…"""
    longest_stall: float = 0.0
    """The longest time one operation waited for an answer it could keep."""
    setbacks: list[float] = field(default_factory=list)
    """When (time.monotonic()) each answer to retry came: 5xx, 429 or a transport error."""


DOWN_FOR = 30.0
"""Seconds an api process that refused a connection is left out (as a load balancer's passive
health check does), when another one remains."""


class Client:
    """Sends each operation to the api processes in turn (`urls`), moving to the next on every
    retry, as a load balancer in front of several replicas would, and leaving one that refused
    a connection out for a few seconds."""

    def __init__(self, urls: str | list[str], token: str, tally: Tally, deadline: float) -> None:
        self._urls = [urls] if isinstance(urls, str) else urls
        self._http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15)
        self._tally = tally
        self._deadline = deadline
        self._turn = 0
        self._down_until: dict[str, float] = {}

    def _next_url(self) -> str:
        now = time.monotonic()
        up = [u for u in self._urls if self._down_until.get(u, 0.0) <= now] or self._urls
        self._turn += 1
        return up[self._turn % len(up)]

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, sent: Sent, method: str, path: str, body: Any | None = None) -> Sent:
        headers = {"Idempotency-Key": sent.key} if sent.key else {}
        started = time.monotonic()
        pause = 0.2
        while True:
            sent.attempts += 1
            base = self._next_url()
            url = base + path
            try:
                response = await self._http.request(method, url, json=body, headers=headers)
                self._tally.answers[str(response.status_code)] += 1
                if response.status_code == 503 and "retry-after" not in response.headers:
                    self._tally.answers["503 without Retry-After"] += 1
                if response.status_code < 500 and response.status_code != 429:
                    sent.status = response.status_code
                    sent.body = response.json() if response.content else {}
                    break
            except (httpx.TransportError, httpx.DecodingError) as exc:
                self._tally.answers[f"transport:{type(exc).__name__}"] += 1
                if isinstance(exc, httpx.ConnectError):
                    self._down_until[base] = time.monotonic() + DOWN_FOR
            self._tally.setbacks.append(time.monotonic())
            if time.monotonic() > self._deadline:
                break
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 2.0)
        self._tally.longest_stall = max(self._tally.longest_stall, time.monotonic() - started)
        self._tally.sent.append(sent)
        return sent


async def set_up(
    http: httpx.AsyncClient, directory: str, moto_url: str | None, *, auto_renew: bool = False
) -> None:
    """CA, policy, profile, application with API enrollment, a directory and (with `moto_url`)
    an ACM sync. With `auto_renew`, the renewer renews certificates once they are due."""

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while (r := await http.post(API + path, json=body)).status_code == 503:
            assert time.monotonic() < deadline, r.text  # the issuer still starting
            await asyncio.sleep(0.5)
        assert r.status_code in (200, 201), r.text
        result: dict[str, Any] = r.json()
        return result

    root = await post("/cas", {"name": "fault-root", "type": "root",
                               "subject": {"common_name": "Fault Root"},
                               "key_algorithm": "EC_P256", "validity": "5y"})  # fmt: skip
    issuing = await post("/cas", {"name": "fault-issuing", "type": "intermediate",
                                  "parent_ca_id": root["id"],
                                  "subject": {"common_name": "Fault Issuing"},
                                  "key_algorithm": "EC_P256", "validity": "2y",
                                  "max_path_length": 0})  # fmt: skip
    allowed = {"dns": {"allowed": ["**.example.com"]}}
    policy = await post("/policies", {"name": "faults", "sans": allowed})
    await post("/profiles", {"slug": PROFILE, "ca_id": issuing["id"], "policy_id": policy["id"]})
    await post("/applications", {"slug": APP, "name": "Faults"})
    r = await http.put(f"{API}/applications/{APP}/profiles/{PROFILE}",
                       json={"api": {"enabled": True, "auto_renew": auto_renew,
                                     "renew_before_days": 5}})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    await post(f"/applications/{APP}/syncs", {"name": "dir", "kind": "directory",
                                              "settings": {"path": directory}})  # fmt: skip
    if moto_url is None:
        return
    await post(f"/applications/{APP}/syncs", {
        "name": "acm", "kind": "aws-acm",
        "settings": {"region": "eu-west-1", "endpoint_url": moto_url},
        "credentials": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
                        "secret_access_key": "fault-suite-made-up-secret"},
    })  # fmt: skip


def _csr(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def issue_all(client: Client, rng: random.Random, count: int, concurrency: int) -> None:
    """`count` requests, managed or CSR at random, with unique names and keys."""
    gate = asyncio.Semaphore(concurrency)
    run = f"{rng.getrandbits(32):08x}"

    async def one(i: int) -> None:
        name = f"h{i}-{run}.example.com"
        managed = rng.random() < 0.5
        body: dict[str, Any] = {"profile": PROFILE, "common_name": name,
                                "sans": [{"type": "dns", "value": name}]}  # fmt: skip
        if not managed:
            body = {"profile": PROFILE, "method": "csr", "csr": _csr(name)}
        sent = Sent("managed" if managed else "csr", key=f"{run}-{i}")
        async with gate:
            await client.send(sent, "POST", f"{API}/applications/{APP}/certificate-requests", body)

    await asyncio.gather(*(one(i) for i in range(count)))


async def renew_and_revoke(
    client: Client, renew: list[str], revoke: list[str], concurrency: int
) -> None:
    gate = asyncio.Semaphore(concurrency)
    certs = f"{API}/applications/{APP}/certificates"

    async def one(kind: str, cert: str) -> None:
        async with gate:
            if kind == "renew":
                await client.send(Sent("renew", target=cert), "POST", f"{certs}/{cert}/renew")
            else:
                body = {"reason": "superseded"}
                await client.send(
                    Sent("revoke", target=cert), "POST", f"{certs}/{cert}/revoke", body
                )

    jobs = [("renew", c) for c in renew] + [("revoke", c) for c in revoke]
    await asyncio.gather(*(one(kind, cert) for kind, cert in jobs))
