"""dns-01 (RFC 8555 §8.4): a TXT record at `_acme-challenge.<domain>` equal to
base64url(SHA-256(key authorization)). For a wildcard the domain is its base (RFC 8555 §7.1.3:
the authorization's identifier already is). Other TXT records may sit beside it (several
challenges at once, or an old one): any equal record passes."""

from __future__ import annotations

from certforge.common.acme import DNS01_LABEL, ErrorType, dns01_txt_value
from certforge.validator.context import Challenge, Network
from certforge.validator.failures import ValidationFailure, quoted

SHOWN_RECORDS = 3


def record_name(identifier: str) -> str:
    base = identifier[2:] if identifier.startswith("*.") else identifier
    return f"{DNS01_LABEL}.{base.rstrip('.')}"


async def check(challenge: Challenge, network: Network) -> None:
    name = record_name(challenge.identifier)
    expected = dns01_txt_value(challenge.key_authorization)
    values = await network.resolver.txt(name)
    if expected in values:
        return
    shown = ", ".join(quoted(value, 64) for value in values[:SHOWN_RECORDS])
    more = f" and {len(values) - SHOWN_RECORDS} more" if len(values) > SHOWN_RECORDS else ""
    raise ValidationFailure(
        ErrorType.INCORRECT_RESPONSE,
        f"Incorrect TXT record at {name}: expected {quoted(expected)}, found {shown}{more}",
    )
