"""Request/reply to the issuer over core NATS, for the few operations that need CA keys
synchronously (creating and importing CAs). Core NATS, not JetStream: nothing is persisted,
so an imported CA key crosses NATS once and is stored only by the issuer, encrypted.

The caller chooses the new CA's id, so a retried request after a lost reply finds the CA the
first attempt created instead of making a second one.
"""

from __future__ import annotations

import orjson
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from certforge.common.contracts.rpc import (
    CAReply,
    CreateCA,
    CrossSignCA,
    ImportCA,
    RolloverCA,
    RpcError,
    RpcReply,
)
from certforge.common.contracts.subjects import Subjects
from certforge.common.errors import ERROR_KINDS, CertforgeError, FieldError, Unavailable


class IssuerClient:
    def __init__(self, nats: NatsClient, subjects: Subjects, timeout: float) -> None:
        self._nats = nats
        self._subjects = subjects
        self._timeout = timeout

    async def create_ca(self, command: CreateCA) -> CAReply:
        return await self._call(self._subjects.rpc_ca_create, command)

    async def import_ca(self, command: ImportCA) -> CAReply:
        return await self._call(self._subjects.rpc_ca_import, command)

    async def rollover_ca(self, command: RolloverCA) -> CAReply:
        return await self._call(self._subjects.rpc_ca_rollover, command)

    async def cross_sign_ca(self, command: CrossSignCA) -> CAReply:
        return await self._call(self._subjects.rpc_ca_cross_sign, command)

    async def _call(
        self, subject: str, command: CreateCA | ImportCA | RolloverCA | CrossSignCA
    ) -> CAReply:
        body = command.wire() if isinstance(command, ImportCA) else command.model_dump(mode="json")
        try:
            message = await self._nats.request(subject, orjson.dumps(body), timeout=self._timeout)
        except NoRespondersError as exc:
            raise Unavailable("the issuer service is not running; try again shortly") from exc
        except NatsTimeoutError as exc:
            raise Unavailable("the issuer service did not answer in time; retry") from exc
        reply = RpcReply[CAReply].model_validate_json(message.data)
        if reply.error is not None:
            raise as_error(reply.error)
        assert reply.result is not None
        return reply.result


def as_error(error: RpcError) -> CertforgeError:
    """The error kind the issuer named, raised here as if the api had refused itself.

    The issuer's own failure (`internal`) or a kind this api does not know (a newer issuer)
    means the issuer could not do it: the caller may retry, so it is `Unavailable`, not a bug
    of the api.
    """
    kind = ERROR_KINDS.get(error.code, CertforgeError)
    if kind is CertforgeError:
        kind = Unavailable
    fields = [FieldError(e["field"], e["message"]) for e in error.errors]
    return kind(detail=error.detail, errors=fields)
