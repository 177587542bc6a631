"""What the api replicas' access caches save: CPU per certificate with them on and off, A/B.

Starts the system as `make bench` does, once with `CERTFORGE_ACCESS_CACHE_SECONDS=0` (no cache:
every request looks its token and its profile up in PostgreSQL) and once with the default,
alternating for `--rounds`, and drives managed EC P-256 issuance (`Prefer: wait`) with wrk for
`--seconds` each time. Prints, per run, req/s and the CPU per certificate of the api, of
PostgreSQL and of every process together (from /proc, as bench/cpu.py counts it).
Alternating rounds share the machine's background load, which matters on a busy machine.

    .venv/bin/python bench/api_cache.py --seconds 20 --rounds 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CLOCK_TICKS, System, cpu_ticks, scenarios

VARIANTS = {"cache off": {"CERTFORGE_ACCESS_CACHE_SECONDS": "0"}, "cache on": {}}


def measure(settings: dict[str, str], seconds: int, connections: int) -> dict[str, float]:
    for attempt in range(3):
        try:
            return _measure(settings, seconds, connections)
        except OSError as exc:  # the system died while starting (seen on an overloaded machine)
            print(f"start failed ({exc}); attempt {attempt + 2} of 3", file=sys.stderr)
    raise SystemExit("the system did not start three times in a row")


def _measure(settings: dict[str, str], seconds: int, connections: int) -> dict[str, float]:
    with System(settings) as system:
        try:
            setup = system.setup()
        except OSError:
            log = (system.state / "system.log").read_text(errors="replace")
            print("\n".join(log.splitlines()[-25:]), file=sys.stderr)
            raise
        body = scenarios(setup)["EC P-256 managed"]
        system.warm_up(body)
        pids = {role: [pid for pid, _ in found] for role, found in system.processes().items()}
        before = {pid: cpu_ticks(pid) for found in pids.values() for pid in found}
        load = argparse.Namespace(threads=2, connections=connections, duration=seconds)
        result = system.wrk(body, load)
        used = {
            role: sum(cpu_ticks(pid) - before.get(pid, 0) for pid, _ in found)
            for role, found in system.processes().items()
        }
    issued = max(result["requests"] - result["errors"], 1)
    per_cert = {role: ticks * 1000 / CLOCK_TICKS / issued for role, ticks in used.items()}
    return {
        "rps": result["rps"],
        "api": per_cert.get("api", 0.0),
        "postgres": per_cert.get("postgres", 0.0),
        "total": sum(per_cert.values()),
        "errors": result["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    print("| round | variant | req/s | api ms/cert | PostgreSQL ms/cert | total ms/cert | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        for name, settings in VARIANTS.items():
            r = measure(settings, args.seconds, args.connections)
            print(
                f"| {round_} | {name} | {r['rps']:.1f} | {r['api']:.2f} | {r['postgres']:.2f} "
                f"| {r['total']:.2f} | {r['errors']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
