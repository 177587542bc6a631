"""The CRL a replica serves: the newest one the issuer stored, kept in memory after the first read.

A remembered CRL is served without any query; at most every `recheck_seconds` one small query
(the newest CRL number of that CA) confirms it is still the newest, and only a newer number
loads the new bytes. The issuer coalesces revocations into CRLs anyway (`issuer/revocation.py`),
so this adds at most `recheck_seconds` to the time a revocation takes to reach the CRL.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from sqlmodel import col, select

from certforge.api.revocation_memory import CrlMemory, ServedCrl, etag_of
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import CertificateAuthority, Crl
from certforge.common.errors import NotFound, Unavailable

CLAIM_SECONDS = 5.0
"""How long one request's claim to re-check a CRL holds off the others."""


def remembered(
    memory: CrlMemory, ca_id: UUID, now: float, recheck_seconds: float
) -> ServedCrl | None:
    """The CRL to serve without I/O: the remembered one, unless it is due for a re-check and
    no other request has claimed that (then `None`: this request re-checks, through `current`)."""
    served = memory.crls.get(ca_id)
    if served is None or now - served.checked_at < recheck_seconds:
        return served
    claimed = served.recheck_claimed_at
    if claimed is not None and now - claimed < CLAIM_SECONDS:
        return served
    served.recheck_claimed_at = now
    return None


async def current(
    sessions: SessionFactory,
    memory: CrlMemory,
    ca_id: UUID,
    clock: Callable[[], float],
    recheck_seconds: float,
) -> ServedCrl:
    """The newest CRL of `ca_id`; NotFound for no such CA, Unavailable when it has none yet."""
    served = memory.crls.get(ca_id)
    if served is not None and clock() - served.checked_at < recheck_seconds:
        return served
    async with sessions() as session:
        served = memory.crls.get(ca_id)
        newest_number = (
            select(Crl.number).where(Crl.ca_id == ca_id).order_by(col(Crl.number).desc()).limit(1)
        )
        newest = (await session.exec(newest_number)).first()
        if served is not None and newest == served.number:
            served.checked_at = clock()
            served.recheck_claimed_at = None
            return served
        crl = None
        if newest is not None:
            crl = (
                await session.exec(select(Crl).where(Crl.ca_id == ca_id, Crl.number == newest))
            ).first()
        if crl is None:
            if await session.get(CertificateAuthority, ca_id) is None:
                raise NotFound.on_field("ca_id", f"no CA with id {ca_id}")
            # Only a CA made before CRLs were signed at creation: the issuer signs it shortly.
            raise Unavailable("the first CRL of this CA is being signed; retry in a few seconds")
    served = ServedCrl(
        number=crl.number,
        der=crl.der,
        this_update=crl.this_update,
        next_update=crl.next_update,
        etag=etag_of(crl.der),
        checked_at=clock(),
    )
    memory.crls[ca_id] = served
    return served
