"""A tiny process supervisor: run the services side by side in one terminal, like production
runs them side by side in pods.

Each child's output is forwarded line by line with its name in front (`[issuer] ...`), so one
terminal shows the whole flow of a request through api → issuer → syncer. The group lives and
dies as one: a child that exits on its own is a bug or a misconfiguration the developer must see,
so the others are stopped and the supervisor exits non-zero instead of limping on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self, TextIO

from certforge.devstack.process import die_with_parent

__all__ = ["Child", "ProcessGroup", "describe_exit"]


def describe_exit(returncode: int) -> str:
    """`exited with code 3` or `was killed by SIGKILL` (Popen reports signals as negative codes)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


@dataclass
class Child:
    """One supervised process and the thread that forwards its output."""

    name: str
    popen: subprocess.Popen[bytes]
    pump: threading.Thread = field(repr=False)


class ProcessGroup:
    """Start named children, forward their output, stop them all together.

    Typical use (from the main thread):

        with ProcessGroup() as group, group.handle_signals():
            group.start("issuer", ["certforge-issuer"], env=env)
            exit_code = group.supervise()
    """

    def __init__(self, *, stop_timeout: float = 10.0, output: TextIO | None = None) -> None:
        self.stop_timeout = stop_timeout
        self._output = output
        self._children: list[Child] = []
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
        popen = subprocess.Popen(
            [str(a) for a in argv],
            env=child_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent(),
        )
        assert popen.stdout is not None
        self._width = max(self._width, len(name))
        pump = threading.Thread(
            target=self._pump, args=(name, popen.stdout), name=f"pump-{name}", daemon=True
        )
        pump.start()
        self._children.append(Child(name, popen, pump))
        return popen

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
            if self._stop_requested.is_set():
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
        """Wait until a stop is requested (signal) or a child exits on its own, then stop all.

        Returns 0 after a requested stop, 1 when a child died unexpectedly (with a message naming
        it), so `make run` fails visibly instead of running a half-dead stack.
        """
        child = self.wait()
        if child is not None and not self._stop_requested.is_set():
            assert child.popen.returncode is not None
            self.write(
                "devstack",
                f"{child.name} {describe_exit(child.popen.returncode)} unexpectedly; "
                "stopping the other services",
            )
            self.stop()
            return 1
        self.stop()
        return 0

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
