"""A second api replica in the test process (issue 17): its own app, pools, NATS connection and
caches, built from the same settings as the session's `api_app`, so tests can act on one
replica and check the other."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

ClientFor = Callable[[str | None], httpx.AsyncClient]


@contextlib.asynccontextmanager
async def api_replica() -> AsyncIterator[tuple[Any, ClientFor]]:
    """(the app, `client_for(token)` on it), running until the block ends."""
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    app = create_app(ApiSettings.load())
    transport = httpx.ASGITransport(app=app)
    made: list[httpx.AsyncClient] = []

    def client_for(token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        made.append(
            httpx.AsyncClient(
                transport=transport, base_url="http://replica-b.test", headers=headers, timeout=60
            )
        )
        return made[-1]

    async with app.router.lifespan_context(app):
        try:
            yield app, client_for
        finally:
            for client in made:
                await client.aclose()
