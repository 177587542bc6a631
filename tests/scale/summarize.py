"""Turn the run records of `make test-scale` (JSON lines, `CERTFORGE_SCALE_RESULTS`) into the
tables of tests/scale/RESULTS.md:

    .venv/bin/python tests/scale/summarize.py /tmp/certforge-scale-results.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("scenario", "scenario"),
    ("accepted", "issue requests accepted"),
    ("issue_issued", "issued"),
    ("issue_failed", "failed"),
    ("renew_issued", "renewed (API + renewer)"),
    ("revoked", "revoked"),
    ("unanswered", "lost"),
    ("duplicates", "duplicated"),
    ("destination_mismatches", "wrong at the directory"),
    ("crls", "CRLs (numbers unique)"),
    ("longest_stall_s", "longest client stall (s)"),
    ("longest_wait_ms", "longest wait for a certificate (ms)"),
    ("recover_s", "clients saw errors for (s)"),
    ("run_s", "run (s)"),
)


def _cells(r: dict[str, Any]) -> list[str]:
    r = {**r, "recover_s": max(r.get("recovery_s", {}).values(), default=0.0)}
    return [str(r.get(key, 0)) for key, _ in COLUMNS]


def main(path: str) -> None:
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    print("| " + " | ".join(title for _, title in COLUMNS) + " | problems |")
    print("|" + "---|" * (len(COLUMNS) + 1))
    for r in records:
        problems = "; ".join(r.get("problems", [])) or "none"
        print("| " + " | ".join(_cells(r)) + f" | {problems} |")
    print("\nFaults from the start of the load; clients told to retry for how long after each:\n")
    for r in records:
        for fault in r.get("faults", []):
            at, _, what = fault.strip().partition(" ")
            print(f"- {r['scenario']}, {at}: {what} ({r['recovery_s'].get(what, 0.0)} s)")
    print("\n| processes of each service | certificates issued per second | p99 wait (ms) |")
    print("|---|---|---|")
    for r in records:
        if r["scenario"].startswith("throughput"):
            print(f"| {r['replicas']} | {r['issued_per_s']} | {r.get('p99_wait_ms', 0)} |")
    answers: dict[str, int] = {}
    for r in records:
        for k, v in r.get("answers", {}).items():
            answers[k] = answers.get(k, 0) + v
    print(f"\nEvery answer the clients got, retries included, over {len(records)} runs: {answers}")


if __name__ == "__main__":
    main(sys.argv[1])
