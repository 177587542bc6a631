"""Where the validator may connect: pure rules on addresses, names and redirects.

The validator is the one Certforge process that opens connections chosen by outsiders (an
ACME client picks the identifier; its web server picks the redirects). Without these rules an
order for a name pointing at 169.254.169.254 or 127.0.0.1, or a redirect there, would make the
validator probe the cluster's own network for the requester (server-side request forgery).
Every resolved address and every redirect target passes `refusal` before a connection is made,
and the connection goes to that checked address, never to a name resolved a second time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 10
"""RFC 8555 §8.3 leaves redirects to the server; Boulder follows at most 10, so do we."""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, Teredo's client), which
    is where a connection to it ends up."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_class(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address (`loopback`, `private`, …), or None."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = address_class(embedded)
        return f"{inner} (embedded in {address})" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def refusal(
    address: IPAddress, *, allow_private: bool, allowed_networks: Sequence[IPNetwork] = ()
) -> str | None:
    """Why the validator must not connect to `address` (its class: `loopback`, `private`, …),
    or None when it may.

    Unspecified and multicast addresses are never a requester's machine and are always refused.
    Other non-public addresses are refused unless `allow_private` is on (development, tests)
    or the address lies in one of `allowed_networks` (a private PKI's own networks).
    """
    kind = address_class(address)
    if kind is None:
        return None
    if kind.startswith(("unspecified", "multicast")):
        return kind
    if allow_private or any(address in network for network in allowed_networks):
        return None
    return kind


def parse_ip(value: str) -> IPAddress | None:
    """`value` as an IP address (IPv6 with or without brackets), or None for a name."""
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def sni_name(identifier_type: str, value: str) -> str:
    """The TLS server name of a tls-alpn-01 handshake: the DNS name, or for an IP identifier
    its reverse name (`4.3.2.1.in-addr.arpa`, RFC 8738 §6): SNI cannot carry an address."""
    if identifier_type == "ip":
        return ipaddress.ip_address(value).reverse_pointer
    return value


def host_header(host: str, port: int, default_port: int) -> str:
    """An HTTP Host header: IPv6 literals in brackets, the port only when not the default."""
    address = parse_ip(host)
    shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else host
    return shown if port == default_port else f"{shown}:{port}"


def url_host(address: IPAddress) -> str:
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)


@dataclass(frozen=True)
class Target:
    """One URL to fetch: the name (or address) it names and where to connect."""

    scheme: str
    host: str
    port: int
    path: str
    """Path and query, as sent in the request line."""

    @property
    def url(self) -> str:
        address = parse_ip(self.host)
        host = url_host(address) if address is not None else self.host
        default = 80 if self.scheme == "http" else 443
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"

    @property
    def shown(self) -> str:
        """The URL as a detail quotes it: a redirect's path is the peer's choice, so cut."""
        url = self.url
        return url if len(url) <= 200 else url[:200] + "…"


class RedirectRefused(ValueError):
    """A redirect the validator will not follow; the message says why."""


def redirect_target(current: Target, location: str, *, http_port: int, https_port: int) -> Target:
    """Where a redirect from `current` to `location` (relative or absolute) leads, if the
    validator may follow it: http on `http_port` or https on `https_port` only (as Boulder
    allows 80 and 443 only), with a host. Its addresses are checked once resolved."""
    shown = repr(location[:100]) + ("…" if len(location) > 100 else "")
    absolute = urljoin(current.url, location.strip())
    try:
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError as exc:
        raise RedirectRefused(f"the redirect to {shown} is not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise RedirectRefused(f"the redirect to {shown} is not to http or https")
    if not parts.hostname:
        raise RedirectRefused(f"the redirect to {shown} names no host")
    host = parts.hostname.rstrip(".")
    if parse_ip(host) is None:
        try:  # an internationalised name travels as its A-labels (Host header, SNI, DNS)
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise RedirectRefused(f"the redirect to {shown} names no valid host") from None
    allowed = http_port if parts.scheme == "http" else https_port
    chosen = port if port is not None else (80 if parts.scheme == "http" else 443)
    if chosen != allowed:
        raise RedirectRefused(
            f"the redirect to {shown} targets port {chosen}; {parts.scheme} redirects "
            f"may target port {allowed} only"
        )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host, chosen, path)
