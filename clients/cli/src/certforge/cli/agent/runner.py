"""The agent's loop: obtain each certificate, keep its files current, reload after a change.

One `Keeper` per configured certificate, each an asyncio task:

- no certificate yet (or the config's request changed): request it (`Prefer: wait`, an
  `Idempotency-Key` kept in the state file so a retry after a lost answer never makes a second
  one), or, for a `certificate_id`, take the newest of its lineage; install the files; reload.
- certificates the server renews (managed, auto-renew on): long-poll
  `GET …/certificates/{id}/successor?wait=N`, which answers within moments of the renewal; a
  newer certificate is downloaded and installed. With `watch: false` (a proxy that cuts long
  requests) the same question is asked every `poll_interval` without waiting.
- certificates the agent renews (CSR, or managed with auto-renew off): at `renew_at_fraction`
  of the lifetime, renew with a new key (CSR: generated here, only the CSR leaves the host).
  Certificates the server renews get the same treatment at 90 % of their life if no renewal
  came by then (`SAFETY_NET_FRACTION`).
- any failure (server unreachable, 5xx, a file that cannot be written): nothing on disk
  changes, the error goes to the log and the state file, and the same step is retried after an
  exponential delay with full jitter (`backoff_initial` doubling up to `backoff_max`), so a
  fleet of agents does not return in step when the server comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from certforge.cli.agent import keys
from certforge.cli.agent.config import AgentConfig, Certificate
from certforge.cli.agent.files import Output, WriteError, install, write_one
from certforge.cli.agent.state import Entry, Pending, State, now_text
from certforge.cli.api import ApiError, AsyncApiClient

log = logging.getLogger("certforge.agent")

REQUEST_WAIT = 30
"""`Prefer: wait` for issuance: most certificates come back in the first answer."""

SAFETY_NET_FRACTION = 0.9
"""A certificate the server renews that has no successor when 90 % of its life is gone is
renewed by the agent: the server renews `renew_before_days` ahead (always sooner), so by then
auto-renewal was switched off, keeps failing, or the renewer is down, and waiting longer only
lets the certificate expire on the machine that serves it."""


class AgentError(Exception):
    """A step that cannot succeed as configured (e.g. a CSR certificate without its key)."""


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Full jitter: uniform in [0, min(maximum, initial * 2^(failures-1))], at least 0.1 s."""
    ceiling = min(maximum, initial * 2 ** max(failures - 1, 0))
    return max(0.1, random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret


@dataclass
class Issued:
    """A certificate as downloaded: everything needed to write its files."""

    id: str
    certificate: str
    chain: str
    private_key: bytes | None
    auto_renew: bool


class Keeper:
    def __init__(
        self, spec: Certificate, config: AgentConfig, api: AsyncApiClient, state: State
    ) -> None:
        self.spec = spec
        self.config = config
        self.api = api
        self.state = state
        self.name = spec.name
        self.base = f"/api/v1/applications/{spec.app}"
        self.pending_key_path = config.state_file.with_name(
            f"{config.state_file.name}.{spec.name}.key"
        )

    @property
    def entry(self) -> Entry:
        return self.state.entry(self.name)

    def source(self) -> str:
        """What the config asks for; the files are replaced when it changes."""
        basis = self.spec.request.model_dump(mode="json") if self.spec.request else None
        raw = json.dumps([self.spec.app, str(self.spec.certificate_id), basis], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as exc:
                # Expected failures (network, server, files) are one line; anything else is a
                # bug worth its traceback, but never a reason to stop keeping the others.
                expected = (ApiError, WriteError, AgentError, OSError, ValueError)
                if not isinstance(exc, expected):
                    log.exception("%s: unexpected error", self.name)
                self.failed(exc)
                entry = self.entry
                delay = backoff_delay(
                    entry.failures, self.config.backoff_initial, self.config.backoff_max
                )
                entry.next_attempt_at = now_text(datetime.now(UTC) + timedelta(seconds=delay))
                try:
                    self.state.save()
                except OSError as save_error:  # the error above is in the log already
                    log.error("%s: cannot save the state: %s", self.name, save_error)
                await asyncio.sleep(delay)

    async def step(self) -> None:
        entry = self.entry
        if entry.source != self.source() or entry.certificate_id is None:
            await self.obtain()
        elif entry.installed_at is None or not self.files_in_place():
            await self.install(await self.download(entry.certificate_id))
        elif self.due(entry):
            await self.renew()
        else:
            await self.watch(entry)

    def failed(self, exc: BaseException) -> None:
        entry = self.entry
        entry.failures += 1
        entry.status = "error"
        entry.last_error = str(exc) or type(exc).__name__
        entry.last_error_at = now_text()
        log.warning(
            "%s: %s (retrying; attempt %d)",
            self.name,
            entry.last_error,
            entry.failures,
            extra={"certificate": self.name, "failures": entry.failures},
        )

    def succeeded(self) -> None:
        entry = self.entry
        if entry.failures:
            log.info("%s: recovered", self.name, extra={"certificate": self.name})
        entry.failures = 0
        entry.status = "ok"
        entry.next_attempt_at = None
        self.state.save()

    # --- obtaining -----------------------------------------------------------------------------

    async def obtain(self) -> None:
        entry = self.entry
        if entry.source != self.source():
            entry.source = self.source()
            entry.certificate_id = None
            entry.installed_at = None
            entry.pending = None
        if self.spec.certificate_id is not None:
            newest = await self.newer_than(str(self.spec.certificate_id), 0)
            certificate_id = newest or str(self.spec.certificate_id)
            await self.install(await self.download(certificate_id))
            return
        request = self.spec.request
        assert request is not None
        if entry.pending is None:
            csr = self.new_csr() if request.method == "csr" else None
            entry.pending = Pending(idempotency_key=str(uuid.uuid4()), csr=csr)
            self.state.save()
        body: dict[str, Any] = {"profile": request.profile, "metadata": request.metadata}
        if request.ttl:
            body["ttl"] = request.ttl
        if request.method == "csr":
            body |= {"method": "csr", "csr": entry.pending.csr}
        else:
            body |= {"common_name": request.common_name, "sans": request.sans}
            if request.key_algorithm:
                body["key_algorithm"] = request.key_algorithm
        answer = await self.submit(
            f"{self.base}/certificate-requests", body, entry.pending.idempotency_key
        )
        log.info(
            "%s: certificate %s issued",
            self.name,
            answer.id,
            extra={"certificate": self.name, "certificate_id": answer.id},
        )
        entry.pending.certificate_id = answer.id
        await self.install(answer)

    def new_csr(self) -> str:
        """A new key, kept on this host (0600, beside the state file) until it is installed,
        and the CSR for it."""
        request = self.spec.request
        key = keys.new_key(request.key_algorithm if request else None)
        self.pending_key_path.parent.mkdir(parents=True, exist_ok=True)
        write_one(self.pending_key_path, keys.key_pem(key), 0o600)
        common_name = request.common_name if request else None
        sans = request.sans if request else []
        if self.spec.certificate_id is not None or not (common_name or sans):
            common_name, sans = self.current_names()
        return keys.csr_pem(key, common_name, sans)

    def current_names(self) -> tuple[str | None, list[dict[str, str]]]:
        """The names of the installed certificate (a CSR renewal keeps them)."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        path = self.certificate_file()
        if path is None:
            raise AgentError("renewing by CSR needs files.certificate or files.fullchain")
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        sans: list[dict[str, str]] = []
        with contextlib.suppress(x509.ExtensionNotFound):
            ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            for dns in ext.value.get_values_for_type(x509.DNSName):
                sans.append({"type": "dns", "value": dns})
            for ip in ext.value.get_values_for_type(x509.IPAddress):
                sans.append({"type": "ip", "value": str(ip)})
        return (str(cns[0].value) if cns else None), sans

    async def submit(self, path: str, body: dict[str, Any], idempotency_key: str) -> Issued:
        response = await self.api.request(
            "POST",
            path,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
            wait=REQUEST_WAIT,
        )
        view: dict[str, Any] = response.json()
        while view.get("status") == "pending":
            await asyncio.sleep(1)
            view = await self.api.get(f"{self.base}/certificate-requests/{view['id']}")
        if view.get("certificate") is None:
            raise AgentError(f"request {view.get('id')} ended {view.get('status')}")
        return await self.download(view["certificate"]["id"], view)

    async def download(self, certificate_id: str, view: dict[str, Any] | None = None) -> Issued:
        """The certificate, its chain and (managed) key: one request view carries all three."""
        details = await self.api.get(f"{self.base}/certificates/{certificate_id}")
        if view is None:
            view = await self.api.get(f"{self.base}/certificate-requests/{details['request_id']}")
        issued = view["certificate"]
        key = issued.get("private_key")
        if details["has_private_key"] and key is None:
            raise AgentError(
                f"the token may not read {certificate_id}'s private key: it needs the "
                "operator or application-admin role"
            )
        return Issued(
            id=certificate_id,
            certificate=issued["certificate"],
            chain=issued["chain"],
            private_key=key.encode("ascii") if key else None,
            auto_renew=bool(details["auto_renew"]) and bool(details["has_private_key"]),
        )

    # --- watching and renewing -----------------------------------------------------------------

    async def newer_than(self, certificate_id: str, wait: int) -> str | None:
        """The id of the lineage's newest certificate if newer than `certificate_id`."""
        answer = await self.api.get(
            f"{self.base}/certificates/{certificate_id}/successor", {"wait": wait}
        )
        if answer is None:
            return None
        if answer.get("status") != "active":
            # Not installed, and not asked about again at once (it would answer the same):
            # reported as an error, so the retries back off and `status` shows it.
            raise AgentError(
                f"the newest certificate of the lineage, {answer['id']}, is "
                f"{answer.get('status')}; keeping the current files"
            )
        return str(answer["id"])

    async def watch(self, entry: Entry) -> None:
        assert entry.certificate_id is not None
        wait = self.config.watch_wait if self.config.watch else 0
        if entry.renew_at:
            until = datetime.fromisoformat(entry.renew_at) - datetime.now(UTC)
            wait = max(0, min(wait, int(until.total_seconds()) + 1))
        newer = await self.newer_than(entry.certificate_id, wait)
        self.succeeded()
        if newer is not None:
            log.info(
                "%s: renewed by the server: %s",
                self.name,
                newer,
                extra={"certificate": self.name, "certificate_id": newer},
            )
            await self.install(await self.download(newer))
        elif not self.config.watch:
            await asyncio.sleep(self.poll_pause(entry))

    def poll_pause(self, entry: Entry) -> float:
        pause = self.config.poll_interval
        if entry.renew_at:
            until = datetime.fromisoformat(entry.renew_at) - datetime.now(UTC)
            pause = min(pause, max(0.0, until.total_seconds()))
        return pause

    def due(self, entry: Entry) -> bool:
        return entry.renew_at is not None and datetime.fromisoformat(
            entry.renew_at
        ) <= datetime.now(UTC)

    async def renew(self) -> None:
        """Renew a certificate the server does not: CSR with a new key made here, or managed
        with a new key made by the issuer."""
        entry = self.entry
        assert entry.certificate_id is not None
        newer = await self.newer_than(entry.certificate_id, 0)
        if newer is not None:  # someone renewed it already: take that one
            await self.install(await self.download(newer))
            return
        if entry.pending is None:
            csr = None if self.is_managed() else self.new_csr()
            entry.pending = Pending(idempotency_key=str(uuid.uuid4()), csr=csr)
            self.state.save()
        body: dict[str, Any] = (
            {"key": "csr", "csr": entry.pending.csr} if entry.pending.csr else {"key": "new"}
        )
        log.info(
            "%s: renewing %s", self.name, entry.certificate_id, extra={"certificate": self.name}
        )
        answer = await self.submit(
            f"{self.base}/certificates/{entry.certificate_id}/renew",
            body,
            entry.pending.idempotency_key,
        )
        entry.pending.certificate_id = answer.id
        await self.install(answer)

    def is_managed(self) -> bool:
        return self.entry.method == "managed"

    # --- files -----------------------------------------------------------------------------

    def certificate_file(self) -> Path | None:
        files = self.spec.files
        chosen = files.certificate or files.fullchain
        return chosen.path if chosen else None

    def files_in_place(self) -> bool:
        return all(f.path.exists() for f in self.spec.files.outputs().values())

    def host_key(self, issued: Issued) -> bytes:
        """The key of a CSR certificate: the one made for this request, else the installed
        one (a certificate adopted by id); it must match the certificate."""
        for path in (
            self.pending_key_path,
            self.spec.files.key.path if self.spec.files.key else None,
        ):
            if path is not None and path.exists():
                pem = path.read_bytes()
                if keys.public_key_matches(issued.certificate, pem):
                    return pem
        raise AgentError(
            f"certificate {issued.id} was issued from a CSR and no key on this host matches it "
            "(files.key)"
        )

    async def install(self, issued: Issued) -> None:
        """Write every file (all or none), record it, reload."""
        key = issued.private_key if issued.private_key is not None else self.host_key(issued)
        files = self.spec.files
        outputs: list[Output] = []

        def add(spec: Any, data: bytes, default_mode: int) -> None:
            if spec is not None:
                mode = spec.mode if spec.mode is not None else default_mode
                outputs.append(Output(spec.path, data, mode, spec.uid(), spec.gid()))

        add(files.certificate, issued.certificate.encode(), 0o644)
        add(files.chain, issued.chain.encode(), 0o644)
        add(files.fullchain, (issued.certificate + issued.chain).encode(), 0o644)
        add(files.key, key, 0o600)
        if files.pkcs12 is not None:
            password = (
                files.pkcs12.password_file.read_bytes().strip()
                if files.pkcs12.password_file
                else None
            )
            data = keys.pkcs12_bytes(self.name, key, issued.certificate, issued.chain, password)
            add(files.pkcs12, data, 0o600)
        await asyncio.to_thread(install, outputs)

        not_before, not_after, serial = keys.lifetime(issued.certificate)
        entry = self.entry
        entry.certificate_id = issued.id
        entry.serial_number = serial
        entry.not_before = now_text(not_before)
        entry.not_after = now_text(not_after)
        entry.installed_at = now_text()
        entry.pending = None
        entry.method = "csr" if issued.private_key is None else "managed"
        entry.renewed_by = "server" if issued.auto_renew else "agent"
        lifetime = not_after - not_before
        fraction = (
            self.spec.renew_at_fraction if entry.renewed_by == "agent" else SAFETY_NET_FRACTION
        )
        entry.renew_at = now_text(not_before + lifetime * fraction)
        with contextlib.suppress(FileNotFoundError):
            self.pending_key_path.unlink()
        log.info(
            "%s: installed certificate %s (serial %s, valid until %s)",
            self.name,
            issued.id,
            serial,
            entry.not_after,
            extra={"certificate": self.name, "certificate_id": issued.id, "serial": serial},
        )
        self.succeeded()
        await self.reload()

    async def reload(self) -> None:
        action = self.spec.reload
        if action is None:
            return
        entry = self.entry
        entry.last_reload = now_text()
        entry.last_reload_error = None
        try:
            if action.command is not None:
                process = await asyncio.create_subprocess_exec(
                    *action.command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                try:
                    output, _ = await asyncio.wait_for(process.communicate(), action.timeout)
                except TimeoutError:
                    process.kill()
                    await process.wait()
                    raise AgentError(
                        f"reload command timed out after {action.timeout:g}s"
                    ) from None
                if process.returncode != 0:
                    tail = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
                    raise AgentError(f"reload command exited {process.returncode}: {tail[0]}")
            else:
                assert action.pid_file is not None
                assert action.signal is not None
                pid = int(action.pid_file.read_text().strip())
                os.kill(pid, signal.Signals[action.signal])
            log.info("%s: reloaded", self.name, extra={"certificate": self.name})
        except (AgentError, OSError, ValueError) as exc:
            # The files are in place; a failed reload is reported, not retried by rewriting.
            entry.last_reload_error = str(exc)
            log.error("%s: reload failed: %s", self.name, exc, extra={"certificate": self.name})
        self.state.save()


async def run(config: AgentConfig, transport: Any = None) -> None:
    """Keep every configured certificate until cancelled (SIGTERM/SIGINT in `main`)."""
    state = State.load(config.state_file)
    timeout = max(config.server.timeout, config.watch_wait + 10)
    bundle = config.server.ca_bundle
    # A private CA's bundle for an API whose certificate it issued; else the system's roots.
    verify: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=str(bundle)) if bundle is not None else True
    )
    async with AsyncApiClient(
        config.server.url, config.token(), timeout=timeout, transport=transport, verify=verify
    ) as api:
        keepers = [Keeper(spec, config, api, state) for spec in config.certificates]
        log.info("agent started: %d certificate(s)", len(keepers))
        try:
            await asyncio.gather(*(k.run() for k in keepers))
        finally:
            state.save()


__all__ = ["AgentError", "Keeper", "backoff_delay", "run"]
