"""Client certificates (mTLS) passed on by the proxy that terminated TLS in front of the api.

The api never sees the TLS handshake when an ingress ends TLS, so it trusts the proxy's header
— but only from the addresses in CERTFORGE_TRUSTED_PROXIES: from anyone else the header is
ignored, or any caller could claim any certificate. The proxy must verify the client
certificate against Certforge's CA and must overwrite (never append to) the header a client
sends. Two conventions are read:

- nginx: `proxy_set_header ssl-client-cert $ssl_client_escaped_cert;` (URL-encoded PEM);
- Envoy / Istio XFCC: `By=…;Hash=…;Cert="<URL-encoded PEM>";Subject="…"`, several elements
  separated by commas; the last one is the hop that reached us.

The certificate is then looked up among those Certforge issued (`auth.authenticate_certificate`):
a certificate it did not issue, or one revoked or expired, authenticates nobody.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import unquote

from cryptography import x509

from certforge.common.crypto.certificates import fingerprint_sha256
from certforge.common.errors import Unauthenticated

_MAX_HEADER = 16 * 1024


def from_trusted_proxy(source: str | None, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    if not source or not networks:
        return False
    try:
        address = ip_address(source)
    except ValueError:
        return False
    return any(address in network for network in networks)


def parse_header(value: str) -> x509.Certificate:
    """The client certificate in a proxy header (either convention)."""
    if len(value) > _MAX_HEADER:
        raise Unauthenticated("client certificate header too large")
    text = value.strip()
    if not text.startswith("-----") and not text.startswith("%2D"):
        element = text.split(",")[-1]  # XFCC: the last element is the hop that reached us
        cert = None
        for part in element.split(";"):
            key, _, raw = part.strip().partition("=")
            if key.lower() == "cert":
                cert = raw.strip('"')
        if cert is None:
            raise Unauthenticated("client certificate header has no Cert")
        text = cert
    pem = unquote(text)
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise Unauthenticated("client certificate header is not a PEM certificate") from None


def identify(cert: x509.Certificate) -> tuple[str, str]:
    """What the certificate is looked up by: its serial (as the issuer stores it) and SHA-256."""
    return format(cert.serial_number, "x"), fingerprint_sha256(cert)


def source_address(
    peer: str | None, forwarded_for: str | None, networks: tuple[IPv4Network | IPv6Network, ...]
) -> str:
    """The caller's address for rate limits and the audit log: the peer, or — when the peer is
    a trusted proxy — the right-most `X-Forwarded-For` entry that is not a trusted proxy (the
    entries left of it were written by the client and prove nothing). Behind an ingress, the
    peer alone would put every caller in one bucket."""
    if not forwarded_for or not from_trusted_proxy(peer, networks):
        return peer or "unknown"
    for hop in reversed([h.strip() for h in forwarded_for.split(",")][-16:]):
        if not from_trusted_proxy(hop, networks):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer or "unknown"
    return peer or "unknown"
