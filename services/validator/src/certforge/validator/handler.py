"""The consumer's handler: one `ValidateChallenge` command at a time (the consumer runs up to
`concurrency` of them at once, each settled when it ends).

A command for a challenge that is missing, belongs to another application, or is no longer
`processing` is acknowledged without any check: it was decided already (a redelivery), or it
can never be. A database failure naks the command for a later retry; a check never fails the
handler, since every failure of the requester's side is a verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from nats.aio.msg import Msg
from pydantic import ValidationError

from certforge.common.acme import Status
from certforge.common.consumer import ACK, TERM, Settlement, nak
from certforge.common.contracts.commands import ValidateChallenge
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.subjects import Subjects
from certforge.common.db.engine import SessionFactory
from certforge.validator import store
from certforge.validator.checks import validate
from certforge.validator.context import Network

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class Validations:
    def __init__(
        self,
        sessions: SessionFactory,
        subjects: Subjects,
        network: Network,
        *,
        after_commit: Callable[[], None],
        clock: Clock = _now,
    ) -> None:
        self._sessions = sessions
        self._subjects = subjects
        self._network = network
        self._after_commit = after_commit
        self._clock = clock

    async def handle(self, messages: list[Msg]) -> list[Settlement]:
        return [await self._one(msg) for msg in messages]

    async def _one(self, msg: Msg) -> Settlement:
        try:
            command = CloudEvent[ValidateChallenge].model_validate_json(msg.data).data
        except ValidationError:
            log.error("unreadable validation command on %s: dropped", msg.subject)
            return TERM
        try:
            loaded = await store.load(self._sessions, command.challenge_id)
        except Exception:
            log.exception("loading challenge %s failed; retrying later", command.challenge_id)
            return nak(5.0)
        if loaded is None or loaded.application_id != command.application_id:
            log.warning(
                "challenge %s not found (for this application): dropped", command.challenge_id
            )
            return ACK
        if loaded.status != Status.PROCESSING:
            return ACK  # decided already: a redelivery changes nothing
        failure = await validate(loaded.challenge, self._network)
        error = None if failure is None else failure.problem(loaded.challenge.identifier_document)
        try:
            event = await store.record(self._sessions, self._subjects, loaded, error, self._clock())
        except Exception:
            log.exception(
                "recording the verdict on challenge %s failed; retrying later", loaded.challenge_id
            )
            return nak(5.0)
        if event is not None:
            self._after_commit()
            log.info(
                "challenge %s (%s %s) is %s%s",
                loaded.challenge_id,
                loaded.challenge.type,
                loaded.challenge.identifier,
                event.status,
                "" if failure is None else f": {failure.detail}",
            )
        return ACK
