"""The certificate policy: what may be issued, judged against a `CertificateTemplate`.

A policy is data (the models below are the body of `POST /api/v1/policies`) plus one pure
function, `evaluate`. The api calls it for a fast 4xx and the issuer calls it again
authoritatively, so both give the same verdict. `evaluate` returns every violation at once,
because a caller fixing a request wants the whole list, not one error per round trip.

Every pattern rule reads the same way:

- `allowed: None` leaves the values unrestricted; `allowed: []` allows nothing.
- `denied` always wins over `allowed`.
- `required` means a value must be present (for a SAN type: at least one SAN of that type).

A subject attribute or SAN type that has no rule at all is unrestricted; to forbid a SAN type,
write `{"allowed": []}` for it.

Globs (subject attributes, email, URI) know only `*`, which matches any run of characters,
dots and slashes included. Unlike `fnmatch`, `?` and `[` are literal, so URIs with IPv6 hosts
and names with brackets match as written. DNS patterns are matched label by label instead;
see `DnsSanRule`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from certforge.common.domain import (
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    SanType,
    SignatureHash,
    SubjectFields,
)
from certforge.common.durations import Duration, format_duration
from certforge.common.errors import FieldError, PolicyViolation
from certforge.common.names import (
    common_name_form,
    dns_name,
    invisible_character,
    looks_like_host_name,
    spellings,
)
from certforge.common.template import CertificateTemplate, normalize_dns_name

# --- models -------------------------------------------------------------------------------------

_SUBJECT_ATTRIBUTES = tuple(SubjectFields.model_fields)


class _PatternRule(BaseModel):
    """Allowed and denied patterns over one kind of value; subclasses say how patterns match."""

    model_config = ConfigDict(extra="forbid")

    allowed: list[str] | None = Field(
        default=None, description="Patterns a value must match; null = any value, [] = none."
    )
    denied: list[str] = Field(
        default_factory=list, description="Patterns no value may match; wins over `allowed`."
    )
    required: bool = Field(default=False, description="Whether a value must be present.")

    @classmethod
    def _normalize_pattern(cls, pattern: str) -> str:
        """Check one pattern and return the form that is stored and matched."""
        cleaned = pattern.strip()
        if not cleaned:
            raise ValueError("a pattern must not be empty")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in cleaned):
            raise ValueError(f"invalid pattern {pattern!r}: control characters are not allowed")
        return cleaned

    def _matches(self, pattern: str, value: str, *, denying: bool) -> bool:
        """Whether `pattern` matches `value`; `denying` is set when judging a denied list.

        Both sides are compared folded (`_fold`), so that a denied `Evil Corp` also holds
        against `EVIL Corp` in fullwidth letters or with a zero-width space."""
        return _glob(_fold(pattern)).fullmatch(_fold(value)) is not None

    @field_validator("allowed", "denied")
    @classmethod
    def _check_patterns(cls, patterns: list[str] | None) -> list[str] | None:
        if patterns is None:
            return None
        return [cls._normalize_pattern(pattern) for pattern in patterns]

    @model_validator(mode="after")
    def _check_satisfiable(self) -> _PatternRule:
        if self.required and self.allowed == []:
            raise ValueError(
                "`required` is true but `allowed` is empty, so nothing could satisfy it"
            )
        return self

    def refusals(self, value: str, by: str) -> list[str]:
        """Why this rule refuses `value`, each reason completing a sentence about the value."""
        denied = [p for p in self.denied if self._matches(p, value, denying=True)]
        if denied:
            return [f"is denied by {by} (denied: {_listing(denied)})"]
        if self.allowed is not None and not any(
            self._matches(p, value, denying=False) for p in self.allowed
        ):
            return [f"is not allowed by {by} (allowed: {_listing(self.allowed)})"]
        return []


class AttributeRule(_PatternRule):
    """A subject attribute: case-insensitive globs, `*` matching any characters.

    The common name is often a DNS name, but a glob is not label-aware: `*.example.com` also
    matches `a.b.example.com`. Restrict host names through `sans.dns`, which is, and which a
    common name that is a host name answers to as well.
    """


class DnsSanRule(_PatternRule):
    """DNS names, matched label by label.

    `*` as a label matches exactly one label, so `*.example.com` matches `api.example.com` and
    the wildcard SAN `*.example.com`, but not `a.b.example.com`. A leading `**` label matches
    one or more labels (`**.example.com`: any subdomain). Other labels match only themselves,
    case-insensitively; `*` inside a label (`api-*.example.com`) is refused as a pattern.

    A wildcard SAN is allowed only if an allowed pattern covers every name it covers, and is
    denied if a denied pattern matches any name it covers: with `admin.example.com` denied,
    `*.example.com` is refused, since that certificate would be valid for `admin.example.com`.
    A subject common name that is a host name with a domain is judged by this rule too.

    Values are DNS names as `names.dns_name` writes them (lower-case A-labels), and so are
    patterns once saved; a denied pattern also holds against the transitional reading of a
    name (`names.spellings`), since some clients resolve `faß.example` as `fass.example`.
    """

    allow_wildcard: bool = Field(
        default=True,
        description="Whether wildcard names such as `*.example.com` may be issued, as a SAN or"
        " as the common name.",
    )

    @classmethod
    def _normalize_pattern(cls, pattern: str) -> str:
        labels = pattern.strip().rstrip(".").lower().split(".")
        checked: list[str] = []
        for index, label in enumerate(labels):
            if label == "**":
                if index != 0 or len(labels) < 2:
                    raise ValueError(
                        f"invalid DNS pattern {pattern!r}: `**` may only be the first label and"
                        " must be followed by a domain, e.g. **.example.com"
                    )
            elif label != "*" and "*" in label:
                raise ValueError(
                    f"invalid DNS pattern {pattern!r}: `*` must be a whole label,"
                    " e.g. *.example.com"
                )
            elif label != "*":
                try:
                    label = normalize_dns_name(label)
                except ValueError:
                    raise ValueError(
                        f"invalid DNS pattern {pattern!r}: {label!r} is not a DNS label"
                    ) from None
            checked.append(label)
        return ".".join(checked)

    def _matches(self, pattern: str, value: str, *, denying: bool) -> bool:
        if not denying:
            return self._matches_one(pattern, value, denying=False)
        # A denied name holds against every reading of it (`names.spellings`): `faß` is `fass`
        # to a transitional (IDNA 2003) client, so a denied `fass` denies `faß`, and back.
        return any(
            self._matches_one(p, v, denying=True)
            for p in spellings(pattern)
            for v in spellings(value.lower())
        )

    @staticmethod
    def _matches_one(pattern: str, value: str, *, denying: bool) -> bool:
        wanted = pattern.split(".")
        labels = value.lower().split(".")
        if wanted[0] == "**":
            wanted = wanted[1:]
            if len(labels) <= len(wanted):
                return False
            labels = labels[len(labels) - len(wanted) :]
        elif len(labels) != len(wanted):
            return False
        # A `*` label of the SAN stands for any label: when denying, meeting one is enough.
        return all(
            w in ("*", label) or (denying and label == "*")
            for w, label in zip(wanted, labels, strict=True)
        )

    def refusals(self, value: str, by: str) -> list[str]:
        reasons = []
        if not self.allow_wildcard and value.startswith("*."):
            reasons.append(f"is a wildcard, which {by} does not allow")
        return reasons + super().refusals(value, by)


class IpSanRule(_PatternRule):
    """IP addresses, matched against networks in CIDR form (`10.0.0.0/8`, `2001:db8::/32`).

    A bare address is a network of one. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is
    judged as itself and as the IPv4 address it carries, so it cannot slip past a denied network.
    """

    @classmethod
    def _normalize_pattern(cls, pattern: str) -> str:
        try:
            return str(ipaddress.ip_network(pattern.strip()))
        except ValueError as exc:
            raise ValueError(f"invalid IP network {pattern!r}: {exc}") from None

    def _matches(self, pattern: str, value: str, *, denying: bool) -> bool:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        network = ipaddress.ip_network(pattern)
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return address in network or (mapped is not None and mapped in network)


class EmailSanRule(_PatternRule):
    """Email addresses: globs such as `*@example.com`, wholly case-insensitive.

    The local part is compared case-insensitively as well, as mail systems do, so that a denied
    `ceo@example.com` cannot be bypassed by asking for `CEO@example.com`. The domain is read as
    a SAN's is (`names.dns_name`, label by label around `*`), and a denied pattern holds against
    the transitional reading of the domain too (`names.spellings`), as for DNS names.
    """

    @classmethod
    def _normalize_pattern(cls, pattern: str) -> str:
        cleaned = super()._normalize_pattern(pattern)
        if "@" not in cleaned or any(c.isspace() for c in cleaned):
            raise ValueError(
                f"invalid email pattern {pattern!r}: needs an @ and no spaces, e.g. *@example.com"
            )
        local, _, domain = cleaned.rpartition("@")
        labels = []
        for label in domain.rstrip(".").split("."):
            # A label that is no DNS label stays as written (it matches no valid address):
            # policies saved before domains were converted must still load.
            with contextlib.suppress(ValueError):
                label = dns_name(label) if "*" not in label else label
            labels.append(label)
        return f"{local}@{'.'.join(labels)}"

    def _matches(self, pattern: str, value: str, *, denying: bool) -> bool:
        if not denying:
            return super()._matches(pattern, value, denying=False)
        return any(
            super(EmailSanRule, self)._matches(p, v, denying=True)
            for p in _address_spellings(pattern)
            for v in _address_spellings(value)
        )


class UriSanRule(_PatternRule):
    """URIs: globs such as `spiffe://example.org/ns/prod/*`.

    Scheme and host are case-insensitive (RFC 3986) and the path is not, so both sides are
    compared with scheme and authority lower-cased and the rest as written. A URI SAN is ASCII,
    so a pattern written in Unicode is stored as a URI would be: the host in A-labels
    (`names.dns_name`), anything else percent-encoded; else a denied one would match nothing.
    """

    @classmethod
    def _normalize_pattern(cls, pattern: str) -> str:
        cleaned = super()._normalize_pattern(pattern)
        if ":" not in cleaned or any(c.isspace() for c in cleaned):
            raise ValueError(
                f"invalid URI pattern {pattern!r}: needs a scheme and no spaces,"
                " e.g. spiffe://example.org/*"
            )
        return cleaned if cleaned.isascii() else _ascii_uri(cleaned)

    def _matches(self, pattern: str, value: str, *, denying: bool) -> bool:
        return _glob(_fold_uri(pattern)).fullmatch(_fold_uri(value)) is not None


class SanRules(BaseModel):
    """One rule per SAN type; a type without a rule is unrestricted."""

    model_config = ConfigDict(extra="forbid")

    dns: DnsSanRule | None = None
    ip: IpSanRule | None = None
    email: EmailSanRule | None = None
    uri: UriSanRule | None = None

    def rule_for(self, san_type: SanType) -> _PatternRule | None:
        rules: dict[SanType, _PatternRule | None] = {
            SanType.DNS: self.dns,
            SanType.IP: self.ip,
            SanType.EMAIL: self.email,
            SanType.URI: self.uri,
        }
        return rules[san_type]


UsageT = TypeVar("UsageT", KeyUsage, ExtendedKeyUsage)


class UsageRule(BaseModel, Generic[UsageT]):
    """Which usages a certificate may carry and which it must carry."""

    model_config = ConfigDict(extra="forbid")

    allowed: list[UsageT] | None = Field(default=None, description="null = any usage.")
    required: list[UsageT] = Field(default_factory=list, description="Each must be present.")

    @model_validator(mode="after")
    def _check_required_allowed(self) -> UsageRule[UsageT]:
        if self.allowed is not None:
            missing = [u for u in self.required if u not in self.allowed]
            if missing:
                raise ValueError(
                    f"required usages {_listing(missing)} are not in `allowed`,"
                    " so nothing could satisfy the policy"
                )
        return self


class PolicyDocument(BaseModel):
    """What a profile may issue. Every part defaults to unrestricted, except CA certificates."""

    model_config = ConfigDict(extra="forbid")

    subject: dict[str, AttributeRule] = Field(
        default_factory=dict,
        description="Rules by subject attribute: common_name, organization, organizational_unit,"
        " country, state, locality.",
    )
    sans: SanRules = Field(default_factory=SanRules)
    key_algorithms: list[KeyAlgorithm] = Field(
        default_factory=lambda: list(KeyAlgorithm), min_length=1
    )
    signature_hashes: list[SignatureHash] = Field(
        default_factory=lambda: list(SignatureHash), min_length=1
    )
    key_usages: UsageRule[KeyUsage] = Field(default_factory=UsageRule[KeyUsage])
    extended_key_usages: UsageRule[ExtendedKeyUsage] = Field(
        default_factory=UsageRule[ExtendedKeyUsage]
    )
    max_validity: Duration | None = Field(default=None, description="e.g. 397d; null = no limit.")
    allow_ca: bool = Field(
        default=False,
        description="Whether CA certificates (basicConstraints CA=true) may be issued.",
    )

    @field_validator("subject")
    @classmethod
    def _check_attributes(cls, rules: dict[str, AttributeRule]) -> dict[str, AttributeRule]:
        unknown = [name for name in rules if name not in _SUBJECT_ATTRIBUTES]
        if unknown:
            raise ValueError(
                f"unknown subject attribute {_listing(unknown)}; expected one of"
                f" {_listing(_SUBJECT_ATTRIBUTES)}"
            )
        return rules


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One broken rule; `field` is the dotted path of the template field at fault."""

    field: str
    message: str


_SAN_NOUNS = {
    SanType.DNS: "DNS name",
    SanType.IP: "IP address",
    SanType.EMAIL: "email address",
    SanType.URI: "URI",
}


def evaluate(
    policy: PolicyDocument, template: CertificateTemplate, *, policy_name: str | None = None
) -> list[Violation]:
    """Every way `template` breaks `policy`, in template field order; empty when it complies.

    Pure and total: it never raises, whatever the template. `policy_name` only names the
    policy in messages.
    """
    by = f'policy "{policy_name}"' if policy_name else "the policy"
    return [
        *_subject_violations(policy, template, by),
        *_san_violations(policy, template, by),
        *_algorithm_violations(policy, template, by),
        *_usage_violations(policy.key_usages, template.key_usages, "key_usages", "key usage", by),
        *_usage_violations(
            policy.extended_key_usages,
            template.extended_key_usages,
            "extended_key_usages",
            "extended key usage",
            by,
        ),
        *_validity_violations(policy, template, by),
        *_ca_violations(policy, template, by),
    ]


def enforce(policy: PolicyDocument, template: CertificateTemplate, policy_name: str) -> None:
    """Raise `PolicyViolation` listing every violation, or return when the template complies."""
    violations = evaluate(policy, template, policy_name=policy_name)
    if violations:
        raise refusal(violations, policy_name)


def refusal(
    violations: Sequence[Violation],
    policy_name: str,
    *,
    ca_name: str | None = None,
    field_of: Callable[[str], str] = lambda field: field,
) -> PolicyViolation:
    """The one wording of a refused certificate, whoever refuses it (the api early, the issuer
    at signing): every violation of the policy and, with `ca_name`, of the name constraints of
    that CA's chain. `field_of` renames a template field to the one the caller sent."""
    count = len(violations)
    of = f'policy "{policy_name}"'
    if ca_name is not None:
        of += f" and the name constraints of CA {ca_name!r}"
    return PolicyViolation(
        detail=f"{count} violation{'' if count == 1 else 's'} of {of}: "
        + "; ".join(v.message for v in violations),
        errors=[FieldError(field_of(v.field), v.message) for v in violations],
    )


def _subject_violations(
    policy: PolicyDocument, template: CertificateTemplate, by: str
) -> list[Violation]:
    present = template.subject.present()
    violations = []
    for name in _SUBJECT_ATTRIBUTES:
        rule = policy.subject.get(name)
        field, noun = f"subject.{name}", f"subject {name.replace('_', ' ')}"
        value = present.get(name)
        # Whatever the rules: a name with an invisible character reads as another name.
        invisible = invisible_character(value) if value is not None else None
        if invisible:
            violations.append(Violation(field, f'{noun} "{value}": {invisible}'))
            continue
        if rule is None:
            continue
        if value is None:
            if rule.required:
                violations.append(Violation(field, f"{noun} is required by {by} but is missing"))
            continue
        violations += [Violation(field, f'{noun} "{value}" {r}') for r in rule.refusals(value, by)]
    # Clients that still read a host name from the CN (when a certificate has no DNS SAN)
    # would honour whatever host name is there: one that looks like a host name answers to
    # the DNS rule too, in its DNS form (`names.common_name_form`), or a CN would carry the
    # names `sans.dns` refuses. One that is not a valid host name is refused whatever the
    # rules say. One violation per value, though: not when the CN's own rule refused it
    # already, nor when the same name is a DNS SAN, whose violation the DNS rule reports at
    # the SAN.
    common_name = present.get("common_name")
    if common_name and not any(v.field == "subject.common_name" for v in violations):
        violations += _host_common_name_violations(common_name, policy, template, by)
    return violations


def _host_common_name_violations(
    common_name: str, policy: PolicyDocument, template: CertificateTemplate, by: str
) -> list[Violation]:
    if not looks_like_host_name(common_name):
        return []
    field, noun = "subject.common_name", f'subject common name "{common_name}"'
    try:
        name = common_name_form(common_name)
    except ValueError as exc:
        return [Violation(field, f"{noun} {exc}")]
    dns = policy.sans.dns
    if dns is None or name in {san.value for san in template.sans if san.type == SanType.DNS}:
        return []
    return [Violation(field, f"{noun} {reason}") for reason in dns.refusals(name, by)]


def _san_violations(
    policy: PolicyDocument, template: CertificateTemplate, by: str
) -> list[Violation]:
    violations = []
    for index, san in enumerate(template.sans):
        rule = policy.sans.rule_for(san.type)
        if rule is not None:
            noun = _SAN_NOUNS[san.type]
            violations += [
                Violation(f"sans.{index}.value", f'{noun} "{san.value}" {reason}')
                for reason in rule.refusals(san.value, by)
            ]
    requested = {san.type for san in template.sans}
    for san_type in SanType:
        rule = policy.sans.rule_for(san_type)
        if rule is not None and rule.required and san_type not in requested:
            violations.append(
                Violation(
                    "sans",
                    f"at least one {_SAN_NOUNS[san_type]} SAN is required by {by};"
                    " none was requested",
                )
            )
    return violations


def _algorithm_violations(
    policy: PolicyDocument, template: CertificateTemplate, by: str
) -> list[Violation]:
    violations = []
    if template.key_algorithm not in policy.key_algorithms:
        violations.append(
            Violation(
                "key_algorithm",
                f"key algorithm {template.key_algorithm} is not allowed by {by}"
                f" (allowed: {_listing(policy.key_algorithms)})",
            )
        )
    # None is never a violation: Ed25519 takes no hash, and otherwise the builder picks one.
    if (
        template.signature_hash is not None
        and template.signature_hash not in policy.signature_hashes
    ):
        violations.append(
            Violation(
                "signature_hash",
                f"signature hash {template.signature_hash} is not allowed by {by}"
                f" (allowed: {_listing(policy.signature_hashes)})",
            )
        )
    return violations


def _usage_violations(
    rule: UsageRule[UsageT], present: Sequence[UsageT], field: str, noun: str, by: str
) -> list[Violation]:
    violations = []
    if rule.allowed is not None:
        violations += [
            Violation(
                field, f"{noun} {u} is not allowed by {by} (allowed: {_listing(rule.allowed)})"
            )
            for u in present
            if u not in rule.allowed
        ]
    violations += [
        Violation(field, f"{noun} {u} is required by {by} but is missing")
        for u in rule.required
        if u not in present
    ]
    return violations


def _validity_violations(
    policy: PolicyDocument, template: CertificateTemplate, by: str
) -> list[Violation]:
    validity = template.not_after - template.not_before
    if policy.max_validity is None or validity <= policy.max_validity:
        return []
    # Rounded up, so that 397d and half a second never reads as "397d exceeds 397d".
    shown = format_duration(timedelta(seconds=math.ceil(validity.total_seconds())))
    return [
        Violation(
            "not_after",
            f"validity of {shown} exceeds the maximum of"
            f" {format_duration(policy.max_validity)} allowed by {by}",
        )
    ]


def _ca_violations(
    policy: PolicyDocument, template: CertificateTemplate, by: str
) -> list[Violation]:
    if template.is_ca and not policy.allow_ca:
        return [Violation("is_ca", f"CA certificates are not allowed by {by}")]
    return []


# --- matching helpers ---------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """Compile a glob in which only `*` is special: it matches any run of characters."""
    parts = re.split(r"(\*)", pattern)
    return re.compile("".join(".*" if p == "*" else re.escape(p) for p in parts), re.DOTALL)


_URI_HEAD = re.compile(r"^[^:/?#]*:(?://[^/?#]*)?")


def _fold_uri(uri: str) -> str:
    """Lower-case the scheme and the authority of `uri` (RFC 3986), leaving the rest as written."""
    head = _URI_HEAD.match(uri)
    if head is None:
        return uri
    return head.group().lower() + uri[head.end() :]


def _address_spellings(address: str) -> tuple[str, ...]:
    local, _, domain = address.rpartition("@")
    return tuple(f"{local}@{d}" for d in spellings(domain.lower()))


def _fold(text: str) -> str:
    """`text` as compared by a glob: compatibility forms unified (NFKC: a fullwidth letter is
    the letter), case folded, invisible format characters dropped."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


def _ascii_uri(uri: str) -> str:
    """A URI pattern written in Unicode as the ASCII a URI SAN holds: the host's labels (those
    without `*`) as A-labels, the rest percent-encoded (UTF-8)."""
    head = _URI_HEAD.match(uri)
    prefix, rest = (head.group(), uri[head.end() :]) if head else ("", uri)
    if "//" in prefix:
        scheme, _, authority = prefix.partition("//")
        userinfo, at, host_port = authority.rpartition("@")
        host, colon, port = host_port.partition(":")
        labels = []
        for label in host.split("."):
            # A label that is no DNS label stays as written (it matches no valid URI).
            with contextlib.suppress(ValueError):
                label = dns_name(label) if "*" not in label and label else label
            labels.append(label)
        prefix = f"{scheme}//{quote(userinfo + at, safe=_PRINTABLE_ASCII)}"
        prefix += quote(".".join(labels), safe=_PRINTABLE_ASCII) + colon + port
    return prefix + quote(rest, safe=_PRINTABLE_ASCII)


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "nothing"
