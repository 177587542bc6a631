"""Webhook destination: an HTTPS POST of a CloudEvents 1.0 JSON document per change, signed.

Signature header (what receivers verify, with the shared secret):

    Certforge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

Signing the timestamp with the body lets a receiver refuse replays (reject old `t`). The
private key is sent only when the sync explicitly enables `include_private_key`.
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

from certforge.common.destinations.webhook import WEBHOOK, WebhookCredentials, WebhookSettings
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncItem,
    TransientSyncError,
)

SIGNATURE_HEADER = "Certforge-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
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
        if self.settings.include_private_key and item.private_key_pem is not None:
            data["private_key"] = item.private_key_pem
        await self._send("io.certforge.sync.certificate.pushed.v1", str(item.lineage_id), data)
        return str(self.settings.url)

    async def remove(self, item: SyncItem, external_id: str) -> None:
        data = {
            "name": item.name,
            "certificate_id": str(item.certificate_id),
            "lineage_id": str(item.lineage_id),
            "serial_number": item.serial_number,
        }
        await self._send("io.certforge.sync.certificate.removed.v1", str(item.lineage_id), data)

    async def check(self) -> None:
        await self._send("io.certforge.sync.ping.v1", None, {})

    async def close(self) -> None:
        await self._client.aclose()

    async def _send(self, event_type: str, subject: str | None, data: dict[str, Any]) -> None:
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/certforge/syncer",
            "type": event_type,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
        if subject:
            event["subject"] = subject
        body = orjson.dumps(event)
        secret = self.credentials.hmac_secret.get_secret_value().encode()
        headers = {
            "Content-Type": "application/cloudevents+json",
            SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        }
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
