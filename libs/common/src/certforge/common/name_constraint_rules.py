"""The rules that use name constraints, pure and shared: the api calls them for an early 422,
the issuer again as the authority.

- `name_constraint_errors` (called by `ca_rules.plan_ca`): a new CA's constraints are well
  formed (no subtree inside another of its own list, none permitted inside an excluded one)
  and lie inside those of every CA above it, naming the subtree at fault;
- `name_violations`: the names of a certificate to sign that some CA of the chain would not
  vouch for. Certforge refuses them rather than sign what a relying party rejects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from cryptography import x509

from certforge.common.crypto.names import subject_to_name
from certforge.common.domain import SanType
from certforge.common.errors import FieldError
from certforge.common.name_constraints import NameConstraints, Subtrees
from certforge.common.names import common_name_form, looks_like_host_name
from certforge.common.policy import PolicyDocument, Violation, evaluate, refusal
from certforge.common.template import CertificateTemplate, normalize_dns_name


def _dns_within(name: str, subtree: str) -> bool:
    return name == subtree or name.endswith("." + subtree)


def _host_covers(constraint: str, host: str) -> bool:
    """`host` under a uri/email constraint: `.domain` is strictly below, `host` exactly it."""
    if constraint.startswith("."):
        return host.endswith(constraint)
    return host == constraint


def _host_within(child: str, parent: str) -> bool:
    if child.startswith(".") and parent.startswith("."):
        return _dns_within(child[1:], parent[1:])
    if child.startswith("."):
        return False
    return _host_covers(parent, child)


def _email_covers(constraint: str, address: str) -> bool:
    if "@" in constraint:
        c_local, _, c_domain = constraint.rpartition("@")
        a_local, _, a_domain = address.rpartition("@")
        return c_local == a_local and c_domain == a_domain.lower()
    return _host_covers(constraint, address.rpartition("@")[2].lower())


def _email_within(child: str, parent: str) -> bool:
    if "@" in child:
        return _email_covers(parent, child)
    return "@" not in parent and _host_within(child, parent)


def _ip_within(child: str, parent: str) -> bool:
    c, p = ipaddress.ip_network(child), ipaddress.ip_network(parent)
    return c.version == p.version and c.subnet_of(p)  # type: ignore[arg-type]


def _dn_within(child: str, parent: str) -> bool:
    c = x509.Name.from_rfc4514_string(child).rdns
    p = x509.Name.from_rfc4514_string(parent).rdns
    return c[: len(p)] == p


_WITHIN: dict[str, Callable[[str, str], bool]] = {
    "dns": _dns_within,
    "ip": _ip_within,
    "email": _email_within,
    "uri": _host_within,
    "directory_names": _dn_within,
}


def name_constraint_errors(
    constraints: NameConstraints | None,
    above: Sequence[NameConstraints],
    *,
    parent_name: str | None,
    field: str = "name_constraints",
) -> list[FieldError]:
    """Refuse malformed constraints or a subtree wider than a CA above allows, with every
    reason at once. A CA that declares no constraints inherits those above it (path validation
    applies every CA's), so it is never "wider"; a type the new CA leaves alone likewise."""
    if constraints is None:
        return []
    errors: list[FieldError] = []
    if constraints.permitted.is_empty() and constraints.excluded.is_empty():
        errors.append(FieldError(field, "give at least one permitted or excluded subtree"))
    for kind in ("permitted", "excluded"):
        subtrees: Subtrees = getattr(constraints, kind)
        for name_type, values in subtrees.by_type().items():
            within = _WITHIN[name_type]
            for i, value in enumerate(values):
                path = f"{field}.{kind}.{name_type}.{i}"
                twin = next(
                    (
                        o
                        for j, o in enumerate(values)
                        if j != i and within(value, o) and (value != o or j < i)
                    ),
                    None,
                )
                if twin is not None:
                    errors.append(FieldError(path, f"{value!r} lies inside {twin!r}: drop it"))
    for name_type, values in constraints.permitted.by_type().items():
        within = _WITHIN[name_type]
        excluded = constraints.excluded.by_type()[name_type]
        for i, value in enumerate(values):
            path = f"{field}.permitted.{name_type}.{i}"
            if hit := next((e for e in excluded if within(value, e)), None):
                errors.append(FieldError(path, f"{value!r} lies inside excluded {hit!r}"))
            for parent in above:
                p_permitted = parent.permitted.by_type()[name_type]
                if p_permitted and not any(within(value, p) for p in p_permitted):
                    errors.append(
                        FieldError(
                            path,
                            f"{value!r} is wider than parent CA {parent_name!r} permits "
                            f"({', '.join(p_permitted)})",
                        )
                    )
                if hit := next(
                    (e for e in parent.excluded.by_type()[name_type] if within(value, e)), None
                ):
                    errors.append(
                        FieldError(path, f"{value!r} lies inside {hit!r}, excluded by a CA above")
                    )
    return errors


def _dns_excluded_hit(name: str, excluded: str) -> bool:
    """Whether an excluded subtree takes any name `name` covers: a wildcard `*.X` covers one
    label below X, so an excluded `admin.X` (or anything above X) takes part of it."""
    if not name.startswith("*."):
        return _dns_within(name, excluded)
    base = name[2:]
    return _dns_within(base, excluded) or (
        excluded.endswith("." + base) and excluded.count(".") == base.count(".") + 1
    )


def _check(
    violations: list[Violation],
    field: str,
    noun: str,
    value: str,
    name_type: str,
    covers: Callable[[str, str], bool],
    excluded_hit: Callable[[str, str], bool],
    chain: Sequence[NameConstraints],
) -> None:
    for constraints in chain:
        permitted = constraints.permitted.by_type()[name_type]
        if permitted and not any(covers(value, p) for p in permitted):
            violations.append(
                Violation(
                    field,
                    f'{noun} "{value}" is outside the name constraints of the issuing CA '
                    f"(permitted: {', '.join(permitted)})",
                )
            )
            return
        for excluded in constraints.excluded.by_type()[name_type]:
            if excluded_hit(value, excluded):
                violations.append(
                    Violation(
                        field,
                        f'{noun} "{value}" is in {excluded!r}, excluded by the name '
                        "constraints of the issuing CA",
                    )
                )
                return


def _uri_host(uri: str) -> str:
    host = urlsplit(uri).hostname or ""
    try:
        return normalize_dns_name(host) if host else ""
    except ValueError:
        return host


def _ip_covers(value: str, network: str) -> bool:
    """Strictly by version: a relying party compares an IPv6 SAN with IPv6 subtrees only, so
    `::ffff:10.20.3.4` is not inside a permitted `10.20.0.0/16`."""
    return ipaddress.ip_address(value) in ipaddress.ip_network(network)


def _ip_excluded_hit(value: str, network: str) -> bool:
    """An IPv4-mapped IPv6 address is also judged as the IPv4 address it carries, as policies
    do: it reaches that host, so an exclusion of it must not be side-stepped."""
    address = ipaddress.ip_address(value)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    net = ipaddress.ip_network(network)
    return address in net or (mapped is not None and mapped in net)


def _uri_covers(uri: str, constraint: str) -> bool:
    """A URI without a host (`urn:…`) is covered by no uri subtree (RFC 5280 4.2.1.10)."""
    host = _uri_host(uri)
    return bool(host) and _host_covers(constraint, host)


def _email_value_covers(address: str, constraint: str) -> bool:
    return _email_covers(constraint, address)


_Rule = tuple[str, str, Callable[[str, str], bool], Callable[[str, str], bool]]
_SAN_RULES: dict[SanType, _Rule] = {
    SanType.DNS: ("DNS name", "dns", _dns_within, _dns_excluded_hit),
    SanType.IP: ("IP address", "ip", _ip_covers, _ip_excluded_hit),
    SanType.EMAIL: ("email address", "email", _email_value_covers, _email_value_covers),
    SanType.URI: ("URI", "uri", _uri_covers, _uri_covers),
}


def name_violations(
    template: CertificateTemplate, chain: Sequence[NameConstraints]
) -> list[Violation]:
    """Every name in `template` that the constraints of the issuing CA or a CA above it do not
    allow, at its template field. Names are compared as normalised by the template (IDNA 2008,
    lower case), so no spelling escapes. A host-name common name answers as a DNS name, as in
    `policy.evaluate`, since clients that read host names from the CN would honour it."""
    if not chain:
        return []
    violations: list[Violation] = []
    dns_sans = set()
    for i, san in enumerate(template.sans):
        if san.type == SanType.DNS:
            dns_sans.add(san.value)
        noun, name_type, covers, excluded_hit = _SAN_RULES[san.type]
        field = f"sans.{i}.value"
        _check(violations, field, noun, san.value, name_type, covers, excluded_hit, chain)
    common_name = template.subject.common_name
    if common_name and looks_like_host_name(common_name):
        try:
            name = common_name_form(common_name)
        except ValueError:  # `policy.evaluate` refuses it, whatever the constraints
            name = ""
        if name and name not in dns_sans:
            field, noun = "subject.common_name", "subject common name"
            _check(violations, field, noun, name, "dns", _dns_within, _dns_excluded_hit, chain)
    subject = subject_to_name(template.subject)
    if len(subject) > 0:
        dn = subject.rfc4514_string()
        _check(
            violations, "subject", "subject", dn, "directory_names", _dn_within, _dn_within, chain
        )
    return violations


def enforce_policy_and_names(
    policy: PolicyDocument,
    template: CertificateTemplate,
    policy_name: str,
    ca_name: str,
    chain: Sequence[NameConstraints],
) -> None:
    """Raise `PolicyViolation` listing every violation of the policy and of the CA chain's name
    constraints together, worded as the api's early refusal is (`policy.refusal`)."""
    violations = evaluate(policy, template, policy_name=policy_name)
    names = name_violations(template, chain)
    if violations or names:
        raise refusal([*violations, *names], policy_name, ca_name=ca_name if names else None)
