"""Where a certificate's CPU goes: CPU time per certificate of each Certforge process.

Starts the system as `make bench` does, drives managed EC P-256 issuance (or a CSR) with wrk
for `--seconds`, and prints req/s, latency and, for each process (api, issuer, syncer,
renewer, NATS, PostgreSQL), its CPU time during the run over the certificates issued (from
/proc). With `--py-spy DIR` it also samples the api, issuer and syncer with py-spy (which must
be on PATH, e.g. `pip install py-spy` in any venv) and writes raw collapsed stacks to DIR, the
profiles `bench/RESULTS.md` quotes. `--no-lint` turns pre-issuance linting off; `--full-lint`
keeps it on but without the shape cache (every certificate through pkilint, as before issue 17).

    .venv/bin/python bench/cpu.py --seconds 20 [--no-lint | --full-lint] [--csr] [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CLOCK_TICKS, System, cpu_ticks, scenarios

SAMPLED = ("api", "issuer", "syncer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--no-lint", action="store_true", help="CERTFORGE_LINT_BEFORE_SIGNING=false"
    )
    parser.add_argument(
        "--full-lint", action="store_true", help="CERTFORGE_LINT_CACHE_SIZE=0: no shape cache"
    )
    parser.add_argument("--csr", action="store_true", help="CSR signing instead of managed keys")
    parser.add_argument("--py-spy", metavar="DIR", help="also record py-spy profiles into DIR")
    args = parser.parse_args()
    spy = shutil.which("py-spy") if args.py_spy else None
    if args.py_spy and spy is None:
        sys.exit("py-spy is not on PATH (pip install py-spy)")

    settings = {"CERTFORGE_LINT_BEFORE_SIGNING": "false"} if args.no_lint else {}
    if args.full_lint:
        settings["CERTFORGE_LINT_CACHE_SIZE"] = "0"
    with System(settings) as system:
        setup = system.setup()
        body = scenarios(setup)["CSR (EC P-256)" if args.csr else "EC P-256 managed"]
        system.warm_up(body)
        pids = {role: [pid for pid, _ in found] for role, found in system.processes().items()}
        recorders = []
        if spy is not None:
            Path(args.py_spy).mkdir(parents=True, exist_ok=True)
            for role in SAMPLED:
                for pid in pids.get(role, []):
                    out = Path(args.py_spy) / f"{role}-{pid}.txt"
                    record = [spy, "record", "--nonblocking", "-r", "200", "-f", "raw"]
                    recorders.append(
                        subprocess.Popen(
                            [*record, "-d", str(args.seconds), "-o", str(out), "-p", str(pid)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
        before = {pid: cpu_ticks(pid) for found in pids.values() for pid in found}
        load = argparse.Namespace(threads=2, connections=args.connections, duration=args.seconds)
        result = system.wrk(body, load)
        # by the processes alive at the end: PostgreSQL backends that pools opened during the
        # run count from zero (as compare.py counts them)
        used = {
            role: sum(cpu_ticks(pid) - before.get(pid, 0) for pid, _ in found)
            for role, found in system.processes().items()
        }
        for recorder in recorders:
            recorder.wait()

    issued = max(result["requests"] - result["errors"], 1)
    per_cert = {role: ticks * 1000 / CLOCK_TICKS / issued for role, ticks in used.items()}
    print(json.dumps({k: round(v, 1) for k, v in result.items()}))
    for role, ms in sorted(per_cert.items(), key=lambda item: -item[1]):
        print(f"{role:<10} {ms:6.2f} ms CPU per certificate")
    print(f"{'total':<10} {sum(per_cert.values()):6.2f} ms CPU per certificate")
    if recorders:
        print(f"py-spy profiles (raw collapsed stacks) in {args.py_spy}")


if __name__ == "__main__":
    main()
