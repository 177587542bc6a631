"""Writing a certificate's files atomically, all of them or none.

A server reloading mid-update must never read a new certificate with the old key, half a key,
or a key readable by the wrong user. So the files of one certificate are installed in two
phases:

1. stage: each file is written to a temporary file in its own directory (same file system,
   so the rename below is atomic), its owner, group and mode are set *before* a single byte of
   content is written (a key is never readable by others, not even as a temporary file), and
   its data is fsynced. Any failure here removes every temporary file: nothing changed.
2. commit: every temporary file is renamed over its target, then each directory is fsynced so
   the renames survive a power cut.

Staging is where everything that can fail fails (a full disk, a read-only file system, a
missing directory, a refused chown); renames in one directory of one file system do not.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class WriteError(Exception):
    """An output could not be written; `str()` names the path and the reason, one line."""


@dataclass(frozen=True)
class Output:
    path: Path
    data: bytes
    mode: int
    uid: int = -1
    gid: int = -1


@dataclass
class _Staged:
    output: Output
    temp: Path


def install(outputs: list[Output]) -> None:
    """Write every output atomically, all or none (see the module docstring)."""
    staged: list[_Staged] = []
    try:
        for output in outputs:
            staged.append(_Staged(output, _stage(output)))
    except BaseException:
        for item in staged:
            with contextlib.suppress(OSError):
                item.temp.unlink()
        raise
    for item in staged:
        os.replace(item.temp, item.output.path)
    for directory in {item.output.path.parent for item in staged}:
        _fsync_dir(directory)


def _stage(output: Output) -> Path:
    path = output.path
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    temp = Path(name)
    try:
        try:
            # mkstemp made it 0600 and ours; owner and mode are final before any content.
            if output.uid != -1 or output.gid != -1:
                os.fchown(fd, output.uid, output.gid)
            os.fchmod(fd, output.mode)
            view = memoryview(output.data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if path.is_dir():
            raise WriteError(f"cannot write {path}: it is a directory")
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_one(path: Path, data: bytes, mode: int = 0o600) -> None:
    """One file, atomically (the agent's state file)."""
    install([Output(path, data, mode)])
