"""The API in-process (ASGI transport, lifespan run) against the real backends and issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest_asyncio

from harness import Backends

ClientFor = Callable[[str | None], httpx.AsyncClient]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api_app(backends: Backends, env_for: None, issuer: object) -> AsyncIterator[object]:
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    app = create_app(ApiSettings.load())
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client_for(api_app: object) -> AsyncIterator[ClientFor]:
    """`client_for(token)`: an HTTP client of the in-process API, authenticated with `token`."""
    transport = httpx.ASGITransport(app=api_app)  # type: ignore[arg-type]
    made: list[httpx.AsyncClient] = []

    def make(token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.AsyncClient(
            transport=transport, base_url="http://certforge.test", headers=headers
        )
        made.append(c)
        return c

    yield make
    for c in made:
        await c.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def anonymous(client_for: ClientFor) -> httpx.AsyncClient:
    return client_for(None)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin(client_for: ClientFor, backends: Backends) -> httpx.AsyncClient:
    """Authenticated as the bootstrap product admin."""
    return client_for(backends.admin_token)
