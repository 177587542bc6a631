"""Where relying parties find a CA's certificate, CRL and OCSP responder (served by the api)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class CAUrls:
    crl: str
    ocsp: str
    ca_issuers: str


def ca_urls(base_url: str, ca_id: UUID) -> CAUrls:
    return CAUrls(
        crl=f"{base_url}/api/v1/cas/{ca_id}/crl",
        ocsp=f"{base_url}/ocsp/{ca_id}",
        ca_issuers=f"{base_url}/api/v1/cas/{ca_id}/certificate.cer",
    )
