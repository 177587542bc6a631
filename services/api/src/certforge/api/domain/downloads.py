"""Certificate downloads in binary forms: DER, and PKCS#12 with the managed key (audited)."""

from __future__ import annotations

from uuid import UUID

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.api.audit import AuditScope
from certforge.api.auth import Actor
from certforge.api.context import ApiContext
from certforge.api.domain.certificates import chain_pem, get
from certforge.api.domain.common import OPERATE_ROLES
from certforge.api.schemas.inventory import Pkcs12Create
from certforge.common.crypto.certificates import (
    certificate_to_der,
    load_certificate_chain_pem,
    load_certificate_pem,
)
from certforge.common.crypto.keys import load_stored_private_key
from certforge.common.errors import Unprocessable


async def der(session: AsyncSession, actor: Actor, app_ref: str, certificate_id: UUID) -> bytes:
    certificate, _, _ = await get(session, actor, app_ref, certificate_id)
    return certificate_to_der(load_certificate_pem(certificate.certificate_pem))


async def pkcs12_bundle(
    session: AsyncSession,
    context: ApiContext,
    audit: AuditScope,
    app_ref: str,
    certificate_id: UUID,
    body: Pkcs12Create,
) -> tuple[str, bytes]:
    """`(file name, PKCS#12 bytes)`: the certificate, its managed key and (optionally) chain.

    Operators and admins only, like the PEM key; the read is audited in the same transaction.
    """
    certificate, _, _ = await get(session, audit.actor, app_ref, certificate_id, OPERATE_ROLES)
    if certificate.encrypted_private_key is None:
        raise Unprocessable.on_field(
            "certificate_id", "this certificate's key was never held by Certforge (CSR method)"
        )
    key = load_stored_private_key(
        context.leaf_keys.decrypt(certificate.encrypted_private_key, certificate.id.bytes)
    )
    cas = (
        load_certificate_chain_pem(await chain_pem(context.db, certificate.ca_id))
        if (body.include_chain)
        else None
    )
    name = (certificate.common_name or certificate.serial_number).encode()
    data = pkcs12.serialize_key_and_certificates(
        name,
        key,
        load_certificate_pem(certificate.certificate_pem),
        cas,
        BestAvailableEncryption(body.password.get_secret_value().encode()),
    )
    audit.record(
        session,
        resource_type="certificate",
        resource_id=certificate.id,
        application_id=certificate.application_id,
        details={
            "private_key": "read",
            "format": "pkcs12",
            "serial_number": certificate.serial_number,
        },
    )
    await session.commit()
    return f"{certificate.serial_number}.p12", data
