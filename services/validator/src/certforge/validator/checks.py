"""One validation: the check of the challenge's type, retried after connection-level failures,
then the verdict (None when valid, else the failure)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from certforge.common.acme import ChallengeType, ErrorType
from certforge.common.backoff import backoff_delay
from certforge.validator import dns01, http01, tls_alpn01
from certforge.validator.context import Challenge, Network
from certforge.validator.failures import ValidationFailure

log = logging.getLogger(__name__)

Check = Callable[[Challenge, Network], Awaitable[None]]

CHECKS: dict[str, Check] = {
    ChallengeType.HTTP_01: http01.check,
    ChallengeType.DNS_01: dns01.check,
    ChallengeType.TLS_ALPN_01: tls_alpn01.check,
}


async def validate(
    challenge: Challenge,
    network: Network,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ValidationFailure | None:
    """Check `challenge`; None when it passed. Only transient failures are tried again,
    `retries` times, with jittered exponential waits between tries."""
    check = CHECKS.get(challenge.type)
    if check is None:  # the api offers no other type; a row written by hand might
        return ValidationFailure(
            ErrorType.MALFORMED, f"Unsupported challenge type {challenge.type!r}"
        )
    settings = network.settings
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(settings.attempt_timeout_seconds):
                await check(challenge, network)
            return None
        except TimeoutError:
            failure = ValidationFailure(
                ErrorType.CONNECTION,
                f"{challenge.type} for {challenge.identifier} took longer than "
                f"{settings.attempt_timeout_seconds:g} s",
                transient=True,
            )
        except ValidationFailure as exc:
            failure = exc
        except Exception:
            # A bug, not the requester's doing: a verdict all the same, or the command would
            # be redelivered (and fail) forever. The trace goes to the log, not to the client.
            log.exception("%s for %s failed", challenge.type, challenge.identifier)
            return ValidationFailure(
                ErrorType.SERVER_INTERNAL,
                f"The validator failed while checking this {challenge.type} challenge",
            )
        if not failure.transient or attempt > settings.retries:
            return failure
        delay = backoff_delay(
            attempt, base=settings.retry_base_seconds, cap=settings.retry_base_seconds * 8
        )
        log.info(
            "%s for %s: %s; trying again in %.1f s",
            challenge.type,
            challenge.identifier,
            failure.detail,
            delay,
        )
        await sleep(delay)
