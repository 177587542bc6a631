"""certbot (PyPI), a real ACME client, against `make run`'s HTTPS directory on loopback.

One `certforge-dev run` for the module, started as a developer would, with only what one
machine needs to stand in for the Internet: the validator's http-01 port is the port certbot's
standalone server listens on, and its resolver is the test's DNS server
(`acme_responders.DnsServer`: every name under `.test` is 127.0.0.1). certbot trusts the
development CA through `REQUESTS_CA_BUNDLE`, as the README tells a user to.

certbot registers with External Account Binding (the key made through the REST API), obtains
with http-01 (DNS names, and an IP address, RFC 8738), renews, revokes by account key and by
certificate key. What it obtained is then checked where every other certificate shows: the
application's inventory (auto-renew off: ACME clients renew their own), the
`certificate.issued` event, a `directory` sync, `openssl verify` against the development CA,
OCSP and the CRL.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
from devrun_kit import DevRun, DevRuns, clean_env, new_state_dir, remove_state_dir
from nats.js.api import DeliverPolicy

from acme_responders import DnsServer
from certforge.devstack.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CERTBOT = Path(sys.executable).parent / "certbot"
APP = "/api/v1/applications/demo"
ENROLLMENT = f"{APP}/profiles/dev-tls/enrollment/acme"
CONTACT = "ops@example.com"


@dataclass
class Certbot:
    """certbot with its own configuration directory per `profile` (an ACME client machine):
    always our directory URL, never an interactive question, the dev CA trusted."""

    root: Path
    server: str
    ca_file: Path
    http01_port: int

    def run(self, *args: str, profile: str = "client", check: bool = True) -> str:
        home = self.root / profile
        command = [
            str(CERTBOT),
            *args,
            "--server",
            self.server,
            "--config-dir",
            str(home / "config"),
            "--work-dir",
            str(home / "work"),
            "--logs-dir",
            str(home / "logs"),
            "--non-interactive",
        ]
        done = subprocess.run(
            command,
            env={**clean_env(), "REQUESTS_CA_BUNDLE": str(self.ca_file)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            log = home / "logs" / "letsencrypt.log"
            tail = log.read_text()[-6000:] if log.exists() else ""
            pytest.fail(f"certbot {args[0]} exited {done.returncode}:\n{output}\n{tail}")
        if not check:
            assert done.returncode != 0, f"certbot {args[0]} should have failed:\n{output}"
        return output

    def standalone(self) -> list[str]:
        """http-01 answered by certbot's own server on the port the validator fetches from."""
        return [
            "--standalone",
            "--http-01-port",
            str(self.http01_port),
            "--http-01-address",
            "127.0.0.1",
        ]

    def live(self, name: str, profile: str = "client") -> Path:
        return self.root / profile / "config" / "live" / name


@dataclass
class Stack:
    run: DevRun
    api: httpx.Client
    certbot: Certbot
    sync_dir: Path
    sync_id: str


@pytest.fixture(scope="module")
def stack(acme_dns: DnsServer) -> Iterator[Stack]:
    state = new_state_dir()
    runs = DevRuns(state)
    try:
        api_port = free_port()
        tls_port = free_port(avoid={api_port})
        http01_port = free_port(avoid={api_port, tls_port})
        run = runs.start(
            api_port,
            tls_port,
            env={
                "CERTFORGE_VALIDATOR__HTTP01_PORT": str(http01_port),
                "CERTFORGE_VALIDATOR__RESOLVER": acme_dns.nameserver,
                "CERTFORGE_VALIDATOR__ALLOW_PRIVATE_TARGETS": "true",
                "CERTFORGE_VALIDATOR__RETRIES": "0",
            },
        )
        run.wait_ready()
        token = (state / "secrets" / "bootstrap_token").read_text().strip()
        trust = ssl.create_default_context(cafile=str(run.ca_file))
        with httpx.Client(
            base_url=run.https,
            headers={"Authorization": f"Bearer {token}"},
            verify=trust,
            timeout=30.0,
        ) as api:
            sync_dir = state / "synced"
            sync = api.post(
                f"{APP}/syncs",
                json={
                    "name": "acme-files",
                    "kind": "directory",
                    "settings": {"path": str(sync_dir)},
                },
            )
            assert sync.status_code == 201, sync.text
            certbot = Certbot(state / "certbot", run.acme_directory, run.ca_file, http01_port)
            yield Stack(run, api, certbot, sync_dir, sync.json()["id"])
    finally:
        runs.stop_all()
        remove_state_dir(state)


@pytest.fixture(scope="module")
def registered(stack: Stack) -> dict[str, Any]:
    """certbot's account, registered with an EAB key made through the REST API; the key."""
    created = stack.api.post(f"{ENROLLMENT}/eab-keys", json={"name": "certbot e2e"})
    assert created.status_code == 201, created.text
    key = created.json()
    output = stack.certbot.run(
        "register",
        "--agree-tos",
        "--email",
        CONTACT,
        "--no-eff-email",
        # `=`: a base64url key may start with "-", which argparse would take for an option
        f"--eab-kid={key['key_id']}",
        f"--eab-hmac-key={key['hmac_key']}",
    )
    assert "Account registered" in output, output
    result: dict[str, Any] = key
    return result


def test_registration_needs_an_eab_key_and_binds_it(
    stack: Stack, registered: dict[str, Any]
) -> None:
    refused = stack.certbot.run(
        "register",
        "--agree-tos",
        "--email",
        CONTACT,
        "--no-eff-email",
        profile="no-eab",
        check=False,
    )
    assert "external account" in refused.lower(), refused

    key = stack.api.get(f"{ENROLLMENT}/eab-keys/{registered['key_id']}").json()
    assert key["status"] == "bound"
    account = stack.api.get(f"{APP}/acme/accounts/{key['account_id']}").json()
    assert account["status"] == "valid"
    assert account["eab_key_id"] == registered["key_id"]
    assert account["contact"] == [f"mailto:{CONTACT}"]
    assert account["terms_agreed"] is True


def test_obtain_renew_and_revoke_with_http01(stack: Stack, registered: dict[str, Any]) -> None:
    certbot = stack.certbot
    names = ["web.certbot.test", "www.certbot.test"]
    certbot.run("certonly", *certbot.standalone(), "--cert-name", "web", *_domains(names))
    first_pem = (certbot.live("web") / "cert.pem").read_bytes()
    first = _in_inventory(stack, first_pem, names)
    _verifies(certbot.live("web"), stack.run.ca_file)
    _issued_event(stack.run.nats_url, first["id"])
    _synced(stack, first)

    certbot.run("renew", "--cert-name", "web", "--force-renewal", "--no-random-sleep-on-renew")
    second_pem = (certbot.live("web") / "cert.pem").read_bytes()
    assert second_pem != first_pem, "a new certificate"
    second = _in_inventory(stack, second_pem, names)
    assert second["id"] != first["id"]
    _verifies(certbot.live("web"), stack.run.ca_file)

    # By the account key (the account that ordered it), the earlier certificate...
    first_file = certbot.root / "first.pem"
    first_file.write_bytes(first_pem)
    certbot.run(
        "revoke",
        "--cert-path",
        str(first_file),
        "--reason",
        "superseded",
        "--no-delete-after-revoke",
    )
    # ...and by the certificate's own key, from a machine without any account.
    live = certbot.live("web")
    certbot.run(
        "revoke",
        "--cert-path",
        str(live / "cert.pem"),
        "--key-path",
        str(live / "privkey.pem"),
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
        profile="key-holder",
    )
    for certificate, reason in ((first, "superseded"), (second, "keyCompromise")):
        shown = stack.api.get(f"{APP}/certificates/{certificate['id']}").json()
        assert shown["status"] == "revoked", shown
        assert shown["revocation_reason"] == reason
    _ocsp_says_revoked(certbot.root, first_file, live / "chain.pem", stack.run.ca_file)
    _ocsp_says_revoked(certbot.root, live / "cert.pem", live / "chain.pem", stack.run.ca_file)
    _crl_lists(stack, live / "chain.pem", [first["serial_number"], second["serial_number"]])


def test_obtain_for_an_ip_address_with_http01(stack: Stack, registered: dict[str, Any]) -> None:
    """RFC 8738: certbot's --ip-address; the validator fetches the token from the address."""
    certbot = stack.certbot
    certbot.run("certonly", *certbot.standalone(), "--cert-name", "ip", "--ip-address", "127.0.0.1")
    pem = (certbot.live("ip") / "cert.pem").read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == []
    shown = _in_inventory(stack, pem, [])
    assert {"type": "ip", "value": "127.0.0.1"} in shown["sans"]
    _verifies(certbot.live("ip"), stack.run.ca_file)


# --- checks -------------------------------------------------------------------------------------


def _domains(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("-d", name)]


def _in_inventory(stack: Stack, pem: bytes, names: list[str]) -> dict[str, Any]:
    """The certificate as the application's inventory shows it: from the ACME profile, from a
    CSR (the client keeps its key), auto-renew off."""
    serial = format(x509.load_pem_x509_certificate(pem).serial_number, "x")
    listed = stack.api.get(f"{APP}/certificates", params={"limit": 200}).json()["items"]
    found = [c for c in listed if c["serial_number"] == serial]
    assert found, f"serial {serial} not in the inventory"
    certificate: dict[str, Any] = found[0]
    assert certificate["profile"] == "dev-tls"
    assert certificate["method"] == "csr"
    assert certificate["has_private_key"] is False
    assert certificate["auto_renew"] is False, "ACME clients renew their own certificates"
    assert certificate["status"] == "active"
    assert {s["value"] for s in certificate["sans"] if s["type"] == "dns"} == set(names)
    return certificate


def _verifies(live: Path, ca_file: Path) -> None:
    """openssl, with the development root as the only trust anchor and certbot's chain."""
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(ca_file),
            "-untrusted",
            str(live / "chain.pem"),
            str(live / "cert.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": OK" in done.stdout, done.stdout


def _issued_event(nats_url: str, certificate_id: str) -> None:
    """The `certificate.issued` CloudEvent on the events stream, as any subscriber sees it."""

    async def find() -> dict[str, Any]:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            subscription = await js.subscribe(
                "certforge.evt.demo.certificate.issued",
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = await subscription.next_msg(timeout=deadline - time.monotonic())
                event: dict[str, Any] = json.loads(message.data)
                if event["data"]["certificate_id"] == certificate_id:
                    return event
            raise AssertionError("no certificate.issued event for the certificate")
        finally:
            await connection.close()

    event = asyncio.run(find())
    assert event["type"] == "io.certforge.certificate.issued.v1"
    assert event["data"]["profile"] == "dev-tls"


def _synced(stack: Stack, certificate: dict[str, Any]) -> None:
    """The application's directory sync pushed it, as it pushes every issued certificate."""
    deadline = time.monotonic() + 30
    while True:
        states = stack.api.get(f"{APP}/syncs/{stack.sync_id}/certificates").json()["items"]
        mine = [s for s in states if s["certificate_id"] == certificate["id"]]
        if mine and mine[0]["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, f"not synced: {mine}"
        time.sleep(0.5)
    serials = {
        format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "x")
        for path in stack.sync_dir.rglob("cert.pem")
    }
    assert certificate["serial_number"] in serials, serials


def _ocsp_says_revoked(workdir: Path, cert: Path, chain: Path, ca_file: Path) -> None:
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    access = leaf.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    url = next(
        d.access_location.value
        for d in access
        if d.access_method == AuthorityInformationAccessOID.OCSP
    )
    issuer = workdir / "issuer.pem"
    issuer.write_text(
        chain.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    )
    done = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuer),
            "-cert",
            str(cert),
            "-CAfile",
            str(ca_file),
            "-url",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert "Response verify OK" in done.stdout + done.stderr, done.stdout + done.stderr
    assert f"{cert}: revoked" in done.stdout, done.stdout


def _crl_lists(stack: Stack, chain: Path, serials: list[str]) -> None:
    """The issuing CA's CRL (rebuilt by the issuer a moment after each revocation) lists both."""
    issuing = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    cas = stack.api.get("/api/v1/cas").json()
    rows = cas["items"] if isinstance(cas, dict) else cas
    ca_id = next(
        ca["id"]
        for ca in rows
        if x509.load_pem_x509_certificate(ca["certificate"].encode()) == issuing
    )
    deadline = time.monotonic() + 60
    while True:
        crl = x509.load_der_x509_crl(stack.api.get(f"/api/v1/cas/{ca_id}/crl").content)
        listed = {format(entry.serial_number, "x") for entry in crl}
        if set(serials) <= listed:
            assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
            return
        assert time.monotonic() < deadline, f"CRL lists {listed}, not all of {serials}"
        time.sleep(1)
