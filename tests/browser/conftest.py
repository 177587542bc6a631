"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
uvicorn serving the api on a free port (with the session's real issuer behind it).

One browser and one server for the whole session, so the suite stays quick. Without a Chromium
on the machine every browser test is skipped, saying why (CI installs Debian's `chromium`).
`playwright install` is never needed: Playwright drives the system browser by its path.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from harness import Backends

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """`CERTFORGE_TEST_CHROMIUM`, else Debian's `chromium` on the PATH."""
    configured = os.environ.get("CERTFORGE_TEST_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium here: `apt-get install chromium` (or set CERTFORGE_TEST_CHROMIUM)")
    return path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def console_url(
    chromium: str, backends: Backends, env_for: None, issuer: object
) -> AsyncIterator[str]:
    """The api under a real uvicorn on a free loopback port. The Request dialog does not wait
    for the certificate (`ui_request_wait_seconds=0`), so every request shows its pending page
    and the tests see it update itself."""
    import uvicorn

    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    app = create_app(ApiSettings.load(ui_request_wait_seconds=0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(600):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api(console_url: str, backends: Backends) -> AsyncIterator[httpx.AsyncClient]:
    """The product admin's API client of the same server, to set the scene."""
    async with httpx.AsyncClient(
        base_url=console_url,
        headers={"Authorization": f"Bearer {backends.admin_token}"},
        timeout=30,
    ) as client:
        yield client
