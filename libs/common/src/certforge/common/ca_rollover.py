"""CA rollover and trust bundles: the rules the api, the issuer, the renewer and the syncer
share. A rolled-over CA is a new CA row (`predecessor_id` names the old one) that overlaps the old
one; profiles move to it when the admin says (`take_over`), and the old one keeps its CRLs and
OCSP until its last certificate expires.

The trust bundle of a CA is what a relying party should trust to accept its certificates during
a rollover or a cross-signing: the roots above it, the roots of every CA it rolls over from or
to (still valid), and the roots above every CA that cross-signed it or them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.crypto.certificates import certificate_to_pem, load_certificate_chain_pem
from certforge.common.db.tables import CACrossCertificate, CertificateAuthority, Profile
from certforge.common.domain import CAStatus, CAType, SubjectFields
from certforge.common.errors import Conflict, Unprocessable

_SUBJECT_FIELDS = {
    NameOID.COMMON_NAME: "common_name",
    NameOID.ORGANIZATION_NAME: "organization",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizational_unit",
    NameOID.COUNTRY_NAME: "country",
    NameOID.STATE_OR_PROVINCE_NAME: "state",
    NameOID.LOCALITY_NAME: "locality",
}


def subject_fields_of(name: x509.Name, field: str = "ca_id") -> SubjectFields:
    """The `SubjectFields` that build `name` again, or a 422 naming `field` when the name holds
    attributes Certforge does not write (an imported CA's, say): a renewed or cross-signed CA
    certificate must carry exactly the same subject, or paths no longer chain."""
    values: dict[str, str] = {}
    for attribute in name:
        key = _SUBJECT_FIELDS.get(attribute.oid)
        if key is None or key in values or not isinstance(attribute.value, str):
            raise Unprocessable.on_field(
                field, f"its subject {name.rfc4514_string()!r} cannot be reproduced exactly"
            )
        values[key] = attribute.value
    return SubjectFields.model_validate(values)


def check_rollover(ca: CertificateAuthority) -> None:
    """A CA that can be renewed or rekeyed here: ours (a root, or signed by a CA whose key we
    hold). An imported CA's issuer is elsewhere."""
    if ca.type == CAType.EXTERNAL.value:
        raise Unprocessable.on_field(
            "ca_id", "an imported CA is renewed by its own issuer; import the new certificate"
        )


def check_take_over(successor: CertificateAuthority, at: datetime, now: datetime) -> None:
    """Whether `successor` may take over its predecessor's profiles at `at` (asked at `now`)."""
    if successor.predecessor_id is None:
        raise Unprocessable.on_field("ca_id", "this CA succeeds no other CA")
    if successor.took_over_at is not None:
        raise Conflict.on_field(
            "ca_id", f"this CA took over already, at {successor.took_over_at.isoformat()}"
        )
    if successor.status != CAStatus.ACTIVE.value:
        raise Unprocessable.on_field("ca_id", "this CA is disabled: enable it first")
    if at >= successor.not_after:
        raise Unprocessable.on_field("at", "is after this CA expires")
    if max(at, now) < successor.not_before:
        raise Unprocessable.on_field("at", "is before this CA's validity starts")


async def take_over(session: AsyncSession, successor: CertificateAuthority, now: datetime) -> int:
    """Move every profile of the predecessor to `successor` (in the caller's transaction);
    return how many moved. New and renewed certificates of those profiles come from the
    successor from the commit on; the predecessor's certificates stay valid and checked."""
    moved = await session.exec(
        update(Profile)
        .where(col(Profile.ca_id) == successor.predecessor_id)
        .values(ca_id=successor.id, updated_at=now)
    )
    successor.took_over_at = now
    successor.updated_at = now
    session.add(successor)
    return int(moved.rowcount)


# --- trust bundles ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCA:
    """What the bundle needs of a CA row."""

    id: UUID
    type: str
    parent_id: UUID | None
    predecessor_id: UUID | None
    not_after: datetime
    certificate_pem: str
    chain_pem: str

    @classmethod
    def of(cls, ca: CertificateAuthority) -> BundleCA:
        return cls(
            ca.id,
            ca.type,
            ca.parent_id,
            ca.predecessor_id,
            ca.not_after,
            ca.certificate_pem,
            ca.chain_pem,
        )


@dataclass(frozen=True)
class BundleCross:
    ca_id: UUID
    signer_ca_id: UUID
    not_after: datetime

    @classmethod
    def of(cls, cross: CACrossCertificate) -> BundleCross:
        return cls(cross.ca_id, cross.signer_ca_id, cross.not_after)


def trust_bundle(
    ca_id: UUID, cas: Mapping[UUID, BundleCA], crosses: Iterable[BundleCross], now: datetime
) -> list[str]:
    """The root certificates (PEM) a relying party needs for `ca_id`'s certificates, oldest
    link first: the CA's own roots, then those reached through rollovers and cross-signings.
    Expired CAs (other than `ca_id` itself) and expired cross-certificates add nothing."""
    successors: dict[UUID, list[UUID]] = {}
    for other in cas.values():
        if other.predecessor_id is not None:
            successors.setdefault(other.predecessor_id, []).append(other.id)
    signers: dict[UUID, list[UUID]] = {}
    for cross in crosses:
        if cross.not_after > now:
            signers.setdefault(cross.ca_id, []).append(cross.signer_ca_id)
    anchors: dict[str, None] = {}
    seen: set[UUID] = set()
    queue = [ca_id]
    while queue:
        current = queue.pop(0)
        ca = cas.get(current)
        if current in seen or ca is None or (ca.not_after <= now and current != ca_id):
            continue
        seen.add(current)
        if ca.parent_id is not None:
            queue.append(ca.parent_id)
        else:
            anchors.setdefault(_anchor_of(ca), None)
        if ca.predecessor_id is not None:
            queue.append(ca.predecessor_id)
        queue += successors.get(current, [])
        queue += signers.get(current, [])
    return list(anchors)


def _anchor_of(ca: BundleCA) -> str:
    """A root's own certificate; for an imported CA, the top of the chain it came with."""
    if ca.type == CAType.EXTERNAL.value and ca.chain_pem.strip():
        return certificate_to_pem(load_certificate_chain_pem(ca.chain_pem)[-1])
    return ca.certificate_pem
