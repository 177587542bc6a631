"""`make run` keeps running when a service crashes (issue 20, defect 7): the supervisor restarts
it after a backoff and says so; a service that keeps crashing, or the death of the embedded NATS
or PostgreSQL, still stops the stack with a message.

The last test runs the real `certforge-dev run` against this session's PostgreSQL server (its
own database) and NATS (its own namespace), kills the issuer with SIGKILL and has
`certforge-dev demo` issue a certificate through the restarted one.
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certforge.devstack.ports import free_port
from certforge.devstack.postgres import create_database, drop_database
from certforge.devstack.process import pid_alive, process_cmdline
from certforge.devstack.supervisor import ProcessGroup, RestartPolicy
from harness import Backends, delete_namespace

pytestmark = [pytest.mark.integration, pytest.mark.system, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("crashes", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, None)],
    ids=["ok/first", "ok/doubles", "ok/doubles-again", "ok/last-try", "fail/gives-up"],
)
def test_restart_delay_doubles_then_gives_up(crashes: int, expected: float | None) -> None:
    assert RestartPolicy(first_delay=1, max_delay=30, max_quick_crashes=5).delay(crashes) == (
        expected
    )


def test_restart_delay_is_capped() -> None:
    assert RestartPolicy(first_delay=1, max_delay=3, max_quick_crashes=9).delay(8) == 3


SUPERVISOR = textwrap.dedent(
    """
    import sys
    from certforge.devstack.supervisor import ProcessGroup, RestartPolicy

    child = "import os, time; print('ready', os.getpid(), flush=True); time.sleep(60)"
    policy = RestartPolicy(first_delay=0.1, stable_seconds=30, max_quick_crashes=3)
    with ProcessGroup(stop_timeout=5, restart=policy) as group, group.handle_signals():
        for name in ("one", "two"):
            group.start(name, [sys.executable, "-c", child])
        sys.exit(group.supervise())
    """
)


def _ready_pid(line: str) -> tuple[str, int] | None:
    prefix, _, rest = line.partition(" ready ")
    return (prefix.strip(), int(rest)) if rest else None


def test_a_killed_child_is_restarted_and_said_so() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        pids: dict[str, int] = {}
        while len(pids) < 2:
            line = proc.stdout.readline()
            assert line, "supervisor ended before its children were ready"
            if ready := _ready_pid(line):
                pids[ready[0]] = ready[1]
        os.kill(pids["[one]"], signal.SIGKILL)
        said = []
        while True:
            line = proc.stdout.readline()
            assert line, f"supervisor ended: {said}"
            said.append(line)
            if ready := _ready_pid(line):
                assert ready[0] == "[one]"
                new_pid = ready[1]
                break
        assert new_pid != pids["[one]"]
        assert pid_alive(pids["[two]"]), "the other child was stopped"
        text = "".join(said)
        assert "one was killed by SIGKILL unexpectedly" in text
        assert "restarting it in 0.1 s" in text
        assert f"restarted one (pid {new_pid})" in text
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        assert proc.wait(15) == 0
    assert not pid_alive(new_pid)
    assert not pid_alive(pids["[two]"])


def test_a_child_that_keeps_crashing_stops_the_group() -> None:
    out = io.StringIO()
    policy = RestartPolicy(first_delay=0.05, stable_seconds=30, max_quick_crashes=2)
    with ProcessGroup(stop_timeout=2, output=out, restart=policy) as group:
        calm = group.start("calm", [sys.executable, "-c", "import time; time.sleep(60)"])
        group.start("crasher", [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"])
        assert group.supervise() == 1
    assert calm.returncode is not None
    text = out.getvalue()
    assert text.count("restarting it in") == 2
    assert "crasher exited with code 3 unexpectedly 3 times in a row" in text


def test_a_dead_vital_process_stops_the_group() -> None:
    out = io.StringIO()
    alive = threading.Event()
    alive.set()
    with ProcessGroup(stop_timeout=2, output=out, restart=RestartPolicy()) as group:
        calm = group.start("calm", [sys.executable, "-c", "import time; time.sleep(60)"])
        group.watch("the embedded NATS server", alive.is_set)
        threading.Timer(0.3, alive.clear).start()
        assert group.supervise() == 1
    assert calm.returncode is not None
    assert "the embedded NATS server exited unexpectedly" in out.getvalue()


# --- the real dev stack ------------------------------------------------------------------------


class _Lines:
    """The dev stack's output, read by a thread, searchable while it runs."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: io.TextIOBase) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, fragment: str, timeout: float, start: int = 0) -> int:
        """Index of the first line from `start` containing `fragment`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    if fragment in self.lines[i]:
                        return i
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {fragment!r} in:\n{''.join(self.lines[-60:])}"
                self._cond.wait(remaining)


@pytest.fixture
def dev_env(backends: Backends, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`certforge-dev run` on this session's servers: its own database and NATS namespace,
    free ports, a fresh state directory."""
    name = f"cf_dev_{secrets.token_hex(4)}"
    namespace = f"d{secrets.token_hex(4)}"
    url = asyncio.run(create_database(backends.server_url, name))
    ports = [free_port() for _ in range(4)]
    env = {
        **os.environ,
        "CERTFORGE_DATABASE_URL": url,
        "CERTFORGE_NATS_URL": backends.nats_url,
        "CERTFORGE_NATS__NAMESPACE": namespace,
        "CERTFORGE_STATE_DIR": str(tmp_path / "state"),
        "CERTFORGE_API_PORT": str(ports[0]),
        "CERTFORGE_API_TLS_PORT": str(ports[1]),
        "CERTFORGE_VALIDATOR__HTTP01_PORT": str(ports[2]),
        "CERTFORGE_VALIDATOR__TLS_ALPN01_PORT": str(ports[3]),
        "NO_COLOR": "1",
    }
    for variable in ("CERTFORGE_BOOTSTRAP_TOKEN", "CERTFORGE_CA_KEKS", "CERTFORGE_LEAF_KEKS"):
        env.pop(variable, None)
    try:
        yield env
    finally:
        asyncio.run(drop_database(backends.server_url, name))
        asyncio.run(delete_namespace(backends.nats_url, namespace))


def _child_pid(parent: int, executable: str) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        cmdline = process_cmdline(int(entry.name)) or []
        if ppid == parent and any(part.endswith(executable) for part in cmdline):
            return int(entry.name)
    raise AssertionError(f"no {executable} under {parent}")


def test_make_run_restarts_a_killed_issuer_that_then_issues(dev_env: dict[str, str]) -> None:
    with subprocess.Popen(
        [str(BIN / "certforge-dev"), "run"],
        env=dev_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as stack:
        assert stack.stdout is not None
        output = _Lines(stack.stdout)
        try:
            ready = output.wait_for("make demo", timeout=150)
            issuer = _child_pid(stack.pid, "certforge-issuer")
            os.kill(issuer, signal.SIGKILL)
            said = output.wait_for("issuer was killed by SIGKILL unexpectedly", 30, ready)
            assert "restarting it in 1 s" in output.lines[said]
            output.wait_for("restarted issuer", 30, said)
            assert stack.poll() is None, "the stack stopped"
            demo = subprocess.run(
                [str(BIN / "certforge-dev"), "demo"],
                env=dev_env,
                capture_output=True,
                text=True,
                timeout=90,
            )
            assert demo.returncode == 0, demo.stdout + demo.stderr
            assert _child_pid(stack.pid, "certforge-issuer") != issuer
        finally:
            stack.send_signal(signal.SIGTERM)
            stack.wait(60)
