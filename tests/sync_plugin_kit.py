"""Real certificates and `SyncItem`s for the destination plugin tests (`test_sync_plugin_*`).

A root and an issuing CA are built once per process; every `sync_item` call issues a fresh
EC P-256 leaf under them, so a "renewal" is simply a second call with the same lineage id.
Also: free ports, and a TCP server that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509

from certforge.common.crypto.certificates import (
    build_certificate,
    build_intermediate_ca,
    build_self_signed_ca,
    certificate_to_pem,
    key_identifier_of,
    new_serial,
)
from certforge.common.crypto.keys import PrivateKey, generate_private_key, private_key_to_pkcs8_pem
from certforge.common.domain import ExtendedKeyUsage, KeyAlgorithm, KeyUsage, SanType, SubjectFields
from certforge.common.template import CertificateTemplate, San
from certforge.syncer.plugins.base import SyncItem


@dataclass(frozen=True)
class SyncCA:
    root: x509.Certificate
    root_key: PrivateKey
    issuing: x509.Certificate
    issuing_key: PrivateKey

    @property
    def root_pem(self) -> str:
        return certificate_to_pem(self.root)

    @property
    def issuing_pem(self) -> str:
        return certificate_to_pem(self.issuing)


@cache
def sync_ca() -> SyncCA:
    now = datetime.now(UTC)
    root_key = generate_private_key(KeyAlgorithm.EC_P256)
    root = build_self_signed_ca(
        SubjectFields(common_name="Sync Test Root"),
        root_key,
        now - timedelta(hours=1),
        now + timedelta(days=3650),
        1,
        None,
    )
    issuing_key = generate_private_key(KeyAlgorithm.EC_P256)
    issuing = build_intermediate_ca(
        SubjectFields(common_name="Sync Test Issuing CA"),
        issuing_key.public_key(),
        root,
        root_key,
        now - timedelta(hours=1),
        now + timedelta(days=365),
        0,
        None,
    )
    return SyncCA(root, root_key, issuing, issuing_key)


def server_certificate(*ips: str) -> tuple[str, str]:
    """A TLS server certificate (PEM, key PEM) for 127.0.0.1 etc., issued by `sync_ca()`."""
    return _leaf("localhost", ips or ("127.0.0.1",))


def _leaf(common_name: str, ips: tuple[str, ...] = ()) -> tuple[str, str]:
    ca = sync_ca()
    now = datetime.now(UTC)
    key = generate_private_key(KeyAlgorithm.EC_P256)
    sans = [San(type=SanType.DNS, value=f"leaf-{uuid.uuid4().hex[:8]}.example.com")]
    sans += [San(type=SanType.IP, value=ip) for ip in ips]
    template = CertificateTemplate(
        subject=SubjectFields(common_name=common_name),
        sans=sans,
        key_algorithm=KeyAlgorithm.EC_P256,
        key_usages=[KeyUsage.DIGITAL_SIGNATURE],
        extended_key_usages=[ExtendedKeyUsage.SERVER_AUTH],
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=30),
    )
    cert = build_certificate(
        template,
        key.public_key(),
        ca.issuing.subject,
        ca.issuing_key,
        key_identifier_of(ca.issuing),
        new_serial(),
    )
    return certificate_to_pem(cert), private_key_to_pkcs8_pem(key)


def sync_item(
    name: str,
    *,
    lineage_id: uuid.UUID | None = None,
    with_key: bool = True,
    include_root: bool = True,
    include_chain: bool = True,
    external_id: str | None = None,
) -> SyncItem:
    """A freshly issued leaf as the syncer would hand it to a destination."""
    ca = sync_ca()
    cert_pem, key_pem = _leaf(name[:64] or "leaf")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    chain = ""
    if include_chain:
        chain = ca.issuing_pem + (ca.root_pem if include_root else "")
    certificate_id = uuid.uuid4()
    return SyncItem(
        name=name,
        lineage_id=lineage_id or certificate_id,
        certificate_id=certificate_id,
        application="sync-tests",
        profile="tls-server",
        common_name=name,
        serial_number=format(cert.serial_number, "x"),
        not_after=cert.not_valid_after_utc,
        certificate_pem=cert_pem,
        chain_pem=chain,
        private_key_pem=key_pem if with_key else None,
        metadata={"team": "sync"},
        external_id=external_id,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (bound and released: connecting is refused at once)."""
    return free_port()


@dataclass
class SilentServer:
    """Accepts TCP connections, reads whatever comes, and never answers."""

    port: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> SilentServer:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)
            while await reader.read(65536):
                pass

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
