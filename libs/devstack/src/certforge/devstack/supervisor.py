"""A tiny process supervisor: run the services side by side in one terminal, like production
runs them side by side in pods.

Each child's output is forwarded line by line with its name in front (`[issuer] ...`), so one
terminal shows the whole flow of a request through api → issuer → syncer.

A child that exits on its own while the stack runs is restarted after a backoff (1 s, doubling
up to 30 s), with a line saying so, as a process manager (Kubernetes, systemd) would restart it:
the stack a developer is using keeps working after one service crashed or was killed, and the
crash stays visible above. A child that keeps crashing right after each start is a bug or a
misconfiguration, not bad luck: after `RestartPolicy.max_quick_crashes` in a row the others are
stopped and the supervisor exits non-zero instead of looping. So is the death of a vital
process that cannot simply be restarted (the embedded NATS and PostgreSQL, `watch`): their
data and ports belong to the whole stack, and every service would fail without them.
Without a policy (`restart=None`) the group lives and dies as one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self, TextIO

from certforge.devstack.process import die_with_parent

__all__ = ["Child", "ProcessGroup", "RestartPolicy", "describe_exit"]


def describe_exit(returncode: int) -> str:
    """`exited with code 3` or `was killed by SIGKILL` (Popen reports signals as negative codes)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child that exited on its own.

    A child that ran at least `stable_seconds` crashed by bad luck: it is restarted after
    `first_delay`. One that dies sooner crashed again: the delay doubles (up to `max_delay`),
    and after `max_quick_crashes` quick crashes in a row the supervisor gives up.
    """

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_seconds: float = 30.0
    max_quick_crashes: int = 5

    def delay(self, quick_crashes: int) -> float | None:
        """Seconds to wait before the next start after `quick_crashes` crashes in a row
        (counting this one), or None to give up."""
        if quick_crashes > self.max_quick_crashes:
            return None
        return float(min(self.first_delay * 2 ** max(quick_crashes - 1, 0), self.max_delay))


@dataclass
class Child:
    """One supervised process, the thread that forwards its output, and how to start it again."""

    name: str
    popen: subprocess.Popen[bytes]
    pump: threading.Thread = field(repr=False)
    argv: list[str] = field(default_factory=list, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    cwd: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    quick_crashes: int = 0


class ProcessGroup:
    """Start named children, forward their output, stop them all together.

    Typical use (from the main thread):

        with ProcessGroup() as group, group.handle_signals():
            group.start("issuer", ["certforge-issuer"], env=env)
            exit_code = group.supervise()
    """

    def __init__(
        self,
        *,
        stop_timeout: float = 10.0,
        output: TextIO | None = None,
        restart: RestartPolicy | None = None,
    ) -> None:
        self.stop_timeout = stop_timeout
        self.restart_policy = restart
        self._output = output
        self._children: list[Child] = []
        self._vital: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._width = len("devstack")  # our own lines use this name

    # --- output -------------------------------------------------------------------------------

    def write(self, name: str, line: str) -> None:
        """Write one line prefixed with `[name]`, never interleaved with another child's line."""
        out = self._output or sys.stdout
        with self._lock:
            out.write(f"{f'[{name}]':<{self._width + 2}} {line.rstrip()}\n")
            out.flush()

    def write_block(self, text: str) -> None:
        """Write text as it is (no prefix), e.g. a banner, without splitting children's lines."""
        out = self._output or sys.stdout
        with self._lock:
            out.write(text if text.endswith("\n") else text + "\n")
            out.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self.write(name, raw.decode(errors="replace"))

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def children(self) -> list[Child]:
        return list(self._children)

    def start(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a child with stdout and stderr merged into our prefixed output.

        `env` is the child's whole environment (default: ours). Python children get
        PYTHONUNBUFFERED so their logs show up as they happen, not when a pipe buffer fills.
        Each child gets its own process group, so a terminal Ctrl-C reaches only us and the
        shutdown order stays ours; it also receives SIGTERM if we die without cleaning up.
        """
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        self._width = max(self._width, len(name))
        popen, pump = self._spawn(name, [str(a) for a in argv], child_env, cwd)
        self._children.append(Child(name, popen, pump, [str(a) for a in argv], child_env, cwd))
        return popen

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None
    ) -> tuple[subprocess.Popen[bytes], threading.Thread]:
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(),
        )
        assert popen.stdout is not None
        pump = threading.Thread(
            target=self._pump, args=(name, popen.stdout), name=f"pump-{name}", daemon=True
        )
        pump.start()
        return popen, pump

    def restart(self, child: Child) -> None:
        """Start `child` again as it was first started (same command, environment, directory)."""
        child.pump.join(timeout=1.0)
        child.popen, child.pump = self._spawn(child.name, child.argv, child.env, child.cwd)
        child.started_at = time.monotonic()

    def watch(self, name: str, running: Callable[[], bool]) -> None:
        """Stop everything when `running()` turns false: a process the stack cannot do
        without and the group cannot restart (the embedded NATS or PostgreSQL)."""
        self._vital[name] = running

    def _vital_dead(self) -> str | None:
        return next((name for name, running in self._vital.items() if not running()), None)

    def exited(self) -> Child | None:
        """The first child that has exited, if any."""
        for child in self._children:
            if child.popen.poll() is not None:
                return child
        return None

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def request_stop(self) -> None:
        """Ask `wait()`/`supervise()` to return; safe from signal handlers and other threads."""
        self._stop_requested.set()

    def wait(self, timeout: float | None = None, poll_interval: float = 0.2) -> Child | None:
        """Block until a child exits (returned), a stop is requested or `timeout` passes (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            child = self.exited()
            if child is not None:
                return child
            if self._stop_requested.is_set() or self._vital_dead() is not None:
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._stop_requested.wait(
                poll_interval if remaining is None else min(poll_interval, remaining)
            )

    def stop(self) -> None:
        """SIGTERM every child still running, give them `stop_timeout` seconds together, then
        SIGKILL the rest. Idempotent."""
        running = [c for c in self._children if c.popen.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.popen.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            try:
                child.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.write(
                    "devstack",
                    f"{child.name} did not stop in {self.stop_timeout:.0f} s, killing it",
                )
                child.popen.kill()
                child.popen.wait()
        for child in self._children:
            # The pipe closes when the child exits; a grandchild holding it must not hang us.
            child.pump.join(timeout=1.0)

    def supervise(self) -> int:
        """Run until a stop is requested (signal), restarting children that exit on their own
        as the restart policy says; then stop all.

        Returns 0 after a requested stop, 1 when a child kept crashing (or, without a policy,
        died once) or a watched process died, with a message naming it, so `make run` fails
        visibly instead of running a half-dead stack.
        """
        while True:
            child = self.wait()
            if self._stop_requested.is_set():
                break
            vital = self._vital_dead()
            if vital is not None:
                self.write("devstack", f"{vital} exited unexpectedly; stopping the services")
                self.stop()
                return 1
            assert child is not None
            if not self._restart_later(child):
                self.stop()
                return 1
        self.stop()
        return 0

    def _restart_later(self, child: Child) -> bool:
        """Restart `child` after its backoff delay (cut short by a stop request); False when
        the policy says to give up."""
        assert child.popen.returncode is not None
        how = describe_exit(child.popen.returncode)
        policy = self.restart_policy
        ran = time.monotonic() - child.started_at
        if policy is not None:
            child.quick_crashes = 1 if ran >= policy.stable_seconds else child.quick_crashes + 1
        delay = None if policy is None else policy.delay(child.quick_crashes)
        if delay is None:
            again = f" {child.quick_crashes} times in a row" if child.quick_crashes else ""
            self.write(
                "devstack", f"{child.name} {how} unexpectedly{again}; stopping the other services"
            )
            return False
        self.write(
            "devstack",
            f"{child.name} {how} unexpectedly after {ran:.0f} s; restarting it in {delay:g} s",
        )
        if self._stop_requested.wait(delay):
            return True
        self.restart(child)
        self.write("devstack", f"restarted {child.name} (pid {child.popen.pid})")
        return True

    @contextlib.contextmanager
    def handle_signals(
        self, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
    ) -> Iterator[None]:
        """Turn SIGINT/SIGTERM into `request_stop()` while inside the block (main thread only);
        previous handlers come back afterwards."""

        def _handler(signum: int, frame: FrameType | None) -> None:
            if not self._stop_requested.is_set():
                self.write("devstack", f"{signal.Signals(signum).name} received, stopping")
            self.request_stop()

        previous = {sig: signal.signal(sig, _handler) for sig in signals}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
