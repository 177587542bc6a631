"""NATS handlers of the issuer. Thin: decode, call the service, encode the outcome.

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
from certforge.common.contracts.rpc import CAReply, CreateCA, ImportCA, RpcError, RpcReply
from certforge.common.errors import CertforgeError, InvalidInput
from certforge.common.runtime import Worker
from certforge.issuer.cas import CAService
from certforge.issuer.consumer import Handler
from certforge.issuer.issuing import IssuanceService
from certforge.issuer.revocation import RevocationPublisher

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


def request_handler(
    service: IssuanceService, model: type[IssueCertificate | RenewCertificate]
) -> Handler:
    """`<ns>.cmd.issue` and `<ns>.cmd.renew`: sign the batch's requests in one transaction."""

    async def handle(messages: list[Msg]) -> None:
        request_ids = []
        traces: dict[UUID, dict[str, str]] = {}
        for msg in messages:
            try:
                command = model.model_validate(orjson.loads(msg.data)["data"])
            except (ValueError, KeyError, TypeError):  # ValidationError is a ValueError
                log.error("terminating an undecodable command on %s", msg.subject)
                await msg.term()
                continue
            request_ids.append(command.request_id)
            traces[command.request_id] = dict(msg.headers or {})
        if request_ids:
            await service.issue(request_ids, traces=traces)

    return handle


def revoke_handler(publisher: RevocationPublisher) -> Handler:
    """`<ns>.cmd.revoke`: the api has recorded the revocation; mark the CAs' CRLs dirty and
    rebuild soon (coalesced: one rebuild serves every revocation that arrived meanwhile)."""

    async def handle(messages: list[Msg]) -> None:
        ids = []
        for msg in messages:
            try:
                ids.append(
                    RevokeCertificate.model_validate(orjson.loads(msg.data)["data"]).certificate_id
                )
            except (ValueError, KeyError, TypeError):
                log.error("terminating an undecodable revoke command")
                await msg.term()
        if ids:
            await publisher.mark_dirty(ids)

    return handle
