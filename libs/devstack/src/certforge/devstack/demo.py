"""`certforge-dev demo`: from `make run` to a first certificate in one command.

A client of the REST API only, like any other: as the bootstrap admin it makes sure the
development PKI exists (`seed.ensure_dev_pki`: a root and issuing CA, a policy that allows only
names reserved for testing, a profile, and an application `demo` with API and ACME enrollment
on; `make run` has usually made them already), then requests one certificate and prints it with
the `curl` that requests another. Running it again changes nothing but the new certificate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from certforge.devstack.cli import DEFAULT_API_PORT
from certforge.devstack.client import Api, detail
from certforge.devstack.errors import DevStackError
from certforge.devstack.seed import APPLICATION, PROFILE, ensure_dev_pki

COMMON_NAME = "hello.localhost"


def request_body(common_name: str) -> dict[str, Any]:
    return {
        "profile": PROFILE,
        "common_name": common_name,
        "sans": [{"type": "dns", "value": common_name}],
    }


def curl_command(base: str) -> str:
    body = json.dumps(request_body(COMMON_NAME))
    return (
        f'curl -s -H "Authorization: Bearer $(cat {_token_hint()})" '
        '-H "Content-Type: application/json" -H "Prefer: wait=10" \\\n'
        f"      -X POST {base}/api/v1/applications/{APPLICATION}/certificate-requests \\\n"
        f"      -d '{body}'"
    )


def _token_hint() -> str:
    return os.environ.get("CERTFORGE_STATE_DIR", ".certforge") + "/secrets/bootstrap_token"


def issue(api: Api) -> dict[str, Any]:
    status, answer = api.call(
        "POST",
        f"/api/v1/applications/{APPLICATION}/certificate-requests",
        request_body(COMMON_NAME),
        headers={"Prefer": "wait=30"},
    )
    if status != 201:
        raise DevStackError(f"the certificate request answered {status}: {detail(answer)}")
    certificate: dict[str, Any] = answer["certificate"]
    return certificate


def bootstrap_token(state_dir: Path) -> str:
    from_env = os.environ.get("CERTFORGE_BOOTSTRAP_TOKEN")
    if from_env:
        return from_env
    path = state_dir / "secrets" / "bootstrap_token"
    if not path.is_file():
        raise DevStackError(f"{path} does not exist; start the stack first with `make run`")
    return path.read_text().strip()


def api_url() -> str:
    port = os.environ.get("CERTFORGE_API_PORT", str(DEFAULT_API_PORT))
    return f"http://127.0.0.1:{port}"


def demo(base: str, token: str) -> int:
    api = Api(base, token)
    print(f"Setting up the demo on {base} …")
    ensure_dev_pki(api, say=lambda line: print(f"  {line}"))
    certificate = issue(api)
    print(
        f"\nIssued {COMMON_NAME}: serial {certificate['serial_number']}, "
        f"valid until {certificate['not_after']}, certificate id {certificate['id']}.\n"
        "Its private key was returned once, in the answer; the demo does not keep it.\n\n"
        "Request another certificate (the same call is in the README's First certificate):\n"
        f"  {curl_command(base)}\n"
    )
    return 0
