"""Creating and importing CAs: the issuer generates or receives the key, signs, encrypts the key
and stores the CA, in that order. The api asks over request/reply; see `handlers`.

Idempotent by CA id: a retried request for a CA that exists answers `created=False`. The CA's
first CRL and OCSP responder are stored with it (`revocation.upkeep_rows`): a relying party can
check a certificate of the new CA from the moment the creation call returns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography import x509
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.ca_rules import ParentFacts, plan_ca
from certforge.common.contracts.routes import ca_urls
from certforge.common.contracts.rpc import CAReply, CreateCA, ImportCA
from certforge.common.crypto.certificates import (
    build_intermediate_ca,
    build_self_signed_ca,
    certificate_to_pem,
    key_identifier_of,
    load_certificate_chain_pem,
    load_certificate_pem,
    same_public_key,
    verify_issued_by,
)
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import (
    PrivateKey,
    generate_private_key,
    key_algorithm_of,
    load_private_key_pem,
)
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import CertificateAuthority, Crl, OcspResponder
from certforge.common.domain import CAStatus, CAType, SignatureHash
from certforge.common.errors import Conflict, NotFound, Unprocessable
from certforge.common.name_constraints import NameConstraints
from certforge.issuer.ca_keys import seal, unseal
from certforge.issuer.revocation import RevocationSettings, upkeep_rows

_HASH_NAMES = {h.value.lower(): h for h in SignatureHash}


@dataclass
class CAService:
    sessions: SessionFactory
    ca_keys: KeyRing
    leaf_keys: KeyRing
    """Encrypts the new CA's OCSP responder key (the api decrypts it to sign answers)."""
    base_url: str
    revocation: RevocationSettings

    async def create(self, command: CreateCA, now: datetime | None = None) -> CAReply:
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            if await session.get(CertificateAuthority, command.ca_id) is not None:
                return CAReply(ca_id=command.ca_id, created=False)
            await _refuse_duplicate_name(session, command.name)
            parent = None
            if command.type is CAType.INTERMEDIATE:
                if command.parent_ca_id is None:
                    raise Unprocessable.on_field("parent_ca_id", "required for an intermediate")
                parent = await session.get(CertificateAuthority, command.parent_ca_id)
                if parent is None:
                    raise NotFound.on_field("parent_ca_id", f"no CA {command.parent_ca_id}")
            window = plan_ca(
                parent=ParentFacts.of(parent) if parent else None,
                validity=command.validity,
                max_path_length=command.max_path_length,
                not_before=command.not_before,
                signature_hash=command.signature_hash,
                now=now,
                name_constraints=command.name_constraints,
            )
            # Key generation takes up to seconds for RSA-4096: keep the event loop free.
            key = await asyncio.to_thread(generate_private_key, command.key_algorithm)
            if parent is None:
                cert = build_self_signed_ca(
                    command.subject,
                    key,
                    window.not_before,
                    window.not_after,
                    window.max_path_length,
                    command.signature_hash,
                    name_constraints=command.name_constraints,
                )
                chain_pem = ""
            else:
                parent_cert = load_certificate_pem(parent.certificate_pem)
                urls = ca_urls(self.base_url, parent.id)
                cert = build_intermediate_ca(
                    command.subject,
                    key.public_key(),
                    parent_cert,
                    unseal(self.ca_keys, parent),
                    window.not_before,
                    window.not_after,
                    window.max_path_length,
                    command.signature_hash,
                    crl_url=urls.crl,
                    ocsp_url=urls.ocsp,
                    ca_issuers_url=urls.ca_issuers,
                    name_constraints=command.name_constraints,
                )
                chain_pem = parent.certificate_pem + parent.chain_pem
            ca = _row(command.ca_id, command.name, command.type, parent, cert, key, chain_pem)
            ca.name_constraints = _dumped(command.name_constraints)
            if parent is not None:
                ca.chain_name_constraints = [
                    c.model_dump(mode="json") for c in ParentFacts.of(parent).name_constraints
                ]
            ca.encrypted_private_key, ca.key_kek_id = seal(self.ca_keys, ca.id, key)
            await _store(session, ca, upkeep_rows(ca, key, self.leaf_keys, self.revocation, now))
        return CAReply(ca_id=command.ca_id, created=True)

    async def import_external(self, command: ImportCA, now: datetime | None = None) -> CAReply:
        now = now or datetime.now(UTC)
        cert = load_certificate_pem(command.certificate_pem, field="certificate")
        key = load_private_key_pem(command.private_key_pem.get_secret_value(), field="private_key")
        chain = (
            load_certificate_chain_pem(command.chain_pem, field="chain")
            if command.chain_pem.strip()
            else []
        )
        _check_importable(cert, key, chain, now)
        own = NameConstraints.of_certificate(cert, field="certificate")
        above = [
            c
            for c in (NameConstraints.of_certificate(c, field="chain") for c in chain)
            if c is not None
        ]
        async with self.sessions() as session:
            if await session.get(CertificateAuthority, command.ca_id) is not None:
                return CAReply(ca_id=command.ca_id, created=False)
            await _refuse_duplicate_name(session, command.name)
            chain_pem = "".join(certificate_to_pem(c) for c in chain)
            ca = _row(command.ca_id, command.name, CAType.EXTERNAL, None, cert, key, chain_pem)
            ca.name_constraints = _dumped(own)
            ca.chain_name_constraints = [c.model_dump(mode="json") for c in above]
            ca.encrypted_private_key, ca.key_kek_id = seal(self.ca_keys, ca.id, key)
            await _store(session, ca, upkeep_rows(ca, key, self.leaf_keys, self.revocation, now))
        return CAReply(ca_id=command.ca_id, created=True)


async def _refuse_duplicate_name(session: AsyncSession, name: str) -> None:
    query = select(CertificateAuthority).where(CertificateAuthority.name == name)
    if (await session.exec(query)).first() is not None:
        raise Conflict.on_field("name", f"a CA named {name!r} exists")


async def _store(
    session: AsyncSession, ca: CertificateAuthority, upkeep: tuple[Crl, OcspResponder]
) -> None:
    session.add(ca)
    session.add_all(upkeep)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict.on_field("name", f"a CA named {ca.name!r} exists") from exc


def _dumped(constraints: NameConstraints | None) -> dict[str, Any] | None:
    return constraints.model_dump(mode="json") if constraints is not None else None


def _signature_hash(cert: x509.Certificate) -> SignatureHash | None:
    algorithm = cert.signature_hash_algorithm
    return _HASH_NAMES.get(algorithm.name) if algorithm is not None else None


def _row(
    ca_id: UUID,
    name: str,
    ca_type: CAType,
    parent: CertificateAuthority | None,
    cert: x509.Certificate,
    key: PrivateKey,
    chain_pem: str,
) -> CertificateAuthority:
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    return CertificateAuthority(
        id=ca_id,
        name=name,
        type=ca_type.value,
        status=CAStatus.ACTIVE.value,
        parent_id=parent.id if parent else None,
        subject_dn=cert.subject.rfc4514_string(),
        key_algorithm=key_algorithm_of(key).value,
        signature_hash=(h.value if (h := _signature_hash(cert)) else None),
        max_path_length=constraints.path_length,
        serial_number=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        certificate_pem=certificate_to_pem(cert),
        chain_pem=chain_pem,
        subject_key_id=key_identifier_of(cert).hex(),
        encrypted_private_key=b"",
        key_kek_id="",
    )


def _check_importable(
    cert: x509.Certificate, key: PrivateKey, chain: list[x509.Certificate], now: datetime
) -> None:
    """An importable CA: a CA certificate, unexpired, matching its key, chained if not a root."""
    key_algorithm_of(cert.public_key(), field="certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise Unprocessable.on_field("certificate", "not a CA certificate (basicConstraints CA)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise Unprocessable.on_field("certificate", "its key usage does not allow keyCertSign")
    except x509.ExtensionNotFound:
        pass
    if cert.not_valid_after_utc <= now:
        raise Unprocessable.on_field("certificate", "the CA certificate has expired")
    if not same_public_key(cert.public_key(), key.public_key()):
        raise Unprocessable.on_field("private_key", "does not match the certificate's public key")
    self_signed = cert.issuer == cert.subject and verify_issued_by(cert, cert)
    if self_signed and chain:
        raise Unprocessable.on_field("chain", "a self-signed CA takes no chain")
    if not self_signed and not chain:
        raise Unprocessable.on_field("chain", "give the issuers above this CA, nearest first")
    for child, issuer in zip([cert, *chain], chain, strict=False):
        if not verify_issued_by(child, issuer):
            raise Unprocessable.on_field("chain", "the chain does not link up (nearest first)")
