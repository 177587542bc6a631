"""`make run`'s engine, `certforge-dev run`, as a developer uses it on a machine with nothing else.

It must start its own NATS and PostgreSQL (no CERTFORGE_NATS_URL / CERTFORGE_DATABASE_URL in its
environment), migrate, generate keys and a bootstrap token, start the services, set up the
development CA with ACME enrollment on, serve the api a second time over HTTPS with a server
certificate from that CA, print a banner; the README's admin flow works against it with plain
HTTP; Ctrl-C stops everything, embedded servers included; a second run on the same state
directory has the same data, keys, token and server certificate.
"""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from devrun_kit import DEV, START_TIMEOUT, DevRun, DevRuns, clean_env

from certforge.devstack.ports import free_port, tcp_reachable
from certforge.devstack.process import pid_alive, read_pid_file

pytestmark = [pytest.mark.e2e, pytest.mark.system, pytest.mark.timeout(240)]


def _demo(state_dir: Path, api_port: int) -> str:
    """`make demo`'s command against a running stack; its output."""
    done = subprocess.run(
        [str(DEV), "demo"],
        env={
            **clean_env(),
            "CERTFORGE_STATE_DIR": str(state_dir),
            "CERTFORGE_API_PORT": str(api_port),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _admin_flow(client: httpx.Client) -> dict[str, str]:
    """The README's curl examples (the issue's Shapes section), in order; the ids created."""
    root = _created(
        client.post(
            "/api/v1/cas",
            json={
                "name": "root",
                "type": "root",
                "subject": {"common_name": "Example Root CA", "organization": "Example"},
                "key_algorithm": "EC_P256",
                "validity": "10y",
                "max_path_length": 1,
            },
        )
    )
    assert root["type"] == "root"
    assert root["status"] == "active"
    assert root["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    issuing = _created(
        client.post(
            "/api/v1/cas",
            json={
                "name": "issuing",
                "type": "intermediate",
                "parent_ca_id": root["id"],
                "subject": {"common_name": "Example Issuing CA", "organization": "Example"},
                "key_algorithm": "EC_P256",
                "validity": "5y",
                "max_path_length": 0,
            },
        )
    )
    assert issuing["type"] == "intermediate"
    policy = _created(
        client.post(
            "/api/v1/policies",
            json={
                "name": "web",
                "subject": {"common_name": {"allowed": ["*.example.com", "example.com"]}},
                "sans": {
                    "dns": {"allowed": ["*.example.com", "example.com"]},
                    "ip": {"allowed": ["10.0.0.0/8"]},
                },
                "key_algorithms": ["EC_P256", "EC_P384", "RSA_2048", "RSA_3072", "ED25519"],
                "key_usages": {"allowed": ["digital_signature", "key_encipherment"]},
                "extended_key_usages": {"allowed": ["server_auth", "client_auth"]},
                "max_validity": "90d",
            },
        )
    )
    profile = _created(
        client.post(
            "/api/v1/profiles",
            json={
                "slug": "web-server",
                "ca_id": issuing["id"],
                "policy_id": policy["id"],
                "defaults": {
                    "ttl": "30d",
                    "key_algorithm": "EC_P256",
                    "key_usages": ["digital_signature"],
                    "extended_key_usages": ["server_auth"],
                },
            },
        )
    )
    shop = {"slug": "shop", "name": "Shop"}
    application = _created(client.post("/api/v1/applications", json=shop))
    bot = _created(client.post("/api/v1/identities", json={"name": "ci-bot"}))
    assert bot["token"]
    member = client.put(f"/api/v1/applications/shop/members/{bot['id']}", json={"role": "operator"})
    assert member.status_code in (200, 201), member.text
    enrollment = client.put(
        "/api/v1/applications/shop/profiles/web-server",
        json={"api": {"enabled": True, "auto_renew": True, "renew_before_days": 10}},
    )
    assert enrollment.status_code == 201, enrollment.text
    assert enrollment.json()["api"] == {
        "enabled": True,
        "auto_renew": True,
        "renew_before_days": 10,
    }
    return {
        "root": root["id"],
        "issuing": issuing["id"],
        "policy": policy["id"],
        "profile": profile["id"],
        "application": application["id"],
    }


def _https_checks(run: DevRun, state_dir: Path, token: str, tls_port: int) -> bytes:
    """The second api process answers HTTPS with a certificate the development CA vouches for
    (hostname 127.0.0.1 checked), the banner's ACME directory answers there, and the demo
    profile has ACME enrollment on; the server certificate's bytes."""
    tls = state_dir / "tls"
    assert run.acme_directory == f"https://127.0.0.1:{tls_port}/acme/demo/dev-tls/directory"
    assert run.ca_file == tls / "ca.pem"
    assert f"--server {run.acme_directory}" in run.output(), "the certbot line"
    assert "--standalone --http-01-port 5002" in run.output(), "the validator's dev port"
    assert stat.S_IMODE((tls / "server.key").stat().st_mode) == 0o600
    trust = ssl.create_default_context(cafile=str(run.ca_file))
    assert httpx.get(f"{run.https}/readyz", verify=trust, timeout=10).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{run.https}/readyz", timeout=10)  # not a publicly trusted certificate
    leaf = x509.load_pem_x509_certificate((tls / "server.pem").read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    # Its CRL and CA-issuer URLs are the api's plain-http base (CERTFORGE_REVOCATION_URL), and
    # they answer there without TLS, as relying parties fetch them.
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    pointers = [str(n.value) for p in cdp for n in p.full_name or []]
    pointers += [str(d.access_location.value) for d in aia]
    assert pointers, "the server certificate names its CRL, OCSP and CA issuer"
    for url in pointers:
        assert url.startswith(f"{run.api}/"), url
        if "/ocsp/" not in url:  # OCSP wants a request; the CRL and CA certificate are GETs
            assert httpx.get(url, timeout=10).status_code == 200, url

    directory = httpx.get(run.acme_directory, verify=trust, timeout=10)
    assert directory.status_code == 200, directory.text
    urls = directory.json()
    assert urls["newNonce"].startswith(f"https://127.0.0.1:{tls_port}/acme/demo/dev-tls/")
    assert urls["meta"]["externalAccountRequired"] is True

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=run.https, headers=headers, verify=trust) as client:
        acme = client.get("/api/v1/applications/demo/profiles/dev-tls/enrollment/acme")
        assert acme.status_code == 200, acme.text
        assert acme.json()["enabled"] is True
        assert acme.json()["eab_required"] is True
        assert acme.json()["directory_url"] == run.acme_directory
        listed = client.get("/api/v1/applications/demo/certificates").json()["items"]
        served = next(c for c in listed if int(c["serial_number"], 16) == leaf.serial_number)
        assert served["metadata"] == {"purpose": "make-run-https"}
        assert served["auto_renew"] is False, "the file is what is served; renewals never reach it"
    return (tls / "server.pem").read_bytes()


def test_make_run_serves_stops_and_keeps_its_data(state_dir: Path, dev_runs: DevRuns) -> None:
    api_port = free_port()
    tls_port = free_port(avoid={api_port})
    timings: dict[str, float] = {}

    # --- first run: a fresh state directory ---
    first = dev_runs.start(api_port, tls_port)
    timings["first start"] = first.wait_ready()
    for port in (first.nats_port, first.postgres_port):
        assert port not in (4222, 5432), "embedded servers never take the system ports"
    secrets_dir = state_dir / "secrets"
    token = (secrets_dir / "bootstrap_token").read_text().strip()
    assert token.startswith("cf_")
    assert token in first.output(), "the banner prints the token"
    for name in ("bootstrap_token", "ca_keks", "leaf_keks"):
        assert stat.S_IMODE((secrets_dir / name).stat().st_mode) == 0o600, name
    ca_keks = (secrets_dir / "ca_keks").read_text()
    assert "created CA dev-root" in first.output()
    assert "issued the HTTPS server certificate" in first.output()
    server_certificate = _https_checks(first, state_dir, token, tls_port)

    # The banner's next step: `make demo`, a first certificate in one command, twice (idempotent:
    # make run made the demo's CA, policy, profile and application already).
    assert "make demo" in first.output()
    started = time.monotonic()
    demo = _demo(state_dir, api_port)
    timings["demo: first certificate"] = time.monotonic() - started
    assert "Issued hello.localhost" in demo, demo
    assert "created" not in demo, demo
    again = _demo(state_dir, api_port)
    assert "created" not in again, again
    assert "Issued hello.localhost" in again, again
    curl = demo[demo.index("curl ") :].replace("\\\n", " ")
    issued = subprocess.run(
        ["bash", "-c", curl], cwd=state_dir.parent, capture_output=True, text=True, timeout=60
    )
    assert '"status":"issued"' in issued.stdout.replace(" ", ""), issued

    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=first.api, headers=headers, timeout=30.0) as client:
        ids = _admin_flow(client)
        assert client.get("/api/v1/cas").status_code == 200
        unauthenticated = httpx.get(f"{first.api}/api/v1/cas", timeout=5.0)
        assert unauthenticated.status_code == 401
    timings["admin flow"] = time.monotonic() - started

    code, timings["first stop"] = first.interrupt()
    assert code == 0, first.output()[-5000:]
    for port in (api_port, tls_port, first.nats_port, first.postgres_port):
        assert not tcp_reachable("127.0.0.1", port), f"port {port} still open after Ctrl-C"
    assert not (state_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL was stopped"
    nats_pid = read_pid_file(state_dir / "nats.pid")
    assert nats_pid is None or not pid_alive(nats_pid), "nats-server was stopped"

    # --- second run: same state directory, same data, keys, token and server certificate ---
    second = dev_runs.start(api_port, tls_port)
    timings["second start"] = second.wait_ready()
    assert (secrets_dir / "bootstrap_token").read_text().strip() == token
    assert (secrets_dir / "ca_keks").read_text() == ca_keks
    assert "created" not in second.output()
    assert "reusing the HTTPS server certificate" in second.output()
    assert _https_checks(second, state_dir, token, tls_port) == server_certificate
    with httpx.Client(base_url=second.api, headers=headers, timeout=30.0) as client:
        listed = client.get("/api/v1/cas")
        assert listed.status_code == 200, listed.text
        body = listed.json()
        items = body["items"] if isinstance(body, dict) else body
        assert {ids["root"], ids["issuing"]} <= {ca["id"] for ca in items}
        assert client.get("/api/v1/applications/shop").status_code == 200
        # The root's key, encrypted under the first run's CA KEK, still signs.
        again = client.post(
            "/api/v1/cas",
            json={
                "name": "issuing-2",
                "type": "intermediate",
                "parent_ca_id": ids["root"],
                "subject": {"common_name": "Example Issuing CA 2"},
                "key_algorithm": "EC_P256",
                "validity": "1y",
                "max_path_length": 0,
            },
        )
        assert again.status_code == 201, again.text
    code, timings["second stop"] = second.interrupt()
    assert code == 0, second.output()[-5000:]
    for port in (api_port, tls_port, second.nats_port, second.postgres_port):
        assert not tcp_reachable("127.0.0.1", port), f"port {port} still open after Ctrl-C"
    print(" · ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))


@pytest.mark.parametrize("taken", ["CERTFORGE_API_PORT", "CERTFORGE_API_TLS_PORT"])
def test_make_run_reports_an_unusable_api_port(
    state_dir: Path, dev_runs: DevRuns, taken: str
) -> None:
    """A taken API port (HTTP or HTTPS) is a one-line error and a quick exit, before any server
    is started."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = free_port(avoid={port})
        ports = (port, other) if taken == "CERTFORGE_API_PORT" else (other, port)
        run = dev_runs.start(*ports)
        try:
            code = run.popen.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"did not give up on a taken port:\n{run.output()[-3000:]}")
    output = run.output()
    assert code == 1, output
    assert f"something already listens on 127.0.0.1:{port}; stop it or set {taken}" in output
    assert "Traceback" not in output
    assert not (state_dir / "pgdata").exists(), "checked before starting any server"
    assert not (state_dir / "nats").exists(), "checked before starting any server"


def test_make_run_refuses_one_port_for_http_and_https(state_dir: Path, dev_runs: DevRuns) -> None:
    port = free_port()
    run = dev_runs.start(port, port)
    assert run.popen.wait(START_TIMEOUT) == 1
    assert "CERTFORGE_API_PORT and CERTFORGE_API_TLS_PORT are both" in run.output()
    assert "Traceback" not in run.output()
