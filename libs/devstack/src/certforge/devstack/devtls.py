"""HTTPS for `make run`: a server certificate for the api, issued by Certforge's own development
CA through its own REST API.

ACME clients (certbot, cert-manager, lego) expect an https directory, so `make run` serves the
api a second time over TLS. The certificate comes from the `demo` application's API enrollment
like any other managed certificate (so it is in the inventory and the audit log), for
`127.0.0.1`, `::1` and `certforge.localhost` (not `localhost` itself: a single-label name is not
a valid host name in a certificate, and the pre-issuance lint refuses it); its files live under
`<state>/tls/`:

- `server.pem`: the certificate and its issuing CA (what the server presents),
- `server.key`: its private key, mode 0600,
- `ca.pem`: the development root CA, the one file a client must trust
  (`REQUESTS_CA_BUNDLE` for certbot, `curl --cacert`, cert-manager's `caBundle`).

A later run reuses the files while the certificate stays valid for more than a day, still
matches its key and still chains to the current development CA; otherwise it issues a new one.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from certforge.devstack.client import Api, Pause, detail
from certforge.devstack.errors import DevStackError
from certforge.devstack.seed import APPLICATION, PROFILE, DevPki

__all__ = [
    "DNS_NAMES",
    "IP_ADDRESSES",
    "REUSE_MARGIN",
    "TlsFiles",
    "ensure_server_certificate",
    "tls_files",
]

DNS_NAMES = ("certforge.localhost",)
IP_ADDRESSES = ("127.0.0.1", "::1")
REUSE_MARGIN = timedelta(days=1)
"""A certificate with less validity left than this is replaced at start-up."""
ISSUE_TIMEOUT = 90.0


@dataclass(frozen=True)
class TlsFiles:
    """Where the server certificate, its key and the CA a client trusts are written."""

    directory: Path

    @property
    def certificate(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key(self) -> Path:
        return self.directory / "server.key"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the development root only (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca))


def tls_files(state_dir: Path) -> TlsFiles:
    directory = state_dir / "tls"
    directory.mkdir(mode=0o700, exist_ok=True)
    return TlsFiles(directory)


def ensure_server_certificate(
    api: Api, pki: DevPki, files: TlsFiles, now: datetime, pause: Pause
) -> bool:
    """Make `files` hold a usable server certificate; True when a new one was issued.

    The CA file is rewritten every time from the API's current root, so it is right even when
    the server certificate is reused.
    """
    _write_atomically(files.ca, pki.root_pem.encode(), 0o644)
    if _reusable(files, pki, now):
        return False
    issued = _issue(api, pause)
    chain = [pem for pem in _split_pems(issued["chain"]) if not _self_signed(pem)]
    certificate = "".join([_ensure_newline(issued["certificate"]), *chain])
    # The key first: a crash between the two writes leaves a pair that does not match, which
    # the next run's check refuses and replaces, never a new certificate with an old key.
    _write_atomically(files.key, issued["private_key"].encode(), 0o600)
    _write_atomically(files.certificate, certificate.encode(), 0o644)
    # The file is what the server presents; a renewal by the renewer would not reach it.
    api.expect(
        200,
        "PATCH",
        f"/api/v1/applications/{APPLICATION}/certificates/{issued['id']}",
        {"auto_renew": False},
    )
    return True


def _reusable(files: TlsFiles, pki: DevPki, now: datetime) -> bool:
    """Whether the files on disk are a matching pair, valid for more than REUSE_MARGIN, for
    every name the server answers to, and signed by the current development issuing CA."""
    try:
        certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        issuing = x509.load_pem_x509_certificate(pki.issuing_pem.encode())
        certificate.verify_directly_issued_by(issuing)
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    names = set(sans.get_values_for_type(x509.DNSName))
    addresses = {str(address) for address in sans.get_values_for_type(x509.IPAddress)}
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    same_key = key.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) == certificate.public_key().public_bytes(serialization.Encoding.DER, public)
    return (
        same_key
        and set(DNS_NAMES) <= names
        and set(IP_ADDRESSES) <= addresses
        and certificate.not_valid_after_utc - now > REUSE_MARGIN
    )


def _issue(api: Api, pause: Pause) -> dict[str, Any]:
    """A managed certificate from the demo application, waiting for the issuer if it is still
    starting (the request waits in JetStream meanwhile)."""
    body = {
        "profile": PROFILE,
        "method": "managed",
        "common_name": DNS_NAMES[0],
        "sans": [{"type": "dns", "value": name} for name in DNS_NAMES]
        + [{"type": "ip", "value": str(ipaddress.ip_address(ip))} for ip in IP_ADDRESSES],
        "metadata": {"purpose": "make-run-https"},
    }
    path = f"/api/v1/applications/{APPLICATION}/certificate-requests"
    status, answer = api.call("POST", path, body, headers={"Prefer": "wait=10"})
    if status not in (201, 202):
        raise DevStackError(
            f"the HTTPS server certificate was refused ({status}): {detail(answer)}"
        )
    polled = 0.0
    while answer.get("status") == "pending":
        if polled > ISSUE_TIMEOUT:
            raise DevStackError(
                f"the HTTPS server certificate was not issued within {ISSUE_TIMEOUT:.0f} s "
                "(is the issuer running? see its output above)"
            )
        pause(0.5)
        polled += 0.5
        answer = api.expect(200, "GET", f"{path}/{answer['id']}")
    certificate = answer.get("certificate")
    if answer.get("status") != "issued" or not certificate or not certificate.get("private_key"):
        raise DevStackError(
            f"the HTTPS server certificate request ended {answer.get('status')}: "
            f"{answer.get('error')}"
        )
    result: dict[str, Any] = certificate
    return result


def _split_pems(text: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [part.strip() + f"\n{marker}\n" for part in text.split(marker) if part.strip()]


def _self_signed(pem: str) -> bool:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return certificate.subject == certificate.issuer


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode` from the start, then rename: a reader
    (the api starting, a client reading the CA) never sees half a file, and a key is never
    world-readable even for a moment."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
