"""The embedded servers and the supervisor behind `make run` and the integration harness.

These start real nats-server and PostgreSQL processes on OS-chosen loopback ports (never the
system ones on 4222/5432) in temporary state directories, and check what a developer relies on:
data survives a restart, a crashed run does not block the next, and Ctrl-C/SIGTERM leaves no
processes behind.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certforge.common.db.pool import plain_url
from certforge.devstack.cli import DevStackError, _api_ports
from certforge.devstack.devtls import _reusable, _write_atomically, tls_files
from certforge.devstack.nats import start_nats
from certforge.devstack.ports import free_port, tcp_reachable, url_reachable
from certforge.devstack.postgres import (
    create_database,
    database_exists,
    drop_database,
    postgres_refusal,
    start_postgres,
)
from certforge.devstack.process import pid_alive, read_pid_file
from certforge.devstack.seed import DevPki
from certforge.devstack.supervisor import ProcessGroup
from harness import Backends

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def short_state_dir() -> Iterator[Path]:
    """A short path under /tmp: keeps the PostgreSQL socket inside it (sun_path limit) and, as
    root, out of the root user's home that the postgres system user cannot traverse."""
    path = Path(tempfile.mkdtemp(prefix="cf-dev-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_url_reachable_understands_our_schemes() -> None:
    port = free_port()
    assert not tcp_reachable("127.0.0.1", port)
    assert not url_reachable(f"nats://127.0.0.1:{port}")
    assert not url_reachable(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x")
    with pytest.raises(ValueError, match="unsupported"):
        url_reachable("http://127.0.0.1:1")
    assert plain_url("postgresql+asyncpg://u@h:1/d?x=1") == "postgresql://u@h:1/d?x=1"


async def test_nats_jetstream_survives_restart(tmp_path: Path) -> None:
    server = start_nats(tmp_path)
    try:
        assert server.port not in (4222,)
        assert url_reachable(server.url)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="DEVSTACK_TEST", subjects=["devstack.test.>"])
        ack = await js.publish("devstack.test.one", b"hello")
        assert ack.seq == 1
        await nc.close()
    finally:
        server.stop()
    assert not server.running()
    assert not url_reachable(server.url)

    again = start_nats(tmp_path)
    try:
        nc = await nats.connect(again.url)
        info = await nc.jetstream().stream_info("DEVSTACK_TEST")
        assert info.state.messages == 1
        await nc.close()
    finally:
        again.stop()


def test_nats_replaces_a_leftover_server(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its nats-server behind (if the parent-death signal did
    not reach it): the next start must stop it rather than fight over the store directory."""
    first = start_nats(tmp_path)
    second = start_nats(tmp_path)  # "forgets" the first, as a crashed CLI would
    try:
        first.wait(5)  # stopped by the second start
        assert url_reachable(second.url)
    finally:
        first.stop()
        second.stop()


async def test_postgres_databases_and_restart(short_state_dir: Path) -> None:
    started = time.monotonic()
    pg = start_postgres(short_state_dir)
    first_start = time.monotonic() - started
    try:
        assert pg.port != 5432
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        assert url_reachable(pg.url)
        assert url_reachable(pg.url.replace("postgresql://", "postgresql+asyncpg://"))

        db_url = await create_database(pg.url, "devstack_keep")
        assert db_url.endswith("/devstack_keep")
        with pytest.raises(RuntimeError, match="already exists"):
            await create_database(pg.url, "devstack_keep")
        assert await create_database(pg.url, "devstack_keep", exist_ok=True) == db_url
        conn = await asyncpg.connect(db_url)
        await conn.execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')")
        encoding = await conn.fetchval("SHOW server_encoding")
        await conn.close()
        assert encoding == "UTF8"

        await create_database(pg.url, "devstack_drop")
        holder = await asyncpg.connect(pg.url_for("devstack_drop"))  # dropped WITH (FORCE)
        await drop_database(pg.url, "devstack_drop")
        await drop_database(pg.url, "devstack_drop")  # missing is fine
        assert not await database_exists(pg.url, "devstack_drop")
        assert holder.is_closed() or not await _alive(holder)
        holder.terminate()
    finally:
        pg.stop()
    assert not url_reachable(pg.url)

    started = time.monotonic()
    again = start_postgres(short_state_dir)
    second_start = time.monotonic() - started
    try:
        conn = await asyncpg.connect(again.url_for("devstack_keep"))
        assert await conn.fetchval("SELECT v FROM t") == "kept"
        await conn.close()
    finally:
        again.stop()
    print(f"embedded PostgreSQL start: first {first_start:.2f} s, second {second_start:.2f} s")


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
        return False
    return True


def test_postgres_starts_after_a_crash(short_state_dir: Path) -> None:
    """Both crash shapes: the CLI died and its server still runs (pg_ctl daemonizes it), and
    the server itself was killed, leaving a stale postmaster.pid."""
    first = start_postgres(short_state_dir)
    leftover_pid = read_pid_file(first.data_dir / "postmaster.pid")
    assert leftover_pid is not None

    second = start_postgres(short_state_dir)  # the first handle was "lost"
    assert not pid_alive(leftover_pid)
    assert url_reachable(second.url)

    postmaster = read_pid_file(second.data_dir / "postmaster.pid")
    assert postmaster is not None
    os.kill(postmaster, signal.SIGKILL)
    third = start_postgres(short_state_dir)
    try:
        assert url_reachable(third.url)
    finally:
        third.stop()
    assert not (third.data_dir / "postmaster.pid").exists()


SUPERVISOR = textwrap.dedent(
    """
    import sys
    from certforge.devstack.supervisor import ProcessGroup

    child = "import os, time; print('ready', os.getpid(), flush=True); time.sleep(60)"
    with ProcessGroup(stop_timeout=5) as group, group.handle_signals():
        for name in ("one", "two"):
            group.start(name, [sys.executable, "-c", child])
        sys.exit(group.supervise())
    """
)


def test_process_group_stops_children_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        pids: dict[str, int] = {}
        while len(pids) < 2:
            line = proc.stdout.readline()
            assert line, "supervisor ended before its children were ready"
            prefix, _, rest = line.partition(" ready ")
            if rest:
                pids[prefix.strip()] = int(rest)
        assert set(pids) == {"[one]", "[two]"}

        proc.send_signal(signal.SIGTERM)
        rest_of_output = proc.stdout.read()
        assert proc.wait(15) == 0
    assert "SIGTERM received" in rest_of_output
    for pid in pids.values():
        assert not pid_alive(pid)


def test_process_group_fails_when_a_child_dies(capsys: pytest.CaptureFixture[str]) -> None:
    group = ProcessGroup(stop_timeout=0.5)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    with group:
        survivor = group.start("stubborn", [sys.executable, "-c", stubborn])
        group.start("crasher", [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"])
        time.sleep(0.3)  # let the stubborn child install its SIGTERM handler
        assert group.supervise() == 1
    assert survivor.returncode == -signal.SIGKILL  # ignored SIGTERM, killed after the timeout
    out = capsys.readouterr().out
    assert "[crasher]  bye" in out
    assert "crasher exited with code 3 unexpectedly" in out
    assert "stubborn did not stop" in out


async def test_postgres_refusal_names_why_a_server_cannot_host_tests(backends: Backends) -> None:
    """The harness starts an embedded PostgreSQL, with a note, when the one on the port answers
    but refuses us: no such role, or a role that may not create the test databases."""
    assert await postgres_refusal(backends.server_url) is None

    def as_user(user: str) -> str:
        parts = urlsplit(backends.server_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{user}@{host}"))

    missing = f"cf_no_role_{secrets.token_hex(4)}"
    assert missing in (await postgres_refusal(as_user(missing)) or "")

    limited = f"cf_nocreatedb_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(plain_url(backends.server_url))
    try:
        await conn.execute(f"CREATE ROLE {limited} LOGIN NOCREATEDB")
        assert "CREATEDB" in (await postgres_refusal(as_user(limited)) or "")
    finally:
        await conn.execute(f"DROP ROLE IF EXISTS {limited}")
        await conn.close()


# --- make run's HTTPS server certificate (devstack.devtls) ---------------------------------------


def _ca_and_leaf(
    not_after: datetime, ips: tuple[str, ...] = ("127.0.0.1", "::1")
) -> tuple[str, bytes, bytes]:
    """An issuing CA's PEM, and a leaf it signed (PEM) with its key (PEM), for `ips` and
    certforge.localhost."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dev Issuing")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName("certforge.localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certforge.localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        ca.public_bytes(serialization.Encoding.PEM).decode(),
        leaf.public_bytes(serialization.Encoding.PEM),
        key_pem,
    )


@pytest.mark.parametrize(
    "case",
    [
        "ok/valid-for-weeks",
        "fail/expires-within-a-day",
        "fail/key-of-another-certificate",
        "fail/another-ca",
        "fail/without-::1",
        "fail/no-files",
        "fail/garbage",
    ],
)
def test_make_run_reuses_its_server_certificate_only_while_usable(
    tmp_path: Path, case: str
) -> None:
    """A restart keeps the HTTPS certificate on disk only if the server could present it for
    more than a day to clients that trust the current development CA; anything else (expiring,
    a torn write of key and certificate, a CA made anew, a name missing, no files) is issued
    again."""
    now = datetime.now(UTC)
    not_after = now + (
        timedelta(hours=20) if case == "fail/expires-within-a-day" else timedelta(days=30)
    )
    ips = ("127.0.0.1",) if case == "fail/without-::1" else ("127.0.0.1", "::1")
    ca_pem, leaf_pem, key_pem = _ca_and_leaf(not_after, ips)
    files = tls_files(tmp_path)
    if case != "fail/no-files":
        files.certificate.write_bytes(leaf_pem)
        files.key.write_bytes(key_pem)
    if case == "fail/key-of-another-certificate":
        files.key.write_bytes(_ca_and_leaf(not_after)[2])
    if case == "fail/another-ca":
        ca_pem = _ca_and_leaf(not_after)[0]
    if case == "fail/garbage":
        files.certificate.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    pki = DevPki(root_id="r", root_pem=ca_pem, issuing_id="i", issuing_pem=ca_pem)
    assert _reusable(files, pki, now) is case.startswith("ok/")


def test_make_run_writes_the_key_0600_from_the_start(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    _write_atomically(files.key, b"secret", 0o600)
    _write_atomically(files.key, b"replaced", 0o600)  # over an existing file: still 0600
    assert files.key.read_bytes() == b"replaced"
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert [p.name for p in files.directory.iterdir()] == ["server.key"], "no temporary left"


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({}, None),
        ({"CERTFORGE_API_TLS_PORT": "9443"}, None),
        ({"CERTFORGE_API_TLS_PORT": "https"}, "CERTFORGE_API_TLS_PORT='https' is not a TCP port"),
        ({"CERTFORGE_API_TLS_PORT": "70000"}, "is not a TCP port (1-65535)"),
        ({"CERTFORGE_API_PORT": "8443"}, "CERTFORGE_API_PORT and CERTFORGE_API_TLS_PORT are both"),
    ],
)
def test_make_run_reads_its_two_api_ports(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], error: str | None
) -> None:
    monkeypatch.delenv("CERTFORGE_API_PORT", raising=False)
    monkeypatch.delenv("CERTFORGE_API_TLS_PORT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if error is None:
        assert _api_ports() == (8080, int(env.get("CERTFORGE_API_TLS_PORT", "8443")))
    else:
        with pytest.raises(DevStackError) as raised:
            _api_ports()
        assert error in str(raised.value)
