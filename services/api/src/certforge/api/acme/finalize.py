"""Finalize (RFC 8555 §7.4): the CSR checked against the order, then the same request path as
API enrollment by CSR.

The order moves `ready → processing` (guarded: its row is claimed `FOR UPDATE` only while
still ready) in the transaction that writes the
`csr` certificate request, its IssueCertificate command (outbox) and the audit entry, so a
finalize is processed once whatever the retries and races: the loser of a race finds the
order no longer ready (orderNotReady). Policy, lint, events, syncs, audit and inventory then
apply exactly as to an API request; the order follows the request (`orders.settle`).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any
from uuid import uuid4

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from certforge.api.acme import audit, jws, orders
from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import AcmeProblem, malformed
from certforge.api.acme.identifiers import Identifier, normalise
from certforge.api.acme.signed import Signed
from certforge.api.audit import ENTRY_COLUMNS
from certforge.api.context import ApiContext
from certforge.api.domain.requests import SUBMIT_SQL, checked_template, csr_params
from certforge.common.acme import ErrorType, IdentifierType, Status, b64url_decode
from certforge.common.contracts.commands import IssueCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.crypto.csr import ParsedCsr, csr_to_pem, parse_csr_der
from certforge.common.crypto.keys import as_supported_public_key
from certforge.common.db.columns import columns, values
from certforge.common.db.pool import Row
from certforge.common.db.tables import CertificateRequest
from certforge.common.domain import RequestKind, SanType
from certforge.common.errors import CertforgeError
from certforge.common.outbox import MESSAGE_COLUMNS, message_row
from certforge.common.request_rows import new_request_row

SOURCE = "/certforge/api"
_REQUEST_COLUMNS = columns(CertificateRequest)
_CLAIM_SQL = """
SELECT id FROM acme_orders WHERE id = $1 AND status = 'ready' AND expires_at > $2 FOR UPDATE
"""
_PROCESS_SQL = """
UPDATE acme_orders SET status = 'processing', request_id = $2, updated_at = $3 WHERE id = $1
"""


def bad_csr(detail: str) -> AcmeProblem:
    return AcmeProblem(ErrorType.BAD_CSR, detail)


def check_csr(
    der: bytes, order_identifiers: list[Identifier], account_key: jws.PublicKey
) -> ParsedCsr:
    """The CSR verifies, its key is acceptable and is not the account's, and it names exactly
    the order's identifiers (a CN, if any, must be one of them)."""
    try:
        request = x509.load_der_x509_csr(der)
        raw_key = request.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        raise bad_csr("the CSR is not a DER PKCS#10 request") from None
    try:
        # badCSR, not badPublicKey: RFC 8555 defines the latter for the keys that sign JWS.
        as_supported_public_key(raw_key, field="csr")
    except CertforgeError as exc:
        raise bad_csr(f"the CSR's key is refused: {_plain(exc)}") from None
    try:
        parsed = parse_csr_der(der)
    except CertforgeError as exc:
        raise bad_csr(_plain(exc)) from None
    if _spki(parsed.public_key) == _spki(account_key.raw_value):
        raise bad_csr("the CSR's key must not be the account key")
    wanted = {(i.type.value, i.value) for i in order_identifiers}
    named = set()
    for san in parsed.sans:
        if san.type not in (SanType.DNS, SanType.IP):
            raise bad_csr(f"the CSR names a {san.type.value} SAN; an order has dns and ip only")
        named.add((san.type.value, san.value))
    common_name = parsed.subject.common_name
    if common_name:
        kind = IdentifierType.IP if _is_ip(common_name) else IdentifierType.DNS
        try:
            cn = normalise(kind, common_name.lower())
        except ValueError:
            raise bad_csr("the CSR's common name is none of the order's identifiers") from None
        if (cn.type.value, cn.value) not in wanted:
            raise bad_csr("the CSR's common name is none of the order's identifiers")
        if not parsed.sans:
            named.add((cn.type.value, cn.value))
    if named != wanted:
        missing = sorted(v for _, v in wanted - named)
        extra = sorted(v for _, v in named - wanted)
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"not in the order: {', '.join(extra)}")
        raise bad_csr("the CSR's names are not the order's identifiers (" + "; ".join(parts) + ")")
    return parsed


async def finalize(
    context: ApiContext,
    target: AcmeTarget,
    signed: Signed,
    order: Row,
    now: datetime,
    request_id: str | None,
) -> Row:
    account = signed.account_row()
    order = await orders.current(context, order, now)
    if order["status"] != Status.READY:
        raise AcmeProblem(ErrorType.ORDER_NOT_READY, f"the order is {order['status']}", 403)
    target.check_issuable()
    payload = signed.payload()
    text = payload.get("csr")
    if not isinstance(text, str):
        raise malformed("the finalize payload needs 'csr' (base64url DER)")
    try:
        der = b64url_decode(text)
    except ValueError:
        raise malformed("'csr' is not base64url") from None
    identifiers = [Identifier(IdentifierType(i["type"]), i["value"]) for i in order["identifiers"]]
    parsed = check_csr(der, identifiers, signed.key)
    pem = csr_to_pem(x509.load_der_x509_csr(der))
    metadata = {"acme/order": str(order["id"]), "acme/account": str(account["id"])}
    try:
        params = csr_params(parsed, pem, target.row, metadata=metadata)
        template = checked_template(target.row, params, now)
    except CertforgeError as exc:
        raise bad_csr(_plain(exc)) from None
    request = new_request_row(
        id=uuid4(),
        kind=RequestKind.ISSUE,
        application_id=target.app_id,
        profile_id=target.profile_id,
        params=params,
        now=now,
    )
    command = IssueCertificate(request_id=request["id"], application_id=target.app_id)
    message = message_row(context.subjects.cmd_issue, CloudEvent.wrap(command, source=SOURCE))
    entry = audit.entry(
        action="acme.order.finalize",
        account_id=account["id"],
        application_id=target.app_id,
        resource_type="certificate_request",
        resource_id=request["id"],
        details=_details(target, order, template.sans),
        now=now,
        status_code=200,
        request_id=request_id,
    )
    async with context.db.acquire() as conn, conn.transaction():
        # The guard: a concurrent finalize waits on the row lock, then finds it not ready.
        if await conn.fetchval(_CLAIM_SQL, order["id"], now) is None:
            raise AcmeProblem(ErrorType.ORDER_NOT_READY, "the order is no longer ready", 403)
        await conn.execute(
            SUBMIT_SQL,
            *values(request, _REQUEST_COLUMNS),
            *values(message, MESSAGE_COLUMNS),
            *values(entry, ENTRY_COLUMNS),
        )
        await conn.execute(_PROCESS_SQL, order["id"], request["id"], now)
    context.relay.wake()
    refreshed = await context.db.fetchrow(
        orders.ORDER_SQL, order["id"], target.app_id, target.profile_id
    )
    assert refreshed is not None
    return refreshed


def _details(target: AcmeTarget, order: Row, sans: list[Any]) -> dict[str, Any]:
    return {
        "profile": target.profile_slug,
        "method": "csr",
        "acme_order": str(order["id"]),
        "sans": [s.value for s in sans][:20],
    }


def _plain(exc: CertforgeError) -> str:
    return exc.detail.removeprefix("csr: ")


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
