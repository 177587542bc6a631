"""Turn the run records of `make test-faults` (JSON lines, `CERTFORGE_FAULT_RESULTS`) into the
table of tests/faults/RESULTS.md:

    .venv/bin/python tests/faults/summarize.py /tmp/certforge-fault-results.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = (
    ("seed", "seed"),
    ("accepted", "issue requests accepted"),
    ("issue_issued", "issued"),
    ("issue_failed", "failed"),
    ("renew_issued", "renewed"),
    ("revoked", "revoked"),
    ("duplicates", "duplicated"),
    ("unanswered", "lost"),
    ("destination_mismatches", "wrong at a destination"),
    ("longest_stall_s", "longest stall (s)"),
    ("run_s", "run (s)"),
)


def main(path: str) -> None:
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    print("| " + " | ".join(title for _, title in COLUMNS) + " | faults, in order | problems |")
    print("|" + "---|" * (len(COLUMNS) + 2))
    for r in records:
        cells = [str(r.get(key, 0)) for key, _ in COLUMNS]
        faults = ", ".join(f.split()[-1] for f in r.get("faults", []))
        problems = "; ".join(r.get("problems", [])) or "none"
        print("| " + " | ".join(cells) + f" | {faults} | {problems} |")
    answers: dict[str, int] = {}
    for r in records:
        for k, v in r.get("answers", {}).items():
            answers[k] = answers.get(k, 0) + v
    print(f"\nEvery answer the clients got, retries included, over {len(records)} runs: {answers}")


if __name__ == "__main__":
    main(sys.argv[1])
