"""NATS handlers of the issuer. Thin: decode, call the service, encode the outcome. Commands
are routes of the `CommandRouter` (`consumer.py`), which settles their messages.

Request/reply handlers always answer, with the result or a typed error, so the api never waits
for a timeout because of bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import orjson
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from certforge.common.contracts.commands import (
    IssueCertificate,
    RenewCertificate,
    RevokeCertificate,
)
from certforge.common.contracts.rpc import (
    CAReply,
    CreateCA,
    CrossSignCA,
    ImportCA,
    RolloverCA,
    RpcError,
    RpcReply,
)
from certforge.common.errors import CertforgeError, InvalidInput
from certforge.common.runtime import Worker
from certforge.issuer.cas import CAService
from certforge.issuer.consumer import CommandRoute
from certforge.issuer.issuing import IssuanceService
from certforge.issuer.revocation import RevocationPublisher
from certforge.issuer.rollover import RolloverService

log = logging.getLogger(__name__)

QUEUE = "certforge-issuer"
CommandT = TypeVar("CommandT", bound=BaseModel)


def register_ca_handlers(worker: Worker, service: CAService) -> None:
    subjects = worker.subjects

    @worker.broker.subscriber(subjects.rpc_ca_create, queue=QUEUE, title="ca.create")
    async def on_create_ca(body: dict[str, Any]) -> RpcReply[CAReply]:
        """Generate a CA key, sign the CA certificate, store both (key encrypted)."""
        return await _answer(CreateCA, body, service.create)

    @worker.broker.subscriber(subjects.rpc_ca_import, queue=QUEUE, title="ca.import")
    async def on_import_ca(body: dict[str, Any]) -> RpcReply[CAReply]:
        """Store an external CA certificate and its key (encrypted)."""
        return await _answer(ImportCA, body, service.import_external)


def register_rollover_handlers(worker: Worker, service: RolloverService) -> None:
    subjects = worker.subjects

    @worker.broker.subscriber(subjects.rpc_ca_rollover, queue=QUEUE, title="ca.rollover")
    async def on_rollover_ca(body: dict[str, Any]) -> RpcReply[CAReply]:
        """Renew or rekey a CA: store its successor (same subject and parent)."""
        return await _answer(RolloverCA, body, service.rollover)

    @worker.broker.subscriber(subjects.rpc_ca_cross_sign, queue=QUEUE, title="ca.cross_sign")
    async def on_cross_sign_ca(body: dict[str, Any]) -> RpcReply[CAReply]:
        """Sign a CA's subject and key with a second CA of ours."""
        return await _answer(CrossSignCA, body, service.cross_sign)


async def _answer(
    model: type[CommandT],
    body: dict[str, Any],
    action: Callable[[CommandT], Awaitable[CAReply]],
) -> RpcReply[CAReply]:
    try:
        command = model.model_validate(body)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
        ]
        return RpcReply(error=RpcError(code=InvalidInput.code, detail="bad command", errors=fields))
    try:
        return RpcReply(result=await action(command))
    except CertforgeError as exc:
        return RpcReply(error=RpcError.of(exc))
    except Exception:
        log.exception("CA operation %s failed", model.__name__)
        return RpcReply(error=RpcError(code=CertforgeError.code, detail="the issuer failed"))


def request_route(
    service: IssuanceService, model: type[IssueCertificate | RenewCertificate]
) -> CommandRoute[tuple[UUID, dict[str, str]]]:
    """`<ns>.cmd.issue` and `<ns>.cmd.renew`: sign the batch's requests in one transaction,
    each continuing the trace of its command (its NATS headers)."""

    def decode(msg: Msg) -> tuple[UUID, dict[str, str]]:
        return _command(msg, model).request_id, dict(msg.headers or {})

    async def act(requests: list[tuple[UUID, dict[str, str]]]) -> None:
        await service.issue([request_id for request_id, _ in requests], traces=dict(requests))

    return CommandRoute(decode, act)


def revoke_route(publisher: RevocationPublisher) -> CommandRoute[UUID]:
    """`<ns>.cmd.revoke`: the api has recorded the revocation; mark the CAs' CRLs dirty and
    rebuild soon (coalesced: one rebuild serves every revocation that arrived meanwhile)."""

    def decode(msg: Msg) -> UUID:
        return _command(msg, RevokeCertificate).certificate_id

    return CommandRoute(decode, publisher.mark_dirty)


def _command(msg: Msg, model: type[CommandT]) -> CommandT:
    """The command in a CloudEvents envelope; raises one of `consumer.UNDECODABLE` when the
    message is not one."""
    return model.model_validate(orjson.loads(msg.data)["data"])
