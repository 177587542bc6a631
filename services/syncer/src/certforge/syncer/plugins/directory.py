"""Directory destination: `cert.pem`, `chain.pem`, `fullchain.pem`, `key.pem` (and
`trust-bundle.pem` when the sync includes the trust bundle) in
`<path>/<name>/`, each written atomically (temporary file, fsync, rename), the key with mode
0600, so a reader never sees half a file or a key readable by others."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from certforge.common.destinations.directory import DIRECTORY, DirectorySettings
from certforge.common.destinations.spec import NoCredentials
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncItem,
    TransientSyncError,
)


class DirectoryDestination(Destination[DirectorySettings, NoCredentials]):
    spec = DIRECTORY
    label = "directory"
    needs_private_key = False

    def _folder(self, name: str) -> Path:
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise PermanentSyncError(f"{name!r} is not a valid directory name")
        return Path(self.settings.path) / name

    async def push(self, item: SyncItem) -> str:
        folder = self._folder(item.name)
        files = {
            "cert.pem": (item.certificate_pem, 0o644),
            "chain.pem": (item.chain_pem, 0o644),
            "fullchain.pem": (item.fullchain_pem, 0o644),
        }
        if item.private_key_pem is not None:
            files["key.pem"] = (item.private_key_pem, 0o600)
        if item.trust_bundle_pem:
            files["trust-bundle.pem"] = (item.trust_bundle_pem, 0o644)
        await self.run_blocking(lambda: _write_all(folder, files), action=f"write {folder}")
        return str(folder)

    async def remove(self, item: SyncItem, external_id: str) -> None:
        folder = self._folder(item.name)
        await self.run_blocking(lambda: shutil.rmtree(folder, True), action=f"delete {folder}")

    async def check(self) -> None:
        root = Path(self.settings.path)
        await self.run_blocking(lambda: _check_writable(root), action=f"check {root}")


def _check_writable(root: Path) -> None:
    if not root.is_dir():
        raise PermanentSyncError(f"{root} is not a directory")
    if not os.access(root, os.W_OK | os.X_OK):
        raise PermanentSyncError(f"{root} is not writable by the syncer")


def _write_all(folder: Path, files: dict[str, tuple[str, int]]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        for name, (content, mode) in files.items():
            _write_atomically(folder / name, content, mode)
    except PermissionError as exc:
        raise PermanentSyncError(f"cannot write {folder}: permission denied") from exc
    except OSError as exc:
        raise TransientSyncError(f"cannot write {folder}: {exc.strerror}") from exc


def _write_atomically(target: Path, content: str, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
