"""Issue 14, the CLI: the real `certforge` console script, run as a process, against a real
uvicorn server on a free port that serves this session's api (real PostgreSQL, NATS and issuer).

Why a server and a process, not CliRunner on an ASGI transport: the CLI's own HTTP client,
timeouts, exit codes and stderr are what a person meets, and only a process shows them. It costs
little: uvicorn runs as a task in the session's loop beside the api it serves, and each command is
one `certforge` process (~0.3 s).

The story: an admin logs in and sets up a CA, a policy, a profile and an application with an
operator; the operator requests (managed key, files written), lists, downloads in every format,
renews and revokes. Then each bad input: one clear line, the right exit code, nothing written.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from admin_kit import policy_body, uid
from harness import Backends

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CERTFORGE = Path(sys.executable).parent / "certforge"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """The `certforge` command with a private config file and a fixed environment."""

    url: str
    home: Path

    async def __call__(self, *args: str, token: str | None = None, url: str | None = None) -> Run:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "CERTFORGE_CONFIG": str(self.home / "config.json"),
            "COLUMNS": "200",
        }
        if token is not None:
            env["CERTFORGE_TOKEN"] = token
        if url is not None:
            env["CERTFORGE_URL"] = url
        process = await asyncio.create_subprocess_exec(
            str(CERTFORGE),
            *args,
            env=env,
            cwd=self.home,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())


def ok(run: Run) -> Run:
    assert run.code == 0, (run.code, run.out, run.err)
    return run


def one_error_line(run: Run, code: int, *fragments: str) -> str:
    """Assert a failure: exit `code`, nothing on stdout, a first stderr line with every fragment."""
    assert run.code == code, (run.code, run.out, run.err)
    assert run.out == "", run.out
    first = run.err.splitlines()[0]
    assert first.startswith("error: "), run.err
    for fragment in fragments:
        assert fragment in first, (fragment, run.err)
    return first


@contextlib.asynccontextmanager
async def serving(app: object, **tls: str) -> AsyncIterator[int]:
    """`app` behind a real uvicorn on a free port of 127.0.0.1 (HTTPS with `ssl_certfile` and
    `ssl_keyfile`), in this loop, until the block ends; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", **tls)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api_url(api_app: object) -> AsyncIterator[str]:
    """The session's api behind a real uvicorn on a free port of 127.0.0.1."""
    async with serving(api_app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def cli(api_url: str, tmp_path: Path) -> Cli:
    return Cli(api_url, tmp_path)


@dataclass
class Story:
    app: str
    profile: str
    bot_token: str
    root_pem: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def story(
    api_url: str, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Story:
    """The admin's half, through the CLI only: login, CA, policy, profile, app, member."""
    cli = Cli(api_url, tmp_path_factory.mktemp("admin"))
    login = ok(await cli("login", "--url", api_url + "/", "--token", backends.admin_token))
    assert f"logged in to {api_url} as " in login.out
    config = cli.home / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": api_url, "token": backends.admin_token}
    assert ok(await cli("whoami", "--json")).json()["product_admin"] is True

    root = ok(
        await cli("ca", "create", "--name", uid("root"), "--type", "root", "--cn", "CLI Root",
                  "--key-algorithm", "EC_P256", "--validity", "10y", "--max-path-length", "1",
                  "--json")
    ).json()  # fmt: skip
    issuing = ok(
        await cli("ca", "create", "--name", uid("issuing"), "--type", "intermediate",
                  "--parent", root["id"], "--cn", "CLI Issuing", "--org", "Example",
                  "--validity", "5y", "--set", "max_path_length=0", "--json")
    ).json()  # fmt: skip
    assert issuing["parent_ca_id"] == root["id"]
    listed = ok(await cli("ca", "list")).out
    assert issuing["id"] in listed
    assert "intermediate" in listed

    (cli.home / "policy.json").write_text(json.dumps(policy_body()))
    policy = ok(await cli("policy", "create", "--file", "policy.json", "--json")).json()
    profile_slug = uid("web-server")
    defaults = {"key_usages": ["digital_signature"], "extended_key_usages": ["server_auth"]}
    (cli.home / "profile.json").write_text(json.dumps({"defaults": defaults}))
    profile = ok(
        await cli("profile", "create", "--slug", profile_slug, "--ca", issuing["id"],
                  "--policy", policy["id"], "--ttl", "30d", "--key-algorithm", "EC_P256",
                  "-f", "profile.json", "--json")
    ).json()  # fmt: skip
    assert profile["defaults"]["ttl"] == "30d"
    updated = ok(
        await cli("profile", "update", profile_slug, "--set", "description=from the CLI", "--json")
    ).json()
    assert updated["description"] == "from the CLI"

    app = uid("shop")
    ok(await cli("app", "create", "--slug", app, "--name", "Shop"))
    assert app in ok(await cli("app", "list")).out
    bot = ok(await cli("identity", "create", "--name", uid("bot"), "--json")).json()
    ok(await cli("member", "set", app, bot["id"], "--role", "operator"))
    assert "operator" in ok(await cli("member", "list", app)).out
    attached = ok(
        await cli("enrollment", "attach", app, profile_slug, "--api", "--auto-renew", "--json")
    ).json()
    assert attached["api"]["enabled"] is True
    return Story(app, profile_slug, bot["token"], root["certificate"])


async def test_operator_requests_downloads_renews_and_revokes(cli: Cli, story: Story) -> None:
    op = {"token": story.bot_token, "url": cli.url}
    tls = cli.home / "tls"
    issued = ok(
        await cli("cert", "request", "--app", story.app, "--profile", story.profile,
                  "--cn", "api.example.com", "--san", "dns:api.example.com",
                  "--san", "ip:10.0.0.5", "--tag", "team=web", "--out-dir", str(tls), **op)
    )  # fmt: skip
    assert "issued" in issued.out
    key = tls / "api.example.com.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificate((tls / "api.example.com.pem").read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api.example.com"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    chain = (tls / "api.example.com-chain.pem").read_text()
    assert (tls / "api.example.com-fullchain.pem").read_text().count("BEGIN CERTIFICATE") == 3
    assert story.root_pem.strip() in chain
    assert sorted(p.name for p in tls.iterdir()) == [
        "api.example.com-chain.pem",
        "api.example.com-fullchain.pem",
        "api.example.com.key",
        "api.example.com.pem",
    ]  # fmt: skip: no temporary left behind

    page = ok(await cli("cert", "list", "--app", story.app, "--tag", "team=web", "--json", **op))
    (cert,) = page.json()["items"]
    cert_id = cert["id"]
    table = ok(await cli("cert", "list", "--app", story.app, **op)).out
    assert "EXPIRES IN" in table
    assert cert_id in table
    assert "29d" in table or "30d" in table
    shown = ok(await cli("cert", "show", cert_id, "--app", story.app, "--json", **op)).json()
    assert shown["metadata"] == {"team": "web"}
    assert shown["status"] == "active"

    for fmt, blocks in (("pem", 1), ("chain", 2), ("bundle", 3)):
        run = ok(await cli("cert", "download", cert_id, "--app", story.app, "--format", fmt, **op))
        assert run.out.count("BEGIN CERTIFICATE") == blocks, fmt
    ok(await cli("cert", "download", cert_id, "-a", story.app, "--format", "der",
                 "--out", "www.der", **op))  # fmt: skip
    assert x509.load_der_x509_certificate((cli.home / "www.der").read_bytes()) == leaf
    ok(await cli("cert", "download", cert_id, "-a", story.app, "--format", "key",
                 "--out", "www.key", **op))  # fmt: skip
    assert stat.S_IMODE((cli.home / "www.key").stat().st_mode) == 0o600
    assert (cli.home / "www.key").read_bytes() == key.read_bytes()
    ok(await cli("cert", "download", cert_id, "-a", story.app, "--format", "p12",
                 "--out", "www.p12", "--password", "change-me-please", **op))  # fmt: skip
    loaded = pkcs12.load_pkcs12((cli.home / "www.p12").read_bytes(), b"change-me-please")
    assert loaded.cert is not None
    assert loaded.cert.certificate == leaf
    assert len(loaded.additional_certs) == 2

    renewed = ok(
        await cli("cert", "renew", cert_id, "--app", story.app, "--out-dir", str(tls),
                  "--name", "api.example.com", "--json", **op)
    ).json()  # fmt: skip
    new_id = renewed["certificate_id"]
    assert renewed["kind"] == "renew"
    assert renewed["status"] == "issued"
    assert new_id != cert_id
    first_key = (cli.home / "www.key").read_bytes()
    assert key.read_bytes() != first_key, "a renewal gets a new key by default"
    new_leaf = x509.load_pem_x509_certificate((tls / "api.example.com.pem").read_bytes())
    assert new_leaf.serial_number != leaf.serial_number
    old = ok(await cli("cert", "show", cert_id, "--app", story.app, "--json", **op)).json()
    assert old["status"] == "renewed"
    assert old["renewed_by_id"] == new_id

    revoked = ok(
        await cli("cert", "revoke", new_id, "--app", story.app, "--reason", "keyCompromise", **op)
    )
    assert f"revoked {new_id} (keyCompromise)" in revoked.out
    again = await cli("cert", "revoke", new_id, "--app", story.app, **op)
    one_error_line(again, 3, "Conflict")


async def test_policy_refusal_names_the_field(cli: Cli, story: Story) -> None:
    run = await cli(
        "cert", "request", "--app", story.app, "--profile", story.profile,
        "--cn", "www.not-allowed.org", "--san", "dns:www.not-allowed.org",
        "--out-dir", "out", token=story.bot_token, url=cli.url,
    )  # fmt: skip
    one_error_line(run, 3, "Unprocessable content")
    fields = [line.split(":")[0].strip() for line in run.err.splitlines()[1:]]
    assert "common_name" in fields or "sans.0.value" in fields, run.err
    assert not any((cli.home / "out").iterdir())

    as_json = await cli(
        "cert", "request", "--app", story.app, "--profile", story.profile,
        "--cn", "www.not-allowed.org", "--json", token=story.bot_token, url=cli.url,
    )  # fmt: skip
    assert as_json.code == 3
    assert json.loads(as_json.out)["status"] == 422


async def test_unreachable_url(cli: Cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    run = await cli("cert", "list", token="cf_anything", url=closed)
    one_error_line(run, 5, f"cannot reach {closed}")
    assert len(run.err.splitlines()) == 1


async def test_wrong_token(cli: Cli) -> None:
    run = await cli("whoami", token="cf_wrong", url=cli.url)
    one_error_line(run, 4, "Unauthenticated", "certforge login")
    assert "cf_wrong" not in run.err

    login = await cli("login", "--url", cli.url, "--token", "cf_wrong")
    one_error_line(login, 4, "Unauthenticated")
    assert not (cli.home / "config.json").exists()


async def test_not_logged_in(cli: Cli) -> None:
    run = await cli("app", "list")
    one_error_line(run, 2, "certforge login")


async def test_not_found(cli: Cli, story: Story) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    run = await cli("cert", "show", unknown, "--app", story.app, token=story.bot_token, url=cli.url)
    one_error_line(run, 4, "Not found")


async def test_san_in_the_wrong_syntax(cli: Cli, story: Story) -> None:
    for bad in ("api.example.com", "dns:", "ip:10.0.0.999", "host:a.example.com"):
        run = await cli(
            "cert", "request", "--app", story.app, "--profile", story.profile,
            "--cn", "api.example.com", "--san", bad, "--out-dir", "out",
            token=story.bot_token, url=cli.url,
        )  # fmt: skip
        one_error_line(run, 2, f"--san {bad!r}: ")
        assert len(run.err.splitlines()) == 1, run.err
        assert not (cli.home / "out").exists()


async def test_unwritable_output_path(cli: Cli, story: Story) -> None:
    op = {"token": story.bot_token, "url": cli.url}
    (cli.home / "a-file").write_text("not a directory")
    before = ok(await cli("cert", "list", "--app", story.app, "--json", **op)).json()["total"]
    run = await cli(
        "cert", "request", "--app", story.app, "--profile", story.profile,
        "--cn", "api.example.com", "--out-dir", "a-file/tls", **op,
    )  # fmt: skip
    one_error_line(run, 2, "a-file/tls")
    after = ok(await cli("cert", "list", "--app", story.app, "--json", **op)).json()["total"]
    assert after == before, "nothing is requested when the files could not be written"

    run = await cli("cert", "download", "any-id", "--app", story.app, "--format", "der",
                    "--out", "a-file/www.der", **op)  # fmt: skip
    one_error_line(run, 2, "a-file")
    assert (cli.home / "a-file").read_text() == "not a directory"


async def test_csr_request_keeps_the_key_local(cli: Cli, story: Story) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.example.com")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("csr.example.com")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    (cli.home / "csr.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))

    run = ok(
        await cli(
            "cert", "request", "--app", story.app, "--profile", story.profile,
            "--csr", "csr.pem", "--ttl", "7d", "--out-dir", "csr-tls", "--name", "csr", "--json",
            token=story.bot_token, url=cli.url,
        )
    )  # fmt: skip

    assert run.json()["method"] == "csr"
    tls = cli.home / "csr-tls"
    assert sorted(p.name for p in tls.iterdir()) == [
        "csr-chain.pem",
        "csr-fullchain.pem",
        "csr.pem",
    ]
    leaf = x509.load_pem_x509_certificate((tls / "csr.pem").read_bytes())
    assert leaf.public_key() == key.public_key()
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 7


async def test_no_wait_then_wait_picks_the_request_up(cli: Cli, story: Story) -> None:
    op = {"token": story.bot_token, "url": cli.url}
    pending = ok(
        await cli("cert", "request", "--app", story.app, "--profile", story.profile,
                  "--cn", "later.example.com", "--wait", "0", "--json", **op)
    ).json()  # fmt: skip
    assert pending["status"] == "pending", "without Prefer: wait the api answers 202 at once"

    done = ok(
        await cli("cert", "wait", pending["id"], "--app", story.app, "--out-dir", "later",
                  "--name", "later", **op)
    )  # fmt: skip

    assert "issued" in done.out
    leaf = x509.load_pem_x509_certificate((cli.home / "later" / "later.pem").read_bytes())
    assert leaf.subject.rfc4514_string() == "CN=later.example.com"
    assert stat.S_IMODE((cli.home / "later" / "later.key").stat().st_mode) == 0o600


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CLI test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_https_with_a_private_ca(cli: Cli, api_app: object, backends: Backends) -> None:
    ca, cert, key = _tls_files(cli.home)
    async with serving(api_app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as port:
        url = f"https://127.0.0.1:{port}"

        untrusted = await cli("whoami", token=backends.admin_token, url=url)
        one_error_line(untrusted, 5, f"cannot reach {url}", "CERTIFICATE_VERIFY_FAILED")

        ok(await cli("--ca-file", "ca.pem", "login", "--url", url, "--token", backends.admin_token))
        saved = json.loads((cli.home / "config.json").read_text())
        assert saved["ca_file"] == str(ca)
        assert ok(await cli("whoami", "--json")).json()["product_admin"] is True

    missing = await cli("--ca-file", "nowhere.pem", "whoami", token="cf_x", url=url)
    one_error_line(missing, 2, "cannot use CA file nowhere.pem")


async def test_audit_list_and_verify(
    cli: Cli, story: Story, backends: Backends, api_app: Any
) -> None:
    from certforge.common.db.pool import LazyPool
    from certforge.renewer.audit_seal import AuditSealer

    database = LazyPool(backends.database_url, max_size=1)
    try:
        await AuditSealer(database, dt.timedelta(1), dt.timedelta(1)).seal(whole_log=True)
    finally:
        await database.close()
    admin = backends.admin_token
    entries = ok(await cli("audit", "list", "--app", story.app, "--json", token=admin, url=cli.url))
    assert any(e["action"] == "application.member.put" for e in entries.json()["items"])
    held = ok(await cli("audit", "verify", token=admin, url=cli.url))
    assert "verified" in held.out
    assert "head: seq" in held.out
    one_error_line(await cli("audit", "verify", token=story.bot_token, url=cli.url), 4)

    db = api_app.state.certforge.db
    target = await db.fetchval("SELECT event_id FROM audit_chain ORDER BY seq LIMIT 1")
    status = await db.fetchval("SELECT status_code FROM audit_events WHERE id = $1", target)
    await db.execute("UPDATE audit_events SET status_code = 299 WHERE id = $1", target)
    try:
        broken = await cli("audit", "verify", "--json", token=admin, url=cli.url)
        assert broken.code == 1
        assert broken.json()["broken"]["event_id"] == target
    finally:
        await db.execute("UPDATE audit_events SET status_code = $2 WHERE id = $1", target, status)
