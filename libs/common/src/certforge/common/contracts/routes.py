"""The api's public paths that issued certificates point at: a contract between two services.

The issuer writes these URLs into every certificate (CRL distribution point, OCSP responder and
caIssuers of the authority information access) and the api serves them; a certificate lives for
years, so a path renamed on one side only would break relying parties long after the change.
Both sides read the templates here: the api's routers declare their routes with them, the
issuer fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

API_PREFIX = "/api/v1"
"""Where the REST resources live; OCSP is outside it, at `OCSP_PREFIX`."""

OCSP_PREFIX = "/ocsp"

CA_CRL = "/cas/{ca_id}/crl"
"""The CA's current CRL (DER), under `API_PREFIX`."""

CA_CERTIFICATE_DER = "/cas/{ca_id}/certificate.cer"
"""The CA certificate (DER), under `API_PREFIX`."""

OCSP = "/{ca_id}"
"""The CA's OCSP responder (POST; the GET form appends the encoded request), under `OCSP_PREFIX`."""


@dataclass(frozen=True)
class CAUrls:
    """Where relying parties find a CA's CRL, OCSP responder and certificate."""

    crl: str
    ocsp: str
    ca_issuers: str


def ca_urls(base_url: str, ca_id: UUID) -> CAUrls:
    """The absolute URLs of CA `ca_id` on the api reachable at `base_url` (no trailing slash)."""
    return CAUrls(
        crl=base_url + API_PREFIX + CA_CRL.format(ca_id=ca_id),
        ocsp=base_url + OCSP_PREFIX + OCSP.format(ca_id=ca_id),
        ca_issuers=base_url + API_PREFIX + CA_CERTIFICATE_DER.format(ca_id=ca_id),
    )
