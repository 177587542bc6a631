"""Writing certificate files so that a reader never sees half of one.

Each file is written to a temporary file in its own directory (same filesystem, so the rename is
atomic), with its final mode set before any byte is written (a key is never readable by others,
not even while it is being written), fsynced, and only then renamed over the target. A set of
files (certificate, chain, key) is all written to temporaries first and renamed last, so a
failure halfway (disk full, a directory that is not writable) leaves every old file as it was and
no stray temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["check_writable_dir", "write_atomically"]


def check_writable_dir(directory: Path) -> str | None:
    """Why files cannot be written into `directory` (created if missing), or None if they can."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {directory}: {exc.strerror or exc}"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".certforge-", dir=directory)
    except OSError as exc:
        return f"cannot write into {directory}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None


def write_atomically(files: Sequence[tuple[Path, bytes, int]]) -> None:
    """Write every `(path, content, mode)`, all or (as far as the OS allows) none."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, content, mode in files:
            fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((temporary, path))
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise
    for temporary, path in staged:
        os.replace(temporary, path)
    for directory in {path.parent for _, path in staged}:
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
