"""Small process helpers shared by the embedded servers and the supervisor.

Everything here exists so that a dev stack killed hard (SIGKILL, a closed terminal, a crashed
test run) does not leave servers behind that block the next run: children ask the kernel to
signal them when we die, and leftovers from an earlier run are recognised by their pid file and
command line and stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "ManagedProcess",
    "die_with_parent",
    "pid_alive",
    "process_cmdline",
    "read_pid_file",
    "stop_process",
    "tail",
]

_logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when the process that started it dies.

    Without it, a supervisor killed with SIGKILL leaves NATS and the services running and holding
    their ports and data directories. Linux only (prctl); elsewhere returns None (no preexec).
    Note the kernel ties this to the *thread* that forked, so start children from a thread that
    lives as long as the process (the main thread in our CLI).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    parent = os.getpid()

    def _preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # The parent may have died between fork and prctl; then no signal would ever come.
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return _preexec


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Field 3 is the state; "Z" is a zombie that merely waits to be reaped.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_cmdline(pid: int) -> list[str] | None:
    """The command line of `pid` from /proc, or None when unknown (gone, or not Linux)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid_file(path: Path) -> int | None:
    """The pid on the first line of a pid file, or None if missing or unreadable."""
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def stop_process(pid: int, *, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to a process we did not start (no Popen handle), escalate to SIGKILL after
    `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def tail(path: Path, lines: int = 30) -> str:
    """Last `lines` lines of a log file, for error messages that explain a failed start."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A server process we started and must stop: its URL, pid and an idempotent `stop()`."""

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        *,
        url: str,
        port: int,
        log_path: Path,
        stop_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.url = url
        self.port = port
        self.log_path = log_path
        self._popen = popen
        self._stop_timeout = stop_timeout

    @property
    def pid(self) -> int:
        return self._popen.pid

    def running(self) -> bool:
        return self._popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit on its own; returns its exit code."""
        return self._popen.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, wait up to the stop timeout, then SIGKILL. Safe to call twice."""
        if self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(self._stop_timeout)
        except subprocess.TimeoutExpired:
            _logger.warning("%s did not stop in %.0f s, killing it", self.name, self._stop_timeout)
            self._popen.kill()
            self._popen.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} url={self.url}>"
