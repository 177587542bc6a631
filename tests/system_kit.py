"""A second Certforge system inside one test: its own database, NATS namespace, key rings, issuer
and api, for the tests that need a system the session's fixtures cannot be (restored from a
backup, running with rotated key rings).

`new_database` makes an empty database on the session's server (migrated or not); `a_system`
runs an issuer and an api on it and yields an admin client. Both are torn down by the caller's
`async with`; `drop` removes the database and the namespace's streams afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from certforge.common.settings import NatsSettings
from certforge.devstack import create_database, drop_database
from harness import Backends, delete_namespace, running


@dataclass
class Place:
    """Where a system lives: a database and a namespace on the session's servers."""

    backends: Backends
    database_url: str
    database_name: str
    namespace: str

    def overrides(self, ca_keks: str, leaf_keks: str) -> dict[str, Any]:
        return {
            "database_url": SecretStr(self.database_url),
            "nats": NatsSettings(namespace=self.namespace),
            "ca_keks": SecretStr(ca_keks),
            "leaf_keks": SecretStr(leaf_keks),
        }


async def new_place(backends: Backends, *, migrated: bool = True) -> Place:
    """An empty database (schema applied when `migrated`) and an unused namespace."""
    import asyncio

    from certforge.common.db.migrations import upgrade

    suffix = secrets.token_hex(4)
    name = f"cf_sys_{suffix}"
    url = await create_database(backends.server_url, name)
    if migrated:
        await asyncio.to_thread(upgrade, url)
    return Place(backends, url, name, f"s{suffix}")


async def drop(place: Place) -> None:
    await drop_database(place.backends.server_url, place.database_name)
    await delete_namespace(place.backends.nats_url, place.namespace)


@dataclass
class System:
    place: Place
    admin: httpx.AsyncClient
    issuer: Any
    api_app: Any


@contextlib.asynccontextmanager
async def a_system(place: Place, *, ca_keks: str, leaf_keks: str) -> AsyncIterator[System]:
    """The issuer and the api of `place`, running in this process, with these key rings. The
    session's bootstrap token is this system's product admin too."""
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings
    from certforge.issuer.main import build
    from certforge.issuer.settings import IssuerSettings

    overrides = place.overrides(ca_keks, leaf_keks)
    worker = build(IssuerSettings.load(**overrides))
    async with running(worker):
        api_overrides = {k: v for k, v in overrides.items() if k != "ca_keks"}
        app = create_app(ApiSettings.load(**api_overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://certforge.test",
                headers={"Authorization": f"Bearer {place.backends.admin_token}"},
            ) as admin:
                yield System(place, admin, worker, app)
