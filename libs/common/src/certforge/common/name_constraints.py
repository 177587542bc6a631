"""RFC 5280 name constraints (4.2.1.10) of a CA, as data: what its certificate carries and what
the api shows. Values are normalised on the way in, as policy patterns and SANs are
(`template.normalize_dns_name`, IDNA 2008), so that a subtree and a requested name are compared
in one spelling. The rules that use them are in `name_constraint_rules`.

Forms, as RFC 5280 reads them:
- dns `shop.internal`: that name and every name below it;
- ip `10.1.0.0/16`: a network (address and mask in the certificate);
- email `a@shop.internal` one mailbox, `shop.internal` every mailbox at that host,
  `.shop.internal` every mailbox at a host below it;
- uri `shop.internal` URIs whose host is that host, `.shop.internal` hosts below it;
- directory_names: RFC 4514 names; a subject inside it starts with its RDNs.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from cryptography import x509
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from certforge.common.errors import Unprocessable
from certforge.common.template import normalize_dns_name

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _dns(value: str) -> str:
    if value.strip().startswith("."):
        raise ValueError(
            f"{value!r}: write the domain without a leading dot; it covers every name below it"
        )
    name = normalize_dns_name(value)
    if "*" in name:
        raise ValueError(f"{value!r}: a subtree takes no wildcard; it covers every name below it")
    if "." not in name:
        # pkilint refuses a one-label dNSName (RFC 5280 preferred name syntax, as for SANs).
        raise ValueError(f"{value!r}: needs a domain of two labels or more, e.g. shop.internal")
    return name


def _host_or_domain(value: str) -> str:
    """`host` or `.domain`, the host part normalised like a DNS name."""
    if "/" in value or ":" in value:
        raise ValueError(f"{value!r}: give a host (shop.internal) or a domain (.shop.internal)")
    dot = "." if value.strip().startswith(".") else ""
    return dot + _dns(value.strip().lstrip(".") if dot else value)


def _email(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    if not at:
        return _host_or_domain(value)
    if not local or any(c.isspace() or c in "@<>" for c in local) or not local.isascii():
        raise ValueError(f"{value!r}: not a mailbox")
    return f"{local}@{_dns(domain)}"


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r}: not a network in CIDR form ({exc})") from None


def _directory_name(value: str) -> str:
    try:
        name = x509.Name.from_rfc4514_string(value)
    except ValueError:
        raise ValueError(
            f"{value!r}: not an RFC 4514 distinguished name, e.g. O=Shop,C=DE"
        ) from None
    if len(name) == 0:
        raise ValueError("an empty directory name would cover every subject")
    return name.rfc4514_string()


_Dns = Annotated[str, AfterValidator(_dns)]
_Ip = Annotated[str, AfterValidator(_ip)]
_Email = Annotated[str, AfterValidator(_email)]
_Uri = Annotated[str, AfterValidator(_host_or_domain)]
_Dn = Annotated[str, AfterValidator(_directory_name)]


class Subtrees(BaseModel):
    """Subtrees of each name type; an empty list leaves that type alone."""

    model_config = ConfigDict(extra="forbid")

    dns: list[_Dns] = Field(default_factory=list, max_length=64, description="shop.internal")
    ip: list[_Ip] = Field(default_factory=list, max_length=64, description="CIDR, 10.20.0.0/16")
    email: list[_Email] = Field(
        default_factory=list, max_length=64, description="mailbox, host, or .domain"
    )
    uri: list[_Uri] = Field(default_factory=list, max_length=64, description="host, or .domain")
    directory_names: list[_Dn] = Field(
        default_factory=list, max_length=64, description="RFC 4514, e.g. O=Shop,C=DE"
    )

    def is_empty(self) -> bool:
        return not any(self.by_type().values())

    def by_type(self) -> dict[str, list[str]]:
        return {
            "dns": self.dns,
            "ip": self.ip,
            "email": self.email,
            "uri": self.uri,
            "directory_names": self.directory_names,
        }


class NameConstraints(BaseModel):
    """The name constraints of one CA certificate."""

    model_config = ConfigDict(extra="forbid")

    permitted: Subtrees = Field(default_factory=Subtrees)
    excluded: Subtrees = Field(default_factory=Subtrees)
    critical: bool = Field(
        default=True,
        description="RFC 5280 asks for critical; false only for relying parties that cannot "
        "process the extension (CA/Browser Forum allows it)",
    )

    def to_extension(self) -> x509.NameConstraints:
        return x509.NameConstraints(
            permitted_subtrees=_general_names(self.permitted) or None,
            excluded_subtrees=_general_names(self.excluded) or None,
        )

    @classmethod
    def of_certificate(cls, cert: x509.Certificate, *, field: str) -> NameConstraints | None:
        """The constraints `cert` carries, or None; `Unprocessable` on `field` for forms we
        cannot check (otherName, registeredID), since we would then issue blind."""
        try:
            ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
        except x509.ExtensionNotFound:
            return None
        try:
            return cls(
                permitted=_subtrees(ext.value.permitted_subtrees or []),
                excluded=_subtrees(ext.value.excluded_subtrees or []),
                critical=ext.critical,
            )
        except ValueError as exc:
            raise Unprocessable.on_field(
                field, f"name constraints of {cert.subject.rfc4514_string()!r}: {exc}"
            ) from None


def _general_names(subtrees: Subtrees) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(v) for v in subtrees.dns]
    names += [x509.IPAddress(ipaddress.ip_network(v)) for v in subtrees.ip]
    names += [x509.RFC822Name(v) for v in subtrees.email]
    names += [x509.UniformResourceIdentifier(v) for v in subtrees.uri]
    names += [
        x509.DirectoryName(x509.Name.from_rfc4514_string(v)) for v in subtrees.directory_names
    ]
    return names


def _subtrees(names: Iterable[x509.GeneralName]) -> Subtrees:
    by_type: dict[str, list[str]] = {k: [] for k in Subtrees().by_type()}
    for name in names:
        if isinstance(name, x509.DNSName):
            # ".example.com" is common in the wild; below it, as the name itself, is what
            # RFC 5280 means by "example.com".
            by_type["dns"].append(name.value.lstrip("."))
        elif isinstance(name, x509.IPAddress):
            by_type["ip"].append(str(name.value))
        elif isinstance(name, x509.RFC822Name):
            by_type["email"].append(name.value)
        elif isinstance(name, x509.UniformResourceIdentifier):
            by_type["uri"].append(name.value)
        elif isinstance(name, x509.DirectoryName):
            by_type["directory_names"].append(name.value.rfc4514_string())
        else:
            raise ValueError(f"a {type(name).__name__} subtree is not supported")
    return Subtrees.model_validate(by_type)


def chain_constraints(
    own: Mapping[str, Any] | str | None, above: Iterable[Any] | str | None
) -> tuple[NameConstraints, ...]:
    """The constraints a CA's certificates must satisfy: its own, then those of the CAs above
    it, from the two stored columns (asyncpg hands JSONB over as text)."""
    if isinstance(own, str):
        own = json.loads(own)
    if isinstance(above, str):
        above = json.loads(above)
    sets = [own] if own else []
    sets += list(above or [])
    return tuple(NameConstraints.model_validate(s) for s in sets)
