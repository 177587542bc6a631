"""`certforge-dev`: the developer entry point behind `make run`.

`certforge-dev run` brings up the whole platform on one machine with nothing installed but the
venv: an embedded NATS (JetStream) and PostgreSQL under a state directory, generated development
secrets, the database schema, and the services with their output interleaved in one terminal.
Once the api answers, it sets up the development PKI through the REST API (`seed`) and serves
the api a second time over HTTPS with a server certificate from it (`devtls`), because ACME
clients expect an https directory. Everything it creates lives in the state directory (default
`./.certforge`), so a reset is `rm -rf .certforge`, and a second run picks up the same data,
keys, token and server certificate.
Existing servers can be used instead via `CERTFORGE_NATS_URL` / `CERTFORGE_DATABASE_URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

from certforge.devstack.errors import DevStackError
from certforge.devstack.nats import start_nats
from certforge.devstack.ports import free_port, tcp_reachable, url_reachable
from certforge.devstack.postgres import create_database, start_postgres
from certforge.devstack.supervisor import ProcessGroup, RestartPolicy, describe_exit

__all__ = [
    "SERVICES",
    "DevStackError",
    "ensure_bootstrap_token",
    "ensure_keyring",
    "main",
    "resolve_state_dir",
    "service_executable",
]

_logger = logging.getLogger("certforge.devstack")

SERVICES = ("api", "issuer", "renewer", "syncer", "validator", "notifier")
DEV_DATABASE = "certforge"
DEFAULT_API_PORT = 8080
DEFAULT_API_TLS_PORT = 8443
# Where the validator reaches ACME clients on this machine (Pebble's ports): unprivileged, so
# `certbot --standalone --http-01-port 5002` runs without root. The developer's own wins.
DEV_VALIDATOR_PORTS = {
    "CERTFORGE_VALIDATOR__HTTP01_PORT": "5002",
    "CERTFORGE_VALIDATOR__TLS_ALPN01_PORT": "5001",
}
HEALTH_TIMEOUT = 60.0
_KEK_BYTES = 32


# --- state and secrets ----------------------------------------------------------------------


def resolve_state_dir() -> Path:
    """`CERTFORGE_STATE_DIR` or `./.certforge`, absolute, created with mode 0700.

    As root the embedded PostgreSQL runs as another user that must traverse this directory, so
    starting it adds group/other read+execute here; the secrets stay in a 0700 subdirectory.
    """
    state_dir = Path(os.environ.get("CERTFORGE_STATE_DIR", ".certforge")).expanduser().resolve()
    if not state_dir.exists():
        state_dir.mkdir(mode=0o700, parents=True)
    return state_dir


def _write_secret(path: Path, value: str) -> None:
    """Create `path` with mode 0600 from the start (no window where it is world-readable);
    O_EXCL so two racing first runs cannot both write different keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def _secrets_dir(state_dir: Path) -> Path:
    directory = state_dir / "secrets"
    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    return directory


def _check_keyring(value: str, source: str) -> str:
    for item in value.split(","):
        kid, sep, b64 = item.strip().partition(":")
        try:
            ok = bool(sep and kid) and len(base64.b64decode(b64, validate=True)) == _KEK_BYTES
        except ValueError:
            ok = False
        if not ok:
            raise DevStackError(
                f"{source} is not a key ring `kid:base64(32 bytes)[,kid:…]`; "
                "fix it or delete it to have a new one generated"
            )
    return value


def ensure_keyring(state_dir: Path, name: str) -> str:
    """Read `<state_dir>/secrets/<name>`, generating it on first use.

    Format `kid:base64(32 random bytes)`, the same `kid:key[,kid:key…]` ring the services take
    in production, with a dated kid (`dev-YYYYMMDD`) so a later rotation has a different one.
    Reused on every later run: regenerating would make existing encrypted keys unreadable.
    """
    path = _secrets_dir(state_dir) / name
    if not path.exists():
        kid = f"dev-{datetime.now(UTC):%Y%m%d}"
        key = base64.b64encode(secrets.token_bytes(_KEK_BYTES)).decode()
        with contextlib.suppress(FileExistsError):
            _write_secret(path, f"{kid}:{key}")
    path.chmod(0o600)
    return _check_keyring(path.read_text().strip(), str(path))


def ensure_bootstrap_token(state_dir: Path) -> str:
    """The first admin's bearer token: `CERTFORGE_BOOTSTRAP_TOKEN` if set (nothing is written),
    else `<state_dir>/secrets/bootstrap_token`, generated once as `cf_` + 43 url-safe chars."""
    from_env = os.environ.get("CERTFORGE_BOOTSTRAP_TOKEN")
    if from_env:
        return from_env
    path = _secrets_dir(state_dir) / "bootstrap_token"
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            _write_secret(path, "cf_" + secrets.token_urlsafe(32))
    path.chmod(0o600)
    token = path.read_text().strip()
    if not token:
        raise DevStackError(f"{path} is empty; delete it to have a new token generated")
    return token


# --- services -------------------------------------------------------------------------------


def service_executable(service: str) -> Path:
    """The `certforge-<service>` console script next to our interpreter (the venv), else PATH."""
    name = f"certforge-{service}"
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DevStackError(f"{name} not found next to {sys.executable} or on PATH; run `uv sync`")


def _run_migrations(database_url: str) -> None:
    try:
        from certforge.common.db.migrations import upgrade  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("certforge.common.db"):
            raise
        _logger.warning("certforge.common.db.migrations is not available; skipping migrations")
        return
    started = time.monotonic()
    upgrade(database_url)
    _logger.info("database schema up to date (%.1f s)", time.monotonic() - started)


def _healthy(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(  # noqa: S310 - our own URL
            url, timeout=1.0, context=context
        ) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class _Stopping(Exception):
    """Ctrl-C arrived while the dev stack was still setting up: unwind to a clean stop."""


def _check_alive(group: ProcessGroup) -> None:
    """Raise when Ctrl-C arrived or a service died: a dead worker must not get a banner."""
    if group.stop_requested:
        raise _Stopping
    _raise_if_one_exited(group)


def _raise_if_one_exited(group: ProcessGroup) -> None:
    child = group.exited()
    if child is not None:
        assert child.popen.returncode is not None
        raise DevStackError(
            f"{child.name} {describe_exit(child.popen.returncode)} during start-up "
            "(see its output above)"
        )


def _pause_in(group: ProcessGroup) -> Callable[[float], None]:
    """The set-up's pause between attempts, cut short by Ctrl-C or a dying service."""

    def pause(seconds: float) -> None:
        _check_alive(group)
        group.wait(timeout=seconds)
        _check_alive(group)

    return pause


def _wait_healthy(
    group: ProcessGroup, url: str, timeout: float, context: ssl.SSLContext | None = None
) -> None:
    """Poll `url` until 200, but give up at once if a service dies or Ctrl-C arrives."""
    deadline = time.monotonic() + timeout
    while True:
        if group.stop_requested:
            return
        # Before asking the API: a worker that already died must not get a "ready" banner.
        _raise_if_one_exited(group)
        if _healthy(url, context):
            return
        if time.monotonic() > deadline:
            raise DevStackError(f"{url} did not answer 200 within {timeout:.0f} s")
        group.wait(timeout=0.25)


def _redact(url: str) -> str:
    """The URL without its password (or NATS token), for printing."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
    elif parts.username is not None and parts.scheme in ("nats", "tls"):
        netloc = f"***@{parts.hostname}"  # a NATS token sits where a user name would
    else:
        return url
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class _Acme:
    """What the banner says about HTTPS and ACME."""

    https: str
    directory: str
    ca_file: Path
    http01_port: str


def _banner(
    *, api: str, token: str, state_dir: Path, nats_url: str, database_url: str, acme: _Acme
) -> str:
    reset = f"rm -rf {state_dir}" if state_dir != Path.cwd() / ".certforge" else "rm -rf .certforge"
    lines = [
        "",
        "=" * 78,
        "  Certforge is running",
        "",
        f"  API              {api}",
        f"  API over HTTPS   {acme.https}   (server certificate from the development CA)",
        f"  OpenAPI docs     {api}/docs",
        f"  Bootstrap token  {token}",
        "",
        "  Try it:",
        f'    curl -H "Authorization: Bearer {token}" {api}/api/v1/cas',
        "",
        "  First certificate, in another terminal (from the demo application):",
        "    make demo",
        "",
        f"  ACME directory   {acme.directory}",
        f"  ACME CA file     {acme.ca_file}   (the development root CA: trust it)",
        f"  certbot          REQUESTS_CA_BUNDLE={acme.ca_file} certbot certonly --server "
        f"{acme.directory} --eab-kid=<id> --eab-hmac-key=<key> --standalone --http-01-port "
        f"{acme.http01_port} --ip-address 127.0.0.1   (EAB keys and the rest: README, ACME)",
        "",
        f"  NATS             {_redact(nats_url)}",
        f"  PostgreSQL       {_redact(database_url)}",
        f"  State            {state_dir}   (reset: stop, then `{reset}`)",
        "",
        "  Ctrl-C stops everything.",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)


# --- run ------------------------------------------------------------------------------------


def _port(variable: str, default: int) -> int:
    raw = os.environ.get(variable, str(default))
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise DevStackError(f"{variable}={raw!r} is not a TCP port (1-65535)")
    return port


def _api_ports() -> tuple[int, int]:
    """(HTTP port, HTTPS port) of the api, from CERTFORGE_API_PORT and CERTFORGE_API_TLS_PORT."""
    api_port = _port("CERTFORGE_API_PORT", DEFAULT_API_PORT)
    tls_port = _port("CERTFORGE_API_TLS_PORT", DEFAULT_API_TLS_PORT)
    if api_port == tls_port:
        raise DevStackError(
            f"CERTFORGE_API_PORT and CERTFORGE_API_TLS_PORT are both {api_port}; "
            "HTTP and HTTPS need a port each"
        )
    return api_port, tls_port


def _check_api_ports(api_port: int, tls_port: int) -> None:
    for port, variable in ((api_port, "CERTFORGE_API_PORT"), (tls_port, "CERTFORGE_API_TLS_PORT")):
        if tcp_reachable("127.0.0.1", port):
            raise DevStackError(
                f"something already listens on 127.0.0.1:{port}; stop it or set {variable}"
            )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM during start-up takes the same clean path as Ctrl-C: unwind and stop what started.
    raise KeyboardInterrupt


def _run(stack: contextlib.ExitStack) -> int:
    state_dir = resolve_state_dir()
    _logger.info("state directory %s", state_dir)
    # Before starting anything: a taken port is a one-line error, not servers started for nothing.
    api_port, tls_port = _api_ports()
    _check_api_ports(api_port, tls_port)
    promised = {api_port, tls_port}

    vital: dict[str, Callable[[], bool]] = {}
    nats_url = os.environ.get("CERTFORGE_NATS_URL")
    if nats_url:
        if not url_reachable(nats_url, timeout=2.0):
            raise DevStackError(f"CERTFORGE_NATS_URL={nats_url} is not reachable")
    else:
        nats = start_nats(state_dir, port=free_port(avoid=promised))
        stack.callback(nats.stop)
        vital["the embedded NATS server"] = nats.running
        nats_url = nats.url
        _logger.info("embedded NATS at %s", nats_url)

    database_url = os.environ.get("CERTFORGE_DATABASE_URL")
    if database_url:
        if not url_reachable(database_url, timeout=2.0):
            raise DevStackError("CERTFORGE_DATABASE_URL is set but its server is not reachable")
    else:
        started = time.monotonic()
        postgres = start_postgres(state_dir, port=free_port(avoid=promised))
        stack.callback(postgres.stop)
        vital["the embedded PostgreSQL server"] = postgres.running
        database_url = asyncio.run(create_database(postgres.url, DEV_DATABASE, exist_ok=True))
        _logger.info("embedded PostgreSQL at %s (%.1f s)", database_url, time.monotonic() - started)

    ca_keks = os.environ.get("CERTFORGE_CA_KEKS") or ensure_keyring(state_dir, "ca_keks")
    leaf_keks = os.environ.get("CERTFORGE_LEAF_KEKS") or ensure_keyring(state_dir, "leaf_keks")
    token = ensure_bootstrap_token(state_dir)

    _run_migrations(database_url)
    _check_api_ports(api_port, tls_port)  # again: the servers took a while to start
    env = {
        **DEV_VALIDATOR_PORTS,
        **os.environ,
        "CERTFORGE_ENVIRONMENT": "development",
        "CERTFORGE_DATABASE_URL": database_url,
        "CERTFORGE_NATS_URL": nats_url,
        "CERTFORGE_CA_KEKS": ca_keks,
        "CERTFORGE_LEAF_KEKS": leaf_keks,
        "CERTFORGE_BOOTSTRAP_TOKEN": token,
        "CERTFORGE_STATE_DIR": str(state_dir),
        "CERTFORGE_API_PORT": str(api_port),
        "CERTFORGE_VALIDATOR__ALLOW_PRIVATE_TARGETS": "true",  # ACME clients on this machine
        "CERTFORGE_PUBLIC_URL": os.environ.get(
            "CERTFORGE_PUBLIC_URL", f"http://127.0.0.1:{api_port}"
        ),
        # URLs in issued certificates (CRL, OCSP, CA issuers): the api's plain-http port, which
        # answers them beside the HTTPS one (relying parties fetch them without TLS)
        "CERTFORGE_REVOCATION_URL": os.environ.get(
            "CERTFORGE_REVOCATION_URL", f"http://127.0.0.1:{api_port}"
        ),
    }
    executables = {service: service_executable(service) for service in SERVICES}

    # A crashed service comes back after a backoff; NATS or PostgreSQL dying stops the stack.
    group = stack.enter_context(ProcessGroup(stop_timeout=10.0, restart=RestartPolicy()))
    for name, running in vital.items():
        group.watch(name, running)
    with group.handle_signals():
        for service, executable in executables.items():
            group.start(service, [executable], env=env)
        api = f"http://127.0.0.1:{api_port}"
        _wait_healthy(group, f"{api}/readyz", HEALTH_TIMEOUT)
        if group.stop_requested:
            return 0
        try:
            acme = _serve_https(group, env, executables["api"], state_dir, api, token, tls_port)
        except _Stopping:
            return 0
        if group.stop_requested:
            return 0
        group.write_block(
            _banner(
                api=api,
                token=token,
                state_dir=state_dir,
                nats_url=nats_url,
                database_url=database_url,
                acme=acme,
            ),
        )
        return group.supervise()


def _serve_https(
    group: ProcessGroup,
    env: dict[str, str],
    executable: Path,
    state_dir: Path,
    api: str,
    token: str,
    tls_port: int,
) -> _Acme:
    """The development PKI (made through the REST API, like `make demo`), the api's server
    certificate from it, and a second api process serving HTTPS with it: what ACME clients,
    which expect an https directory, talk to."""
    from certforge.devstack.client import Api
    from certforge.devstack.devtls import ensure_server_certificate, tls_files
    from certforge.devstack.seed import acme_directory_path, ensure_dev_pki

    pause = _pause_in(group)
    client = Api(api, token)
    group.write("devstack", "development CA, policy, profile and demo application …")
    pki = ensure_dev_pki(client, pause, say=lambda line: group.write("devstack", line))
    _check_alive(group)
    files = tls_files(state_dir)
    issued = ensure_server_certificate(client, pki, files, datetime.now(UTC), pause)
    _check_alive(group)
    group.write(
        "devstack",
        f"{'issued' if issued else 'reusing'} the HTTPS server certificate {files.certificate}",
    )
    if tcp_reachable("127.0.0.1", tls_port):  # taken while the stack was starting
        raise DevStackError(
            f"something already listens on 127.0.0.1:{tls_port}; stop it or set "
            "CERTFORGE_API_TLS_PORT"
        )
    group.start(
        "api-https",
        [executable],
        env={
            **env,
            "CERTFORGE_API_PORT": str(tls_port),
            "CERTFORGE_TLS_CERT_FILE": str(files.certificate),
            "CERTFORGE_TLS_KEY_FILE": str(files.key),
        },
    )
    https = f"https://127.0.0.1:{tls_port}"
    _wait_healthy(group, f"{https}/readyz", HEALTH_TIMEOUT, files.client_context())
    return _Acme(
        https=https,
        directory=https + acme_directory_path(),
        ca_file=files.ca,
        http01_port=env["CERTFORGE_VALIDATOR__HTTP01_PORT"],
    )


def run() -> int:
    """`certforge-dev run`; returns the process exit code."""
    # Our own progress and Alembic's "Running upgrade …" lines; other libraries only when loud.
    logging.basicConfig(level=logging.WARNING, format="[devstack] %(message)s", stream=sys.stdout)
    for name in ("certforge.devstack", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.INFO)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    stack = contextlib.ExitStack()
    code = 0
    try:
        code = _run(stack)
    except KeyboardInterrupt:
        _logger.info("interrupted, stopping")
    except DevStackError as exc:
        _logger.error("%s", exc)
        code = 1
    finally:
        # Let the shutdown finish: a second Ctrl-C must not abandon half-stopped servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.close()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
    _logger.info("stopped")
    return code


def _demo() -> int:
    from certforge.devstack.demo import api_url, bootstrap_token, demo

    try:
        return demo(api_url(), bootstrap_token(resolve_state_dir()))
    except DevStackError as exc:
        print(f"certforge-dev demo: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> None:
    """Console script `certforge-dev`."""
    parser = argparse.ArgumentParser(
        prog="certforge-dev", description="Run the Certforge development stack."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run",
        help="start embedded NATS + PostgreSQL and all services (what `make run` calls)",
        description="Environment: CERTFORGE_STATE_DIR (default ./.certforge), "
        "CERTFORGE_NATS_URL, CERTFORGE_DATABASE_URL (use existing servers), "
        "CERTFORGE_API_PORT (default 8080), CERTFORGE_API_TLS_PORT (HTTPS, default 8443), "
        "CERTFORGE_BOOTSTRAP_TOKEN.",
    )
    commands.add_parser(
        "demo",
        help="set up a demo CA, policy, profile and application on a running stack and issue "
        "a first certificate (what `make demo` calls)",
        description="Talks to the API at CERTFORGE_API_PORT (default 8080) with the bootstrap "
        "token of CERTFORGE_STATE_DIR (default ./.certforge).",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        sys.exit(run())
    if args.command == "demo":
        sys.exit(_demo())
    parser.error(f"unknown command {args.command}")  # pragma: no cover
