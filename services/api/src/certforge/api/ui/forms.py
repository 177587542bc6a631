"""Form fields to API bodies, and back: pure functions, no rule of the API repeated.

The console's forms are plain HTML (they work without JavaScript), so lists and maps arrive as
text: SANs one per line, metadata as `key=value` lines. These functions only translate that
text into the JSON the API takes; whether a value is allowed is the API's answer, shown beside
the field it names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from certforge.common.domain import SanType

_SAN_TYPES = {t.value for t in SanType}


class FormError(ValueError):
    """Text a form field holds that cannot be turned into the API's shape at all."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def san_of(line: str) -> dict[str, str]:
    """`dns:www.example.com`, or a bare value whose type is plain from its shape
    (`10.0.0.1` an IP, `ops@example.com` an e-mail, `spiffe://...` a URI, else a DNS name)."""
    kind, sep, rest = line.partition(":")
    if sep and kind.strip().lower() in _SAN_TYPES and not rest.startswith("//"):
        return {"type": kind.strip().lower(), "value": rest.strip()}
    value = line.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return {"type": "ip", "value": value}
    if "://" in value:
        return {"type": "uri", "value": value}
    if "@" in value:
        return {"type": "email", "value": value}
    return {"type": "dns", "value": value}


def sans_of(text: str) -> list[dict[str, str]]:
    """One SAN per line (commas also separate); blank lines ignored."""
    items = [part.strip() for line in text.splitlines() for part in line.split(",")]
    return [san_of(item) for item in items if item]


def sans_text(sans: list[Mapping[str, Any]]) -> str:
    return "\n".join(f"{s['type']}:{s['value']}" for s in sans)


def metadata_of(text: str) -> dict[str, str]:
    """`key=value` per line (or comma-separated)."""
    tags: dict[str, str] = {}
    for line in (p.strip() for raw in text.splitlines() for p in raw.split(",")):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormError("metadata", f"{line!r}: write tags as key=value, one per line")
        tags[key.strip()] = value.strip()
    return tags


def metadata_text(tags: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in tags.items())


def certificate_request(form: Mapping[str, str]) -> dict[str, Any]:
    """The Request dialog's fields as a certificate request body. Only the fields of the
    chosen method are sent; empty fields are left out so the profile's defaults apply."""
    method = form.get("method") or "managed"
    body: dict[str, Any] = {"profile": form.get("profile", ""), "method": method}
    if method == "csr":
        body["csr"] = form.get("csr", "")
    else:
        for name in ("common_name", "key_algorithm"):
            if form.get(name, "").strip():
                body[name] = form[name].strip()
        if form.get("sans", "").strip():
            body["sans"] = sans_of(form["sans"])
    if form.get("signature_algorithm", "").strip():
        body["signature_algorithm"] = form["signature_algorithm"].strip()
    if form.get("ttl", "").strip():
        body["ttl"] = form["ttl"].strip()
    if form.get("metadata", "").strip():
        body["metadata"] = metadata_of(form["metadata"])
    return body


def api_enrollment(form: Mapping[str, str]) -> dict[str, Any]:
    """The Configure form of an attached profile: API and ACME enrollment in one body."""
    body: dict[str, Any] = {
        "api": {
            "enabled": form.get("api_enabled") == "on",
            "auto_renew": form.get("auto_renew") == "on",
            "renew_before_days": _integer(form.get("renew_before_days", "")),
        }
    }
    if "acme_present" in form:
        body["acme"] = {
            "enabled": form.get("acme_enabled") == "on",
            "eab_required": form.get("eab_required") == "on",
        }
    return body


def _integer(text: str) -> int | str:
    """An integer, or the text as typed, which the API refuses naming the field."""
    try:
        return int(text.strip())
    except ValueError:
        return text


CHANNEL_TYPES = ("webhook", "slack", "email")


def alert_rule(form: Mapping[str, str]) -> dict[str, Any]:
    """The Settings tab's alert form: one rule with one channel (more through the API).
    A webhook or Slack channel takes a URL (a webhook also its signing secret), an e-mail
    channel addresses (comma-separated)."""
    kind = form.get("channel_type", "")
    target = form.get("target", "").strip()
    channel: dict[str, Any] = {"type": kind}
    if kind == "email":
        channel["to"] = [a.strip() for a in target.split(",") if a.strip()]
    else:
        channel["url"] = target
    if kind == "webhook":
        channel["secret"] = form.get("secret", "").strip()
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "event": form.get("event", ""),
        "channels": [channel],
    }
    if form.get("before", "").strip():
        body["before"] = form["before"].strip()
    return body
