"""`certforge-dev demo`: from an empty `make run` to a first certificate in one command.

A client of the REST API only, like any other: as the bootstrap admin it creates, or finds
from an earlier run, a development root and issuing CA, a policy that allows only names
reserved for testing (`localhost`, `*.localhost`, `*.test`; RFC 6761), a profile, and an
application `demo` with API enrollment on; then it requests one certificate and prints it with
the `curl` that requests another. Running it again changes nothing but the new certificate.
For development stacks only: production CAs are made deliberately, not by a demo.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certforge.devstack.cli import DEFAULT_API_PORT, DevStackError

APPLICATION = "demo"
PROFILE = "dev-tls"
POLICY = "dev-local"
ROOT_CA = "dev-root"
ISSUING_CA = "dev-issuing"
COMMON_NAME = "hello.localhost"
RESERVED_NAMES = ["localhost", "*.localhost", "**.localhost", "*.test", "**.test"]


@dataclass
class Api:
    """The few HTTP calls the demo makes, with the bootstrap admin's token."""

    base: str
    token: str

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the developer's own API URL
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")
        except (urllib.error.URLError, OSError) as exc:
            raise DevStackError(
                f"cannot reach the API at {self.base} ({exc}); is `make run` running?"
            ) from exc

    def expect(
        self, status: int | tuple[int, ...], method: str, path: str, body: Any = None
    ) -> Any:
        wanted = (status,) if isinstance(status, int) else status
        got, answer = self.call(method, path, body)
        if got not in wanted:
            detail = answer.get("detail") if isinstance(answer, dict) else answer
            raise DevStackError(f"{method} {path} answered {got}: {detail}")
        return answer


def _find(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((item for item in items if item.get(key) == value), None)


def _ca(api: Api, name: str, body: dict[str, Any]) -> str:
    found = _find(api.expect(200, "GET", "/api/v1/cas"), "name", name)
    if found is not None:
        return str(found["id"])
    created = api.expect(201, "POST", "/api/v1/cas", {"name": name, **body})
    print(f"  created CA {name}")
    return str(created["id"])


def set_up(api: Api) -> None:
    """The demo's CAs, policy, profile and application, each created only when missing."""
    root = _ca(
        api,
        ROOT_CA,
        {
            "type": "root",
            "subject": {"common_name": "Certforge Development Root CA"},
            "key_algorithm": "EC_P256",
            "validity": "10y",
            "max_path_length": 1,
        },
    )
    issuing = _ca(
        api,
        ISSUING_CA,
        {
            "type": "intermediate",
            "parent_ca_id": root,
            "subject": {"common_name": "Certforge Development Issuing CA"},
            "key_algorithm": "EC_P256",
            "validity": "5y",
            "max_path_length": 0,
        },
    )
    policy = _find(api.expect(200, "GET", "/api/v1/policies"), "name", POLICY)
    if policy is None:
        policy = api.expect(
            201,
            "POST",
            "/api/v1/policies",
            {
                "name": POLICY,
                "description": "names reserved for testing only (RFC 6761)",
                "sans": {
                    "dns": {"allowed": RESERVED_NAMES},
                    "ip": {"allowed": ["127.0.0.0/8", "::1/128"]},
                },
                "max_validity": "90d",
            },
        )
        print(f"  created policy {POLICY}")
    status, _ = api.call("GET", f"/api/v1/profiles/{PROFILE}")
    if status == 404:
        api.expect(
            201,
            "POST",
            "/api/v1/profiles",
            {
                "slug": PROFILE,
                "ca_id": issuing,
                "policy_id": policy["id"],
                "defaults": {
                    "ttl": "30d",
                    "key_algorithm": "EC_P256",
                    "key_usages": ["digital_signature"],
                    "extended_key_usages": ["server_auth"],
                },
            },
        )
        print(f"  created profile {PROFILE}")
    status, _ = api.call("GET", f"/api/v1/applications/{APPLICATION}")
    if status == 404:
        api.expect(201, "POST", "/api/v1/applications", {"slug": APPLICATION, "name": "Demo"})
        print(f"  created application {APPLICATION}")
    api.expect(
        (200, 201),
        "PUT",
        f"/api/v1/applications/{APPLICATION}/profiles/{PROFILE}",
        {"api": {"enabled": True}},
    )


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
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        raise DevStackError(f"the certificate request answered {status}: {detail}")
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
    set_up(api)
    certificate = issue(api)
    print(
        f"\nIssued {COMMON_NAME}: serial {certificate['serial_number']}, "
        f"valid until {certificate['not_after']}, certificate id {certificate['id']}.\n"
        "Its private key was returned once, in the answer; the demo does not keep it.\n\n"
        "Request another certificate (the same call is in the README's First certificate):\n"
        f"  {curl_command(base)}\n"
    )
    return 0
