"""CA rollover and cross-signing in the issuer, the only holder of CA keys.

- Renewal: a new certificate for the same subject and the same key, signed by the same parent
  (or by itself for a root), stored as a new CA row whose `predecessor_id` is the old one.
  Certificates of either row verify under either certificate.
- Rekey: the same, with a new key. Certificates issued before verify only under the old
  certificate, which stays (with its CRLs and OCSP responder) until they expire.
- Cross-sign: the CA's subject and key signed by a second CA of ours; the certificate is stored
  beside the CA (`ca_cross_certificates`), so a relying party that trusts only the second root
  can build a path.

Each new certificate is checked to carry exactly its CA's subject, or nothing chains.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from cryptography import x509
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.ca_rollover import check_rollover, subject_fields_of
from certforge.common.ca_rules import ParentFacts, plan_ca
from certforge.common.contracts.routes import ca_urls
from certforge.common.contracts.rpc import CAReply, CrossSignCA, RolloverCA
from certforge.common.crypto.certificates import (
    build_intermediate_ca,
    build_self_signed_ca,
    certificate_to_pem,
    load_certificate_pem,
)
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import PrivateKey, generate_private_key
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import CACrossCertificate, CertificateAuthority
from certforge.common.domain import CAType, KeyAlgorithm
from certforge.common.errors import NotFound, Unprocessable
from certforge.common.name_constraints import NameConstraints
from certforge.issuer.ca_keys import seal, unseal
from certforge.issuer.cas import _refuse_duplicate_name, _row, _store
from certforge.issuer.revocation import RevocationSettings, upkeep_rows


@dataclass
class RolloverService:
    sessions: SessionFactory
    ca_keys: KeyRing
    leaf_keys: KeyRing
    base_url: str
    revocation: RevocationSettings
    """The new CA's first CRL and OCSP responder are stored with it, as for any new CA."""

    async def rollover(self, command: RolloverCA, now: datetime | None = None) -> CAReply:
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            if await session.get(CertificateAuthority, command.ca_id) is not None:
                return CAReply(ca_id=command.ca_id, created=False)
            old = await _ca(session, command.predecessor_id, "ca_id")
            check_rollover(old)
            await _refuse_duplicate_name(session, command.name)
            parent = (
                await _ca(session, old.parent_id, "parent_ca_id")
                if old.parent_id is not None
                else None
            )
            old_cert = load_certificate_pem(old.certificate_pem)
            constraints = _constraints(old)
            window = plan_ca(
                parent=ParentFacts.of(parent) if parent else None,
                validity=command.validity,
                max_path_length=old.max_path_length,
                not_before=None,
                signature_hash=command.signature_hash,
                now=now,
                name_constraints=constraints,
            )
            subject = subject_fields_of(old_cert.subject)
            key: PrivateKey
            if command.rekey:
                algorithm = command.key_algorithm or KeyAlgorithm(old.key_algorithm)
                key = await asyncio.to_thread(generate_private_key, algorithm)
            else:
                key = unseal(self.ca_keys, old)
            if parent is None:
                cert = build_self_signed_ca(
                    subject,
                    key,
                    window.not_before,
                    window.not_after,
                    window.max_path_length,
                    command.signature_hash,
                    name_constraints=constraints,
                )
                chain_pem = ""
            else:
                urls = ca_urls(self.base_url, parent.id)
                cert = build_intermediate_ca(
                    subject,
                    key.public_key(),
                    load_certificate_pem(parent.certificate_pem),
                    unseal(self.ca_keys, parent),
                    window.not_before,
                    window.not_after,
                    window.max_path_length,
                    command.signature_hash,
                    crl_url=urls.crl,
                    ocsp_url=urls.ocsp,
                    ca_issuers_url=urls.ca_issuers,
                    name_constraints=constraints,
                )
                chain_pem = parent.certificate_pem + parent.chain_pem
            _same_subject(cert, old_cert)
            ca = _row(command.ca_id, command.name, CAType(old.type), parent, cert, key, chain_pem)
            ca.name_constraints = old.name_constraints
            ca.chain_name_constraints = old.chain_name_constraints
            ca.predecessor_id = old.id
            ca.takes_over_at = command.takes_over_at
            ca.encrypted_private_key, ca.key_kek_id = seal(self.ca_keys, ca.id, key)
            await _store(session, ca, upkeep_rows(ca, key, self.leaf_keys, self.revocation, now))
        return CAReply(ca_id=command.ca_id, created=True)

    async def cross_sign(self, command: CrossSignCA, now: datetime | None = None) -> CAReply:
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            if await session.get(CACrossCertificate, command.cross_id) is not None:
                return CAReply(ca_id=command.ca_id, created=False)
            ca = await _ca(session, command.ca_id, "ca_id")
            signer = await _ca(session, command.signer_ca_id, "signer_ca_id")
            await _refuse_signer(session, ca, signer)
            ca_cert = load_certificate_pem(ca.certificate_pem)
            signer_cert = load_certificate_pem(signer.certificate_pem)
            constraints = _constraints(ca)
            until = min(ca.not_after, signer.not_after)
            if command.validity is not None:
                until = min(until, now + command.validity)
            window = plan_ca(
                parent=ParentFacts.of(signer),
                validity=until - now,
                max_path_length=ca.max_path_length,
                not_before=now,
                signature_hash=None,
                now=now,
                name_constraints=constraints,
            )
            urls = ca_urls(self.base_url, signer.id)
            cert = build_intermediate_ca(
                subject_fields_of(ca_cert.subject),
                ca_cert.public_key(),  # type: ignore[arg-type]
                signer_cert,
                unseal(self.ca_keys, signer),
                window.not_before,
                window.not_after,
                window.max_path_length,
                None,
                crl_url=urls.crl,
                ocsp_url=urls.ocsp,
                ca_issuers_url=urls.ca_issuers,
                name_constraints=constraints,
            )
            _same_subject(cert, ca_cert)
            session.add(
                CACrossCertificate(
                    id=command.cross_id,
                    ca_id=ca.id,
                    signer_ca_id=signer.id,
                    serial_number=format(cert.serial_number, "x"),
                    not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc,
                    certificate_pem=certificate_to_pem(cert),
                    chain_pem=signer.certificate_pem + signer.chain_pem,
                )
            )
            await session.commit()
        return CAReply(ca_id=command.ca_id, created=True)


async def _ca(session: AsyncSession, ca_id: UUID | None, field: str) -> CertificateAuthority:
    ca = await session.get(CertificateAuthority, ca_id) if ca_id is not None else None
    if ca is None:
        raise NotFound.on_field(field, f"no CA {ca_id}")
    return ca


async def _refuse_signer(
    session: AsyncSession, ca: CertificateAuthority, signer: CertificateAuthority
) -> None:
    """A second signer: not the CA itself, not its own issuer, not a CA below it (a loop)."""
    if signer.id == ca.id:
        raise Unprocessable.on_field("signer_ca_id", "a CA does not cross-sign itself")
    if signer.id == ca.parent_id:
        raise Unprocessable.on_field("signer_ca_id", "is this CA's issuer already")
    above: CertificateAuthority | None = signer
    while above is not None:
        if above.parent_id == ca.id:
            raise Unprocessable.on_field("signer_ca_id", "is below this CA: the paths would loop")
        above = (
            await session.get(CertificateAuthority, above.parent_id)
            if above.parent_id is not None
            else None
        )


def _constraints(ca: CertificateAuthority) -> NameConstraints | None:
    return NameConstraints.model_validate(ca.name_constraints) if ca.name_constraints else None


def _same_subject(cert: x509.Certificate, original: x509.Certificate) -> None:
    if cert.subject != original.subject:
        raise Unprocessable.on_field("ca_id", "the CA's subject cannot be reproduced exactly")
