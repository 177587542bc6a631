"""Fixtures of the end-to-end tests: a state directory and `certforge-dev run` processes on it
(helpers in devrun_kit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from devrun_kit import DevRuns, new_state_dir, remove_state_dir


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = new_state_dir()
    yield path
    remove_state_dir(path)


@pytest.fixture
def dev_runs(state_dir: Path) -> Iterator[DevRuns]:
    """`dev_runs.start(api_port, tls_port)` starts `certforge-dev run` on the state directory;
    every run still alive at the end is stopped (SIGTERM, then SIGKILL)."""
    runs = DevRuns(state_dir)
    yield runs
    runs.stop_all()
