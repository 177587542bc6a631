"""Files the CLI writes: certificate sets all or nothing with the key 0600, and the login
config 0600 in a 0700 directory, written atomically."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from certforge.cli import config
from certforge.cli.files import check_writable_dir, write_atomically


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_set_is_written_with_its_modes(tmp_path: Path) -> None:
    write_atomically([(tmp_path / "a.pem", b"cert", 0o644), (tmp_path / "a.key", b"key", 0o600)])

    assert (tmp_path / "a.key").read_bytes() == b"key"
    assert mode(tmp_path / "a.key") == 0o600
    assert mode(tmp_path / "a.pem") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key", "a.pem"]


def test_a_failure_halfway_leaves_the_old_files_and_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_bytes(b"old cert")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("file")

    with pytest.raises(OSError, match="Not a directory"):
        write_atomically(
            [(tmp_path / "a.pem", b"new cert", 0o644), (blocked / "a.key", b"key", 0o600)]
        )

    assert (tmp_path / "a.pem").read_bytes() == b"old cert"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pem", "not-a-dir"]


def test_writable_dir_is_created(tmp_path: Path) -> None:
    assert check_writable_dir(tmp_path / "x" / "y") is None
    assert (tmp_path / "x" / "y").is_dir()


def test_a_path_under_a_file_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")

    problem = check_writable_dir(tmp_path / "f" / "tls")

    assert problem == f"cannot create {tmp_path / 'f' / 'tls'}: Not a directory"


def test_login_is_saved_0600_and_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cfg" / "config.json"
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    monkeypatch.delenv(config.URL_ENV, raising=False)
    monkeypatch.delenv(config.TOKEN_ENV, raising=False)

    config.save(config.Credentials("http://a.test", "cf_secret"))

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert json.loads(path.read_text()) == {"url": "http://a.test", "token": "cf_secret"}
    assert config.resolve(None, None) == config.Credentials("http://a.test", "cf_secret")
    monkeypatch.setenv(config.TOKEN_ENV, "cf_env")
    assert config.resolve(None, None).token == "cf_env"
    assert config.resolve("http://b.test", "cf_opt") == config.Credentials(
        "http://b.test", "cf_opt"
    )


def test_nothing_saved_means_log_in_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "missing.json"))
    monkeypatch.delenv(config.URL_ENV, raising=False)
    monkeypatch.delenv(config.TOKEN_ENV, raising=False)

    with pytest.raises(config.NotConfigured, match="certforge login"):
        config.resolve(None, None)
