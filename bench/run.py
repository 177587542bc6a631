"""`make bench`: end-to-end issuance throughput and latency of a running Certforge.

Starts the whole system the way `make run` does (embedded NATS and PostgreSQL in a temporary
state directory, the four services), creates an EC P-256 root → intermediate chain, a policy, a
profile and an application over HTTP, then drives `POST …/certificate-requests` with
`Prefer: wait` from `wrk` (a compiled load generator, so the client does not take the CPU from
the system measured). Every answer that is not a 201 with a certificate counts as an error.
Also measures the cost of pre-issuance linting per certificate in-process.
Results are printed and appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import acme_orders  # noqa: E402 - bench/acme_orders.py: ACME orders against the HTTPS directory
import lifecycle  # noqa: E402 - bench/ is not a package
import sync  # noqa: E402 - bench/sync.py: syncs to moto ACM and a directory

BIN = Path(sys.executable).parent
SERVICES = ("api", "issuer", "renewer", "syncer", "validator")
BANNER = "Certforge is running"  # what certforge-dev run prints once everything answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="", help="a note for RESULTS.md (what changed)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--acme-workers", type=int, default=8, help="concurrent ACME orders")
    parser.add_argument("--acme-poll-ms", type=int, default=50, help="ACME poll interval")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (Debian) — make bench tries that")

    lint = lint_cost()
    print(
        f"pre-issuance lint: {lint['lint_ms']:.2f} ms/cert "
        f"(build+sign alone {lint['sign_ms']:.3f} ms)"
    )
    with acme_orders.running_peers() as peers, System(peers.settings()) as system:
        setup = system.setup()
        results = {}
        for scenario, body in scenarios(setup).items():
            system.warm_up(body)
            results[scenario] = system.wrk(body, args)
            r = results[scenario]
            print(
                f"{scenario}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}"
            )
        ocsp_env = {"METHOD": "GET", "EXPECT_HEX": "0a0100"}  # OCSPResponseStatus successful
        results["OCSP (GET, good)"] = system.run_wrk(system.ocsp_path(setup), ocsp_env, args)
        r = results["OCSP (GET, good)"]
        print(
            f"OCSP: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"errors {r['errors']}"
        )
        memory = system.memory()
        database_url, nats_url = system.backend_urls()
        lifecycle_results = asyncio.run(lifecycle.renewal_scan(database_url, nats_url))
        print(
            f"renewal scan: {lifecycle.DUE} due of {lifecycle.TOTAL}: claimed in "
            f"{lifecycle_results['claim_seconds']:.1f} s, all renew commands published in "
            f"{lifecycle_results['emit_seconds']:.1f} s; empty scan "
            f"{lifecycle_results['empty_scan_ms']:.1f} ms"
        )
        print(
            f"CRL with {lifecycle_results['crl_entries']} entries: "
            f"{lifecycle_results['crl_seconds']:.1f} s, {lifecycle_results['crl_bytes']} bytes"
        )
        # --- syncs (bench/sync.py): the system's syncer pushing to moto ACM and a directory
        sync_results = asyncio.run(
            sync.sync_bench(system.base, system.token, nats_url, setup["profile"])
        )
        sync.report(sync_results)
        # --- ACME (bench/acme_orders.py): complete orders through the HTTPS directory
        acme_results = acme_orders.acme_bench(
            system, peers, args.duration, args.acme_workers, args.acme_poll_ms / 1000
        )
        acme_orders.report(acme_results)
    if not args.no_record:
        record(results, lint, memory, args, lifecycle_results)
        sync.record(sync_results, HERE / "RESULTS.md")  # appended to the section just written
        append_results(acme_orders.record_text(acme_results))


def lint_cost(n: int = 300) -> dict[str, float]:
    """Milliseconds per certificate to build+sign, and to lint one (pkilint, RFC 5280)."""
    from certforge.common.crypto.certificates import (
        build_certificate,
        build_self_signed_ca,
        key_identifier_of,
        new_serial,
    )
    from certforge.common.crypto.keys import generate_private_key
    from certforge.common.domain import ExtendedKeyUsage, KeyAlgorithm, SanType, SubjectFields
    from certforge.common.template import CertificateTemplate, San
    from certforge.issuer import lint

    now = datetime.now(UTC)
    ca_key = generate_private_key(KeyAlgorithm.EC_P256)
    ca = build_self_signed_ca(
        SubjectFields(common_name="Bench CA"),
        ca_key,
        now,
        now.replace(year=now.year + 5),
        None,
        None,
    )
    leaf_key = generate_private_key(KeyAlgorithm.EC_P256)
    template = CertificateTemplate(
        subject=SubjectFields(common_name="api.example.com"),
        sans=[San(type=SanType.DNS, value="api.example.com")],
        key_algorithm=KeyAlgorithm.EC_P256,
        extended_key_usages=[ExtendedKeyUsage.SERVER_AUTH],
        not_before=now,
        not_after=now.replace(month=now.month % 12 + 1)
        if now.month < 12
        else now.replace(year=now.year + 1, month=1),
    )

    def build() -> Any:
        return build_certificate(
            template,
            leaf_key.public_key(),
            ca.subject,
            ca_key,
            key_identifier_of(ca),
            new_serial(),
            crl_url="http://127.0.0.1:8080/crl",
            ocsp_url="http://127.0.0.1:8080/ocsp",
        )

    lint.check(build())  # build the validator once
    start = time.perf_counter()
    certs = [build() for _ in range(n)]
    sign = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for cert in certs:
        lint.check(cert)
    linted = (time.perf_counter() - start) / n
    return {"sign_ms": sign * 1000, "lint_ms": linted * 1000}


class System:
    """The whole system started by `certforge-dev run` in a temporary state directory."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        """`settings`: extra `CERTFORGE_*` variables for the services."""
        self.settings = settings or {}
        self.state = Path(tempfile.mkdtemp(prefix="cf-bench-", dir="/tmp"))
        self.port = _free_port()
        self.tls_port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # make run's second api process (HTTPS, the development CA) and its ACME directory
        self.acme_directory = f"https://127.0.0.1:{self.tls_port}/acme/demo/dev-tls/directory"
        self.ca_file = self.state / "tls" / "ca.pem"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    def __enter__(self) -> System:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTFORGE_")}
        env |= {
            "CERTFORGE_STATE_DIR": str(self.state),
            "CERTFORGE_API_PORT": str(self.port),
            "CERTFORGE_API_TLS_PORT": str(self.tls_port),
            "CERTFORGE_LOG_LEVEL": "WARNING",
            # one identity drives the whole load: its per-identity issuance limit would be the
            # figure measured
            "CERTFORGE_ISSUANCE_REQUESTS_PER_IDENTITY": "0",
        } | self.settings
        self.log = open(self.state / "system.log", "wb")
        try:
            self.process = subprocess.Popen(
                [str(BIN / "certforge-dev"), "run"],
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                # The banner comes once make run's set-up and HTTPS api are done too.
                if BANNER in (self.state / "system.log").read_text(errors="replace"):
                    try:
                        with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                            if r.status == 200:
                                break
                    except (OSError, http.client.HTTPException):  # not up, or not HTTP (yet)
                        pass
                if self.process.poll() is not None:
                    break
                time.sleep(0.5)
            else:
                log = (self.state / "system.log").read_text(errors="replace")[-3000:]
                raise RuntimeError("the system did not become healthy; its log ends:\n" + log)
            self.token = (self.state / "secrets" / "bootstrap_token").read_text().strip()
        except BaseException:  # Ctrl-C or a failed start: stop what started, then re-raise
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        self.log.close()
        shutil.rmtree(self.state, ignore_errors=True)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def setup(self) -> dict[str, str]:
        root = self.call(
            "POST",
            "/api/v1/cas",
            {
                "name": "bench-root",
                "type": "root",
                "subject": {"common_name": "Bench Root"},
                "key_algorithm": "EC_P256",
                "validity": "10y",
                "max_path_length": 1,
            },
        )
        inter = self.call(
            "POST",
            "/api/v1/cas",
            {
                "name": "bench-issuing",
                "type": "intermediate",
                "parent_ca_id": root["id"],
                "subject": {"common_name": "Bench Issuing"},
                "key_algorithm": "EC_P256",
                "validity": "5y",
                "max_path_length": 0,
            },
        )
        policy = self.call(
            "POST",
            "/api/v1/policies",
            {
                "name": "bench",
                "sans": {"dns": {"allowed": ["*.example.com"]}},
                "max_validity": "90d",
            },
        )
        self.call(
            "POST",
            "/api/v1/profiles",
            {
                "slug": "bench",
                "ca_id": inter["id"],
                "policy_id": policy["id"],
                "defaults": {"ttl": "30d", "key_algorithm": "EC_P256"},
            },
        )
        self.call("POST", "/api/v1/applications", {"slug": "bench", "name": "Bench"})
        self.call("PUT", "/api/v1/applications/bench/profiles/bench")
        self.call(
            "PUT",
            "/api/v1/applications/bench/profiles/bench/enrollment/api",
            {"enabled": True, "auto_renew": False, "renew_before_days": 10},
        )
        return {"app": "bench", "profile": "bench", "issuing_ca": inter["id"]}

    def warm_up(self, body: dict[str, Any]) -> None:
        for _ in range(20):
            request = urllib.request.Request(
                self.base + "/api/v1/applications/bench/certificate-requests",
                data=json.dumps(body).encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                    "Prefer": "wait=30",
                },
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 201, response.status

    def wrk(self, body: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
        body_file = self.state / "body.json"
        body_file.write_text(json.dumps(body))
        env = {
            "BODY_FILE": str(body_file),
            "HEADERS": f"Authorization: Bearer {self.token}\nPrefer: wait=30",
        }
        return self.run_wrk("/api/v1/applications/bench/certificate-requests", env, args)

    def ocsp_path(self, setup: dict[str, str]) -> str:
        """The GET path of an OCSP request for a freshly issued certificate, once the issuer
        has made the CA's responder certificate (its first refresh, seconds after start)."""
        import base64
        import urllib.parse

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509 import ocsp

        request = urllib.request.Request(
            self.base + "/api/v1/applications/bench/certificate-requests",
            data=json.dumps(scenarios(setup)["EC P-256 managed"]).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Prefer": "wait=30",
            },
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            issued = json.loads(response.read())["certificate"]
        leaf = x509.load_pem_x509_certificate(issued["certificate"].encode())
        issuer = x509.load_pem_x509_certificates(issued["chain"].encode())[0]
        der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
        encoded = base64.b64encode(der.public_bytes(serialization.Encoding.DER)).decode()
        path = f"/ocsp/{setup['issuing_ca']}/{urllib.parse.quote(encoded, safe='')}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                if ocsp.load_der_ocsp_response(response.read()).response_status.value == 0:
                    return path
            time.sleep(1)
        raise RuntimeError("the OCSP responder never answered successfully")

    def run_wrk(self, path: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
        """One wrk run of `load.lua` against `path` of this system."""
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(args.threads),
                "-c",
                str(args.connections),
                "-d",
                f"{args.duration}s",
                "--timeout",
                "60s",
                "-s",
                str(HERE / "load.lua"),
                self.base + path,
            ],
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        raw = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        seconds = raw["duration_us"] / 1e6
        return {
            "requests": raw["requests"],
            "rps": raw["requests"] / seconds,
            "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "errors": raw["bad"] + raw["socket_errors"],
            "connections": args.connections,
        }

    def backend_urls(self) -> tuple[str, str]:
        """The PostgreSQL and NATS URLs the system's banner printed."""
        database = nats = ""
        for line in (self.state / "system.log").read_text().splitlines():
            if line.strip().startswith("PostgreSQL ") and "postgresql://" in line:
                database = line.split()[-1]
            elif line.strip().startswith("NATS ") and "nats://" in line:
                nats = line.split()[-1]
        if not database or not nats:
            raise RuntimeError("could not read the backends' URLs from the system's banner")
        return database, nats

    def memory(self) -> dict[str, int]:
        """Resident set size (KiB) of each service (summed over its processes)."""
        sizes: dict[str, int] = {}
        for role, found in self.processes().items():
            if role in SERVICES:
                sizes[role] = sum(rss for _, rss in found)
        return sizes

    def processes(self) -> dict[str, list[tuple[int, int]]]:
        """(pid, RSS KiB) of this system's processes by role: each service, `nats`, `postgres`.

        Found through the process tree of this run, so other Certforge instances on the machine
        (tests, `make run`, from the same venv) are never counted. The embedded PostgreSQL
        detaches from its parent: it is the postmaster on this run's data directory, with its
        children.
        """
        out = subprocess.run(
            ["ps", "-eo", "pid=,ppid=,rss=,args="], capture_output=True, text=True, check=True
        ).stdout
        parent: dict[int, int] = {}
        rss: dict[int, int] = {}
        command: dict[int, str] = {}
        for line in out.splitlines():
            fields = line.split(None, 3)
            if len(fields) < 4:
                continue
            pid, ppid = int(fields[0]), int(fields[1])
            parent[pid], rss[pid], command[pid] = ppid, int(fields[2]), fields[3]
        pgdata = f"-D {self.state.resolve() / 'pgdata'}"
        roots = [self.process.pid] if self.process is not None else []
        roots += [pid for pid, args in command.items() if pgdata in args]
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)

        def own_role(args: str) -> str | None:
            for service in SERVICES:
                if f"certforge-{service}" in args:
                    return service
            if "nats-server" in args:
                return "nats"
            return "postgres" if pgdata in args else None

        found: dict[str, list[tuple[int, int]]] = {}
        seen: set[int] = set()
        todo: list[tuple[int, str | None]] = [(pid, None) for pid in roots if pid in command]
        while todo:  # a process without a role of its own belongs to its parent's
            pid, inherited = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            role = own_role(command[pid]) or inherited
            if role is not None:
                found.setdefault(role, []).append((pid, rss[pid]))
            todo.extend((child, role) for child in children.get(pid, []))
        return found


def scenarios(setup: dict[str, str]) -> dict[str, dict[str, Any]]:
    from certforge.common.crypto.csr import build_csr, csr_to_pem
    from certforge.common.crypto.keys import generate_private_key
    from certforge.common.domain import KeyAlgorithm, SanType, SubjectFields
    from certforge.common.template import San

    csr = build_csr(
        generate_private_key(KeyAlgorithm.EC_P256),
        SubjectFields(common_name="csr.example.com"),
        [San(type=SanType.DNS, value="csr.example.com")],
    )
    return {
        "EC P-256 managed": {
            "profile": setup["profile"],
            "method": "managed",
            "common_name": "api.example.com",
            "sans": [{"type": "dns", "value": "api.example.com"}],
            "key_algorithm": "EC_P256",
            "ttl": "30d",
        },
        "CSR (EC P-256)": {
            "profile": setup["profile"],
            "method": "csr",
            "csr": csr_to_pem(csr),
            "ttl": "30d",
        },
    }


def record(
    results: dict[str, dict[str, Any]],
    lint: dict[str, float],
    memory: dict[str, int],
    args: argparse.Namespace,
    scan: dict[str, Any],
) -> None:
    memory_text = ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in sorted(memory.items()))
    lines = [
        "",
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — `make bench`"
        + (f" — {args.label}" if args.label else ""),
        "",
        f"Machine: {os.cpu_count()} cores, {_memory_gib():.0f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, `Prefer: wait=30`, "
        "everything on this machine.",
        "",
        "| scenario | req/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} |"
        )
    lines += [
        "",
        f"Pre-issuance lint: {lint['lint_ms']:.2f} ms per certificate "
        f"(build + sign alone: {lint['sign_ms']:.3f} ms). Resident memory after load: "
        f"{memory_text}.",
        "",
        f"Renewal scan over {lifecycle.TOTAL:,} certificates, {lifecycle.DUE:,} due: claimed in "
        f"{scan['claim_seconds']:.1f} s, every renew command published to JetStream after "
        f"{scan['emit_seconds']:.1f} s ({scan['commands_in_stream']:,} in the stream); a scan "
        f"with nothing due takes {scan['empty_scan_ms']:.1f} ms. CRL with "
        f"{scan['crl_entries']:,} revoked entries: {scan['crl_seconds']:.1f} s to query, sign "
        f"and store ({scan['crl_bytes']:,} bytes DER). Claim query plan:",
        "",
        "```",
        scan["plan"],
        "```",
        "",
    ]
    append_results("\n".join(lines))


def append_results(text: str) -> None:
    """Append a record to RESULTS.md, creating it with its heading the first time."""
    results_file = HERE / "RESULTS.md"
    if not results_file.exists():
        results_file.write_text(
            "# Benchmark results\n\nAppended by `make bench` and `make bench-compare` "
            "(see bench/README.md for what each figure means).\n"
        )
    with results_file.open("a") as f:
        f.write(text)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    main()
