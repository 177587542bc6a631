"""The agent's file installs: all or none, modes and owners final before any content, no
temporary file left behind; and its retry delays (full jitter, capped)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from certforge.cli.agent import files
from certforge.cli.agent.files import Output, WriteError, install
from certforge.cli.agent.runner import backoff_delay


def test_install_writes_every_file_with_its_mode(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("old")
    install(
        [
            Output(tmp_path / "cert.pem", b"CERT", 0o644),
            Output(tmp_path / "key.pem", b"KEY", 0o600, uid=0, gid=0),
        ]
    )
    assert (tmp_path / "cert.pem").read_bytes() == b"CERT"
    assert (tmp_path / "key.pem").read_bytes() == b"KEY"
    assert stat.S_IMODE((tmp_path / "cert.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_one_bad_output_writes_none(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("old cert")
    (tmp_path / "key.pem").mkdir()
    with pytest.raises(WriteError, match=r"cannot write .*/key.pem: it is a directory"):
        install(
            [
                Output(tmp_path / "cert.pem", b"new cert", 0o644),
                Output(tmp_path / "chain.pem", b"chain", 0o644),
                Output(tmp_path / "key.pem", b"KEY", 0o600),
            ]
        )
    assert (tmp_path / "cert.pem").read_text() == "old cert"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WriteError) as caught:
        install([Output(tmp_path / "gone" / "key.pem", b"KEY", 0o600)])
    assert str(caught.value) == f"cannot write {tmp_path}/gone/key.pem: No such file or directory"


def test_key_is_never_readable_by_others_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watch the temporary file at the moment its content is written: its final mode (here a
    group-readable key, 0640) is already set, and it was never wider (mkstemp makes 0600)."""
    seen: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", spy)
    install([Output(tmp_path / "key.pem", b"K" * 100_000, 0o640)])
    assert seen
    assert set(seen) == {0o640}


def test_readers_see_old_or_new_never_half(tmp_path: Path) -> None:
    """A reader racing the installs reads a whole old or a whole new file, never a mix."""
    target = tmp_path / "key.pem"
    old, new = b"A" * 200_000, b"B" * 200_000
    install([Output(target, old, 0o600)])
    stop = threading.Event()
    reads: list[bytes] = []

    def reader() -> None:
        while not stop.is_set():
            reads.append(target.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            install([Output(target, new if i % 2 == 0 else old, 0o600)])
    finally:
        stop.set()
        thread.join()
    assert reads
    assert set(reads) <= {old, new}


@pytest.mark.parametrize("failures", [1, 2, 5, 30])
def test_backoff_is_jittered_and_capped(failures: int) -> None:
    delays = [backoff_delay(failures, 1.0, 60.0) for _ in range(500)]
    ceiling = min(60.0, 2.0 ** (failures - 1))
    assert all(0.1 <= d <= max(ceiling, 0.1) for d in delays)
    if ceiling >= 2:
        assert len({round(d, 3) for d in delays}) > 100, "jittered, not in step"
        assert max(delays) > ceiling / 2
