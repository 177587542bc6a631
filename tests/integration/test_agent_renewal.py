"""The renewal agent against the real stack: api (in process, its transport injected so the
network can be cut), issuer, and a real renewer renewing 30-second certificates.

1. A managed certificate: the agent obtains it and writes certificate, chain, full chain, key
   and PKCS#12 (modes as configured), runs the reload command; the renewer renews it
   server-side and the agent writes the new files within seconds (the long-poll wakes it), then
   reloads again. With the API unreachable a renewal happens behind its back: the files stay
   exactly as they were, the state says why; when the API is back the agent catches up.
2. A CSR certificate: the key is made on this host; at 20 % of its life the agent renews it
   itself with a new CSR for a new key (the old key is retired; neither ever leaves the host).
3. An output that turns out unwritable at run time: a clear error in the state, nothing
   written at all (not even the files that could have been).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from admin_kit import API, create_identity, put_member
from certforge.cli.agent import runner
from certforge.cli.agent.config import load
from certforge.cli.agent.state import State
from harness import Backends
from issuance_kit import Enrollment, enroll, spki
from lifecycle_kit import certificate_row, eventually, set_certificate

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


class Network(httpx.AsyncBaseTransport):
    """The wire between agent and api: `down = True` refuses connections and drops answers
    of requests already in flight (as a stopped server would)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False
        self.urls: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if self.down:
            await response.aclose()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


@pytest_asyncio.fixture(loop_scope="session")
async def renewer(backends: Backends, env_for: None, issuer: object) -> AsyncIterator[None]:
    """The real renewer worker in this process, scanning every second, for one test."""
    from certforge.renewer.main import build
    from certforge.renewer.settings import RenewerSettings, ScanSettings

    worker = build(RenewerSettings.load(renewer=ScanSettings(interval=timedelta(seconds=1))))
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    task = asyncio.create_task(worker.run(on_started, handle_signals=False))
    await asyncio.wait_for(started.wait(), 30)
    yield
    worker.stop()
    await asyncio.wait_for(task, 30)


async def agent_token(admin: httpx.AsyncClient, e: Enrollment) -> str:
    identity = await create_identity(admin)
    await put_member(admin, e.app, identity["id"], "operator")
    token: str = identity["token"]
    return token


def write_config(folder: Path, token: str, app: str, certificate: str, extra: str = "") -> Path:
    (folder / "token").write_text(token + "\n")
    config = folder / "agent.yaml"
    config.write_text(
        f"""
server:
  url: http://certforge.test
  token_file: {folder}/token
state_file: {folder}/state/agent.json
log_format: json
watch_wait: 20
{extra}backoff_initial: 0.2
backoff_max: 1
certificates:
  - name: web
    app: {app}
{certificate}
    reload:
      command: [sh, -c, "date +%s.%N >> {folder}/reloads"]
"""
    )
    return config


@contextlib.asynccontextmanager
async def agent(config: Path, network: Network) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run(load(config), transport=network))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def serial_of(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "x")


def key_matches(certificate: Path, key: Path) -> bool:
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    return spki(cert.public_key()) == spki(private.public_key())


def reloads(folder: Path) -> int:
    path = folder / "reloads"
    return len(path.read_text().splitlines()) if path.exists() else 0


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "out").iterdir())}


async def test_managed_certificate_follows_server_renewal(
    admin: httpx.AsyncClient, api_app: Any, renewer: None, tmp_path: Path
) -> None:
    e = await enroll(admin)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "p12pass").write_text("s3cret\n")
    config = write_config(
        tmp_path,
        await agent_token(admin, e),
        e.app,
        f"""    request:
      profile: {e.profile}
      common_name: agent.example.com
      sans: [dns:agent.example.com, ip:10.0.0.7]
      ttl: 30s
    files:
      certificate: {{path: {out}/cert.pem}}
      chain: {{path: {out}/chain.pem}}
      fullchain: {{path: {out}/fullchain.pem, mode: "0640"}}
      key: {{path: {out}/key.pem}}
      pkcs12: {{path: {out}/bundle.p12, password_file: {tmp_path}/p12pass}}""",
    )
    network = Network(httpx.ASGITransport(app=api_app))  # type: ignore[arg-type]
    state = State.load(tmp_path / "state/agent.json")

    async with agent(config, network):

        async def installed() -> bool:
            return reloads(tmp_path) >= 1

        await eventually(installed, 20, "first certificate installed and reloaded")
        first = State.load(state.path).entries["web"]
        assert first.status == "ok", first
        assert first.renewed_by == "server"
        assert serial_of(out / "cert.pem") == first.serial_number
        assert key_matches(out / "cert.pem", out / "key.pem")
        assert (out / "fullchain.pem").read_bytes() == (out / "cert.pem").read_bytes() + (
            out / "chain.pem"
        ).read_bytes()
        modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
        assert modes == {
            "cert.pem": 0o644,
            "chain.pem": 0o644,
            "fullchain.pem": 0o640,
            "key.pem": 0o600,
            "bundle.p12": 0o600,
        }, modes
        key, cert, _ = pkcs12.load_key_and_certificates(
            (out / "bundle.p12").read_bytes(), b"s3cret"
        )
        assert cert is not None
        assert key is not None
        assert format(cert.serial_number, "x") == first.serial_number
        assert (tmp_path / "state/agent.json").stat().st_mode & 0o777 == 0o600

        # 1. The renewer renews it server-side (due 20 s into its 30 s life).
        async def renewed_at() -> datetime | None:
            row = await certificate_row(api_app, first.certificate_id or "")
            return datetime.now(UTC) if row.renewed_by_id else None

        seen = await eventually(renewed_at, 40, "server-side renewal")
        second_id = str((await certificate_row(api_app, first.certificate_id or "")).renewed_by_id)

        async def new_files() -> bool:
            return serial_of(out / "cert.pem") != first.serial_number and reloads(tmp_path) >= 2

        await eventually(new_files, 10, "the renewed certificate on disk")
        lag = datetime.now(UTC) - seen
        assert lag < timedelta(seconds=5), f"files written {lag} after the renewal"
        second = State.load(state.path).entries["web"]
        assert second.certificate_id == second_id
        assert serial_of(out / "cert.pem") == second.serial_number
        assert key_matches(out / "cert.pem", out / "key.pem")
        assert reloads(tmp_path) == 2
        await set_certificate(api_app, second_id, auto_renew=False)  # no more renewer runs

        # 2. The API unreachable while the certificate is renewed: the files stay untouched.
        network.down = True
        before = snapshot(tmp_path)
        r = await admin.post(
            f"{API}/applications/{e.app}/certificates/{second_id}/renew",
            headers={"Prefer": "wait=10"},
        )
        assert r.status_code == 201, r.text
        third_id = r.json()["certificate"]["id"]

        async def failing() -> bool:
            entry = State.load(state.path).entries["web"]
            return entry.status == "error" and entry.failures >= 2

        await eventually(failing, 15, "the agent noticing the API is gone")
        entry = State.load(state.path).entries["web"]
        assert "cannot reach http://certforge.test" in (entry.last_error or ""), entry
        assert snapshot(tmp_path) == before
        assert reloads(tmp_path) == 2
        assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files"

        # 3. Back: the agent recovers and installs the newest certificate.
        network.down = False
        started = time.monotonic()

        async def recovered() -> bool:
            entry = State.load(state.path).entries["web"]
            return entry.certificate_id == third_id and reloads(tmp_path) >= 3

        await eventually(recovered, 15, "recovery after the outage")
        assert time.monotonic() - started < 10
        assert serial_of(out / "cert.pem") == State.load(state.path).entries["web"].serial_number
        assert key_matches(out / "cert.pem", out / "key.pem")
        assert reloads(tmp_path) == 3


async def test_csr_certificate_renewed_by_the_agent(
    admin: httpx.AsyncClient, api_app: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(
        tmp_path,
        await agent_token(admin, e),
        e.app,
        f"""    request:
      profile: {e.profile}
      method: csr
      common_name: csr.example.com
      sans: [dns:csr.example.com]
      ttl: 30s
    renew_at_fraction: 0.2
    files:
      fullchain: {{path: {out}/fullchain.pem}}
      key: {{path: {out}/key.pem, mode: "0400"}}""",
    )
    network = Network(httpx.ASGITransport(app=api_app))  # type: ignore[arg-type]
    state_path = tmp_path / "state/agent.json"

    async with agent(config, network):

        async def installed() -> bool:
            return reloads(tmp_path) >= 1

        await eventually(installed, 20, "first certificate installed")
        first = State.load(state_path).entries["web"]
        assert first.method == "csr"
        assert first.renewed_by == "agent"
        first_key = (out / "key.pem").read_bytes()
        assert key_matches(out / "fullchain.pem", out / "key.pem")
        assert (out / "key.pem").stat().st_mode & 0o777 == 0o400
        row = await certificate_row(api_app, first.certificate_id or "")
        assert row.encrypted_private_key is None, "the key never left the host"
        assert row.method == "csr"

        async def renewed() -> bool:
            return reloads(tmp_path) >= 2

        await eventually(renewed, 25, "renewal by the agent at 20 % of the lifetime")
        second = State.load(state_path).entries["web"]
        assert second.certificate_id != first.certificate_id
        new = await certificate_row(api_app, second.certificate_id or "")
        assert str(new.renewed_from_id) == first.certificate_id
        assert new.method == "csr"
        assert new.encrypted_private_key is None
        assert (out / "key.pem").read_bytes() != first_key, "a new key for the new certificate"
        assert key_matches(out / "fullchain.pem", out / "key.pem")
        assert not list((tmp_path / "state").glob("*.key")), "the pending key was put in place"


async def test_unwritable_output_writes_nothing(
    admin: httpx.AsyncClient, api_app: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(
        tmp_path,
        await agent_token(admin, e),
        e.app,
        f"""    request:
      profile: {e.profile}
      common_name: blocked.example.com
    files:
      certificate: {{path: {out}/cert.pem}}
      key: {{path: {out}/key.pem}}""",
    )
    loaded = load(config)
    (out / "key.pem").mkdir()  # after the config was checked: found only when writing
    network = Network(httpx.ASGITransport(app=api_app))  # type: ignore[arg-type]
    task = asyncio.create_task(runner.run(loaded, transport=network))
    try:

        async def failing() -> bool:
            entry = State.load(tmp_path / "state/agent.json").entries.get("web")
            return entry is not None and entry.failures >= 2

        await eventually(failing, 20, "the write failure")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    entry = State.load(tmp_path / "state/agent.json").entries["web"]
    assert entry.last_error == f"cannot write {out}/key.pem: it is a directory", entry
    assert sorted(p.name for p in out.iterdir()) == ["key.pem"], "nothing else written"
    assert reloads(tmp_path) == 0
    # Retries install the certificate issued the first time, never request another.
    r = await admin.get(f"{API}/applications/{e.app}/certificates")
    assert len(r.json()["items"]) == 1, r.json()


async def test_revoked_successor_is_not_installed(
    admin: httpx.AsyncClient, api_app: Any, tmp_path: Path
) -> None:
    """A renewal revoked before the agent saw it stays off the disk; the state says why."""
    e = await enroll(admin)
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(
        tmp_path,
        await agent_token(admin, e),
        e.app,
        f"""    request:
      profile: {e.profile}
      common_name: revoked.example.com
    files:
      fullchain: {{path: {out}/fullchain.pem}}
      key: {{path: {out}/key.pem}}""",
    )
    network = Network(httpx.ASGITransport(app=api_app))  # type: ignore[arg-type]
    state_path = tmp_path / "state/agent.json"
    async with agent(config, network):

        async def installed() -> bool:
            return reloads(tmp_path) >= 1

        await eventually(installed, 20, "first certificate installed")
        held = State.load(state_path).entries["web"].certificate_id
        network.down = True  # the renewal and its revocation happen while the agent is away
        base = f"{API}/applications/{e.app}/certificates"
        r = await admin.post(f"{base}/{held}/renew", headers={"Prefer": "wait=10"})
        assert r.status_code == 201, r.text
        revoked = r.json()["certificate"]["id"]
        r = await admin.post(f"{base}/{revoked}/revoke", json={"reason": "keyCompromise"})
        assert r.status_code == 200, r.text
        before = snapshot(tmp_path)
        network.down = False

        async def refused() -> bool:
            entry = State.load(state_path).entries["web"]
            return entry.status == "error" and "is revoked" in (entry.last_error or "")

        await eventually(refused, 15, "the agent refusing the revoked successor")
        entry = State.load(state_path).entries["web"]
        assert entry.last_error == (
            f"the newest certificate of the lineage, {revoked}, is revoked; keeping the "
            "current files"
        )
        assert entry.certificate_id == held
        assert snapshot(tmp_path) == before
        assert reloads(tmp_path) == 1


async def test_polling_fallback_without_watch(
    admin: httpx.AsyncClient, api_app: Any, tmp_path: Path
) -> None:
    """`watch: false` (for proxies that cut long requests): the same question without waiting,
    every `poll_interval`; a renewal is still picked up."""
    e = await enroll(admin)
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(
        tmp_path,
        await agent_token(admin, e),
        e.app,
        f"""    request:
      profile: {e.profile}
      common_name: polled.example.com
    files:
      fullchain: {{path: {out}/fullchain.pem}}
      key: {{path: {out}/key.pem}}""",
        extra="watch: false\npoll_interval: 0.5\n",
    )
    network = Network(httpx.ASGITransport(app=api_app))  # type: ignore[arg-type]
    state_path = tmp_path / "state/agent.json"
    async with agent(config, network):

        async def installed() -> bool:
            return reloads(tmp_path) >= 1

        await eventually(installed, 20, "first certificate installed")
        held = State.load(state_path).entries["web"].certificate_id
        r = await admin.post(
            f"{API}/applications/{e.app}/certificates/{held}/renew", headers={"Prefer": "wait=10"}
        )
        assert r.status_code == 201, r.text
        renewed = r.json()["certificate"]["id"]

        async def follows() -> bool:
            entry = State.load(state_path).entries["web"]
            return entry.certificate_id == renewed and reloads(tmp_path) >= 2

        await eventually(follows, 10, "the renewal picked up by polling")
        assert key_matches(out / "fullchain.pem", out / "key.pem")
    polls = [u for u in network.urls if u.path.endswith("/successor")]
    assert len(polls) >= 2, polls
    assert {u.params["wait"] for u in polls} == {"0"}


async def test_safety_net_renews_what_the_server_does_not(
    admin: httpx.AsyncClient, api_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A managed certificate whose auto-renewal was switched off after the agent got it: with
    no successor at the safety-net point of its life, the agent renews it (a new key, made by
    the issuer). The point is lowered from 90 % to half here: at 90 % of a 20 s life the agent
    has 2 s to renew, which a loaded CI machine has missed."""
    monkeypatch.setattr(runner, "SAFETY_NET_FRACTION", 0.5)
    e = await enroll(admin)
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(
        tmp_path,
        await agent_token(admin, e),
        e.app,
        f"""    request:
      profile: {e.profile}
      common_name: netted.example.com
      ttl: 20s
    files:
      fullchain: {{path: {out}/fullchain.pem}}
      key: {{path: {out}/key.pem}}""",
    )
    network = Network(httpx.ASGITransport(app=api_app))  # type: ignore[arg-type]
    state_path = tmp_path / "state/agent.json"
    async with agent(config, network):

        async def installed() -> bool:
            return reloads(tmp_path) >= 1

        await eventually(installed, 20, "first certificate installed")
        first = State.load(state_path).entries["web"]
        assert first.renewed_by == "server"
        r = await admin.patch(
            f"{API}/applications/{e.app}/certificates/{first.certificate_id}",
            json={"auto_renew": False},
        )
        assert r.status_code == 200, r.text
        first_key = (out / "key.pem").read_bytes()

        async def renewed() -> bool:
            return reloads(tmp_path) >= 2

        await eventually(renewed, 30, "the agent's own renewal at half the life")
        second = State.load(state_path).entries["web"]
        row = await certificate_row(api_app, second.certificate_id or "")
        assert str(row.renewed_from_id) == first.certificate_id
        assert second.not_before is not None
        assert first.not_after is not None
        assert datetime.fromisoformat(second.not_before) < datetime.fromisoformat(
            first.not_after
        ), "renewed before the old one expired"
        assert (out / "key.pem").read_bytes() != first_key
        assert key_matches(out / "fullchain.pem", out / "key.pem")
