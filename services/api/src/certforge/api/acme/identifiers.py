"""Order identifiers (RFC 8555 §7.1.4, RFC 8738) and whether the profile may certify them.

Pure: a newOrder's identifiers are read, normalised (DNS names in lower-case A-label form,
IP addresses in their canonical text) and judged by the same policy and CA name-constraint
rules as any API request, so an order the issuer would refuse is refused when it is created,
with one subproblem per identifier at fault.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from certforge.api.acme.errors import AcmeProblem, malformed
from certforge.common.acme import ErrorType, IdentifierType, problem
from certforge.common.domain import KeyAlgorithm, SanType
from certforge.common.issuance import ProfileDefaults
from certforge.common.name_constraint_rules import name_violations
from certforge.common.name_constraints import NameConstraints
from certforge.common.policy import PolicyDocument, evaluate
from certforge.common.template import MAX_SANS, CertificateTemplate, San

MAX_IDENTIFIERS = MAX_SANS


@dataclass(frozen=True)
class Identifier:
    """One identifier as the order names it (`*.example.com` for a wildcard)."""

    type: IdentifierType
    value: str

    @property
    def wildcard(self) -> bool:
        return self.value.startswith("*.")

    @property
    def base(self) -> str:
        """What the authorization proves: the name without its wildcard label (§7.1.4)."""
        return self.value.removeprefix("*.")

    def json(self) -> dict[str, str]:
        return {"type": self.type.value, "value": self.value}

    def san(self) -> San:
        return San(
            type=SanType.DNS if self.type is IdentifierType.DNS else SanType.IP, value=self.value
        )


def parse(raw: object) -> list[Identifier]:
    """The identifiers of a newOrder, normalised and de-duplicated, in the order given.

    Malformed for the wrong shape; one subproblem per identifier otherwise: unsupportedIdentifier
    for types other than dns and ip, rejectedIdentifier for values that are no name or address.
    """
    if not isinstance(raw, list) or not raw:
        raise malformed("'identifiers' must be a non-empty list")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem(
            ErrorType.REJECTED_IDENTIFIER, f"an order has at most {MAX_IDENTIFIERS} identifiers"
        )
    found: dict[Identifier, None] = {}
    subproblems: list[dict[str, Any]] = []
    unsupported = False
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("value"), str)
        ):
            raise malformed("each identifier must be an object with string 'type' and 'value'")
        kind, value = item["type"], item["value"]
        shown = {"type": kind[:16], "value": value[:255]}
        if kind not in (IdentifierType.DNS, IdentifierType.IP):
            unsupported = True
            subproblems.append(
                problem(
                    ErrorType.UNSUPPORTED_IDENTIFIER,
                    f"identifier type {kind[:16]!r} is not supported (dns and ip are)",
                    identifier=shown,
                )
            )
            continue
        try:
            identifier = normalise(IdentifierType(kind), value)
        except ValueError as exc:
            subproblems.append(
                problem(ErrorType.REJECTED_IDENTIFIER, str(exc)[:300], identifier=shown)
            )
            continue
        found[identifier] = None
    if subproblems:
        only_unsupported = unsupported and all(
            s["type"] == ErrorType.UNSUPPORTED_IDENTIFIER.urn for s in subproblems
        )
        error = (
            ErrorType.UNSUPPORTED_IDENTIFIER if only_unsupported else ErrorType.REJECTED_IDENTIFIER
        )
        raise AcmeProblem(error, _summary(subproblems), subproblems=subproblems)
    return list(found)


def normalise(kind: IdentifierType, value: str) -> Identifier:
    """An identifier's canonical form, or ValueError saying why it is none."""
    if kind is IdentifierType.IP:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value[:64]!r} is not an IP address") from None
        return Identifier(kind, str(address))
    if not value.isascii():
        raise ValueError(f"{value[:64]!r}: DNS identifiers must be in A-label (punycode) form")
    try:
        san = San(type=SanType.DNS, value=value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(message) from None
    if san.value != value.lower().rstrip("."):
        raise ValueError(f"{value[:64]!r} is not in its canonical A-label form")
    return Identifier(kind, san.value)


def rejected(
    identifiers: Sequence[Identifier],
    policy: PolicyDocument,
    policy_name: str,
    chain: Sequence[NameConstraints],
    defaults: ProfileDefaults,
    now: datetime,
) -> list[dict[str, Any]]:
    """One rejectedIdentifier subproblem per identifier the policy or the CA chain's name
    constraints refuse. Only the names are judged here: the key, the subject and the validity
    come with the CSR at finalize, where the whole certificate is checked again."""
    template = CertificateTemplate(
        sans=[i.san() for i in identifiers],
        key_algorithm=defaults.key_algorithm or KeyAlgorithm.EC_P256,
        not_before=now,
        not_after=now + defaults.ttl,
    )
    reasons: dict[int, list[str]] = {}
    general: list[str] = []
    for violation in [
        *evaluate(policy, template, policy_name=policy_name),
        *name_violations(template, chain),
    ]:
        parts = violation.field.split(".")
        if parts[0] == "sans" and len(parts) > 1 and parts[1].isdigit():
            reasons.setdefault(int(parts[1]), []).append(violation.message)
        elif violation.field == "sans":
            general.append(violation.message)
    subproblems = [
        problem(
            ErrorType.REJECTED_IDENTIFIER, "; ".join(messages), identifier=identifiers[i].json()
        )
        for i, messages in sorted(reasons.items())
    ]
    if general and not subproblems:
        raise AcmeProblem(ErrorType.REJECTED_IDENTIFIER, "; ".join(general))
    return subproblems


def _summary(subproblems: list[dict[str, Any]]) -> str:
    count = len(subproblems)
    first = subproblems[0]["detail"]
    return f"{count} identifier{'' if count == 1 else 's'} refused: {first}" + (
        f" (and {count - 1} more)" if count > 1 else ""
    )
