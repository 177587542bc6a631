"""What every channel shares: the failure kinds and the HTTP status rule.

A transient failure (a peer down, 5xx, 429, a timeout) is retried with backoff; a permanent one
(the peer refused the request itself: 4xx) fails the delivery at once, since repeating the same
request gets the same answer. Messages are cut to one length and never hold a secret: a peer's
answer is quoted, the URL is not (a Slack URL is the credential).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import httpx

from certforge.notifier.alert import Alert

PEER_MESSAGE_LIMIT = 300


class ChannelError(Exception):
    """A delivery failed; `str()` is safe to store and show."""


class TransientChannelError(ChannelError):
    pass


class PermanentChannelError(ChannelError):
    pass


class Sender(Protocol):
    """One configured channel of one rule."""

    async def send(self, alert: Alert, now: datetime) -> None: ...


def check_response(response: httpx.Response, what: str) -> None:
    """Raise the failure kind an HTTP answer means; return on 2xx."""
    if response.is_success:
        return
    body = response.text[:PEER_MESSAGE_LIMIT].strip()
    message = f"{what} answered {response.status_code}" + (f": {body}" if body else "")
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        raise TransientChannelError(message)
    raise PermanentChannelError(message)


async def post_json(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], what: str
) -> None:
    """POST and judge the answer; network failures are transient, and their message names the
    kind of failure only (an exception's text may quote the URL)."""
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        raise TransientChannelError(f"{what} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise TransientChannelError(f"{what} unreachable ({type(exc).__name__})") from exc
    check_response(response, what)
