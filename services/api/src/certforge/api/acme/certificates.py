"""Certificate download (RFC 8555 §7.4.2): `application/pem-certificate-chain`, leaf first.

Chain 0 is the leaf and the CAs that issued it up to, not including, the self-signed root
(relying parties hold the root already; sending it is waste). Chain 1, announced with
`Link: rel="alternate"`, adds the root for clients that want the whole path. When the leaf is
issued by the root itself the two would differ only by the root, and both are still offered.
"""

from __future__ import annotations

from uuid import UUID

from cryptography import x509

from certforge.api.acme.directory import AcmeTarget
from certforge.api.acme.errors import not_found, unauthorized
from certforge.api.acme.signed import Signed
from certforge.api.context import ApiContext
from certforge.api.domain.certificates import chain_pem

PEM_CHAIN = "application/pem-certificate-chain"
CHAINS = 2

_CERT_SQL = """
SELECT c.certificate_pem, c.ca_id, o.account_id
FROM certificates c JOIN acme_orders o ON o.certificate_id = c.id
WHERE c.id = $1 AND o.application_id = $2 AND o.profile_id = $3
LIMIT 1
"""
_END = "-----END CERTIFICATE-----"


def chains(leaf_pem: str, issuers_pem: str) -> list[str]:
    """The chains offered, by number (pure): without the root, then with it."""
    blocks = [b.strip() + "\n" + _END + "\n" for b in issuers_pem.split(_END) if b.strip()]
    leaf = leaf_pem.strip() + "\n"
    without_root = [b for b in blocks if not _self_signed(b)]
    return [leaf + "".join(without_root), leaf + "".join(blocks)]


def _self_signed(pem: str) -> bool:
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return cert.subject == cert.issuer


async def download(
    context: ApiContext, target: AcmeTarget, signed: Signed, certificate_id: UUID, chain: int
) -> str:
    row = await context.db.fetchrow(_CERT_SQL, certificate_id, target.app_id, target.profile_id)
    if row is None or not 0 <= chain < CHAINS:
        raise not_found(f"no certificate {certificate_id}" + (f" chain {chain}" if chain else ""))
    if row["account_id"] != signed.account_row()["id"]:
        raise unauthorized("this certificate was ordered by another account")
    return chains(row["certificate_pem"], await chain_pem(context.db, row["ca_id"]))[chain]
