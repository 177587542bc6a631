"""What judging a request's names costs: the api's early check of one request (`checked_template`:
the template, the policy, the name constraints), in microseconds, on one core.

Pure CPU, no services: runs in a few seconds, so it can compare two commits. Cases: an ASCII
request (the hot path: CN + 2 DNS SANs), the same with an IDN (U-labels to convert), and a
policy with denied patterns (matched in every reading of the name).

    .venv/bin/python bench/names.py [--rounds 9] [--calls 500]

The fastest round is reported: on a shared machine it is the least disturbed one.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from certforge.api.domain.requests import checked_template
from certforge.common.domain import RequestMethod, SubjectFields
from certforge.common.issuance import ProfileDefaults, RequestParams
from certforge.common.template import San

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _target(policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "ca_name": "issuing",
        "ca_key_algorithm": "EC_P256",
        "ca_not_after": NOW + timedelta(days=3650),
        "ca_name_constraints": None,
        "ca_chain_name_constraints": [],
        "defaults": ProfileDefaults().model_dump(mode="json"),
        "policy_name": "web",
        "policy_document": policy,
    }


def _request(host: str) -> dict[str, Any]:
    return {"common_name": host, "sans": [host, f"www.{host}"]}


_ALLOW = {"sans": {"dns": {"allowed": ["**.example.com"]}}}
_DENY = {
    "subject": {"organization": {"denied": ["Evil Corp"]}},
    "sans": {
        "dns": {
            "allowed": ["**.example.com"],
            "denied": ["admin.example.com", "fass.example.com", "*.internal.example.com"],
        }
    },
}
CASES = {
    "ascii, allow only": (_ALLOW, _request("api.example.com")),
    "idn (U-labels), allow only": (_ALLOW, _request("stra\u00dfe.example.com")),
    "ascii, denied patterns": (_DENY, _request("api.example.com")),
    "idn (A-labels), denied patterns": (_DENY, _request("xn--strae-oqa.example.com")),
}


def _params(request: dict[str, Any]) -> RequestParams:
    return RequestParams(
        method=RequestMethod.MANAGED,
        subject=SubjectFields(common_name=request["common_name"]),
        sans=[San(type="dns", value=v) for v in request["sans"]],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    print(f"| case | µs per request (fastest of {args.rounds} rounds of {args.calls}) |")
    print("|---|---:|")
    for name, (policy, request) in CASES.items():
        target = _target(policy)
        rounds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                checked_template(target, _params(request), NOW)
            rounds.append((time.perf_counter() - start) / args.calls * 1e6)
        print(f"| {name} | {min(rounds):.1f} |")


if __name__ == "__main__":
    main()
