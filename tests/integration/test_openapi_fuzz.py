"""Schemathesis against the document the API serves (issue 20): every operation, positive and
negative data, all checks, a bounded number of cases per operation, as the bootstrap product
admin. Any server error, any answer the document does not describe (status, content type,
schema, `Allow`), any valid request refused or invalid one accepted fails the test.

The api is served by a real uvicorn in the session's loop (beside the issuer it talks to) and
the `schemathesis` command runs as a separate process against it. `--seed` makes a failure
reproducible: the failing cases are printed, with a curl command for each. The exceptions
(operations where "a valid request is accepted" cannot be judged from the schema, and why) are
in `schemathesis.toml` beside this file.

Bounds, all overridable: `CERTFORGE_FUZZ_CASES` (5 per operation), `CERTFORGE_FUZZ_SEED` (20),
`CERTFORGE_FUZZ_PHASES` (`examples,fuzzing`; add `coverage` for schemathesis's boundary values,
much slower), `CERTFORGE_FUZZ_LOG` (keep the report at that path).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest
import uvicorn

from harness import Backends

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")
CASES_PER_OPERATION = int(os.environ.get("CERTFORGE_FUZZ_CASES", "5"))
SEED = int(os.environ.get("CERTFORGE_FUZZ_SEED", "20"))


@contextlib.asynccontextmanager
async def _served(app: object) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", log_config=None)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    """Where schemathesis writes (`CERTFORGE_FUZZ_LOG` to keep it), open for the subprocess."""
    path = Path(os.environ.get("CERTFORGE_FUZZ_LOG", tmp_path / "schemathesis.log"))
    with path.open("wb") as out:
        yield path, out


@pytest.mark.timeout(1200)
async def test_the_api_answers_as_its_document_says(
    api_app: object, backends: Backends, tmp_path: Path, log: tuple[Path, IO[bytes]]
) -> None:
    async with _served(api_app) as url:
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/openapi.json",
            "--mode",
            "all",
            "--phases",
            os.environ.get("CERTFORGE_FUZZ_PHASES", "examples,fuzzing"),
            "--max-examples",
            str(CASES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--no-shrink",
            "--continue-on-failure",
            "--request-timeout",
            "30",
            "--header",
            f"Authorization: Bearer {backends.admin_token}",
            "--report-dir",
            str(tmp_path),
            stdout=log[1],
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        )
        await process.wait()
    text = await asyncio.to_thread(log[0].read_text, errors="replace")
    assert process.returncode == 0, text[-30000:]
