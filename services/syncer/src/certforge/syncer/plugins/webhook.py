"""Webhook destination: an HTTPS POST of a CloudEvents 1.0 JSON document per change, signed.

Signed per Standard Webhooks (https://www.standardwebhooks.com), with the `standardwebhooks`
package, so a receiver verifies with that specification's libraries in any language:

    webhook-id: <the CloudEvent id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

The key is `destinations.webhook.signing_key(secret)`; a receiver gives its verifier
`standard_secret(secret)` (`whsec_…`). Signing the id and the timestamp with the body lets a
receiver refuse replays (old timestamps) and duplicates (an id seen before): the id is the same
on every retry of one push or removal of one certificate.

Until the next release, the header of earlier releases is also sent unless the sync turns
`legacy_signature` off:

    Certforge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The private key is sent only when the sync explicitly enables `include_private_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from certforge.common.destinations.webhook import (
    WEBHOOK,
    WebhookCredentials,
    WebhookSettings,
    signing_key,
)
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncItem,
    TransientSyncError,
)

SIGNATURE_HEADER = "Certforge-Signature"
"""The header of earlier releases (deprecated; sent while the sync's `legacy_signature` is on)."""

PUSHED = "io.certforge.sync.certificate.pushed.v1"
REMOVED = "io.certforge.sync.certificate.removed.v1"
PING = "io.certforge.sync.ping.v1"
_IDS = uuid.UUID("0b7f3f47-6a53-4d5e-9c1e-5f0d2c8e4a11")
"""Namespace of the ids of pushes and removals (uuid5 over type and certificate)."""


def message_id(event_type: str, certificate_id: uuid.UUID | None) -> str:
    """The same id for every attempt at one change, so a receiver can drop duplicates
    (Standard Webhooks: `webhook-id` is stable across retries); a ping gets a new one."""
    if certificate_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_IDS, f"{event_type}/{certificate_id}"))


def standard_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of `body`."""
    signature = Webhook(key).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The legacy `Certforge-Signature` value."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (used by the tests): check the signature and the timestamp."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, timestamp, body)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, header)


class WebhookDestination(Destination[WebhookSettings, WebhookCredentials]):
    spec = WEBHOOK
    label = "webhook"
    needs_private_key = False

    def __init__(
        self, settings: WebhookSettings, credentials: WebhookCredentials, *, development: bool
    ) -> None:
        super().__init__(settings, credentials, development=development)
        self._client = httpx.AsyncClient(timeout=settings.timeout_seconds)

    def wants_private_key(self) -> bool:
        return self.settings.include_private_key

    async def push(self, item: SyncItem) -> str:
        data: dict[str, Any] = {
            "name": item.name,
            "certificate_id": str(item.certificate_id),
            "lineage_id": str(item.lineage_id),
            "application": item.application,
            "profile": item.profile,
            "common_name": item.common_name,
            "serial_number": item.serial_number,
            "not_after": item.not_after.isoformat(),
            "certificate": item.certificate_pem,
            "chain": item.chain_pem,
            "metadata": item.metadata,
        }
        if item.trust_bundle_pem:
            data["trust_bundle"] = item.trust_bundle_pem
        if self.settings.include_private_key and item.private_key_pem is not None:
            data["private_key"] = item.private_key_pem
        await self._send(PUSHED, item, data)
        return str(self.settings.url)

    async def remove(self, item: SyncItem, external_id: str) -> None:
        data = {
            "name": item.name,
            "certificate_id": str(item.certificate_id),
            "lineage_id": str(item.lineage_id),
            "serial_number": item.serial_number,
        }
        await self._send(REMOVED, item, data)

    async def check(self) -> None:
        await self._send(PING, None, {})

    async def close(self) -> None:
        await self._client.aclose()

    async def _send(self, event_type: str, item: SyncItem | None, data: dict[str, Any]) -> None:
        msg_id = message_id(event_type, item.certificate_id if item else None)
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": msg_id,
            "source": "/certforge/syncer",
            "type": event_type,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
        if item is not None:
            event["subject"] = str(item.lineage_id)
        body = orjson.dumps(event)
        secret = self.credentials.hmac_secret.get_secret_value()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/cloudevents+json",
            **standard_headers(signing_key(secret), msg_id, timestamp, body),
        }
        if self.settings.legacy_signature:
            headers[SIGNATURE_HEADER] = sign(secret.encode(), timestamp, body)
        try:
            response = await self._client.post(
                str(self.settings.url), content=body, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise TransientSyncError(
                f"webhook timed out after {self.settings.timeout_seconds}s"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientSyncError(f"webhook unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if status < 300:
            return
        message = f"webhook answered {status}"
        if status in (408, 425, 429) or status >= 500:
            raise TransientSyncError(message)
        raise PermanentSyncError(message)
