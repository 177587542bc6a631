"""The development PKI that `make run` and `make demo` both rely on, made through the REST API.

As the bootstrap admin it creates, or finds from an earlier run: a development root and issuing
CA, a policy that allows only names reserved for testing (`localhost`, `*.localhost`, `*.test`;
RFC 6761) and loopback addresses, a profile, and an application `demo` with API enrollment on
and ACME enrollment on (External Account Binding required). Running it again changes nothing.
For development stacks only: production CAs are made deliberately, not by a script.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certforge.devstack.client import Api, Pause, find

__all__ = [
    "APPLICATION",
    "ISSUING_CA",
    "POLICY",
    "PROFILE",
    "RESERVED_NAMES",
    "ROOT_CA",
    "DevPki",
    "acme_directory_path",
    "ensure_dev_pki",
]

APPLICATION = "demo"
PROFILE = "dev-tls"
POLICY = "dev-local"
ROOT_CA = "dev-root"
ISSUING_CA = "dev-issuing"
RESERVED_NAMES = ["localhost", "*.localhost", "**.localhost", "*.test", "**.test"]
LOOPBACK = ["127.0.0.0/8", "::1/128"]


@dataclass(frozen=True)
class DevPki:
    """What the seed made or found: the CAs' ids and PEMs (the root is the trust anchor a
    client needs), and the slugs ACME and API enrollment live under."""

    root_id: str
    root_pem: str
    issuing_id: str
    issuing_pem: str
    application: str = APPLICATION
    profile: str = PROFILE


def acme_directory_path(application: str = APPLICATION, profile: str = PROFILE) -> str:
    """The ACME directory's path on the api (`/acme/{application}/{profile}/directory`)."""
    return f"/acme/{application}/{profile}/directory"


def _ca(
    api: Api, name: str, body: dict[str, Any], pause: Pause, say: Callable[[str], None]
) -> dict[str, Any]:
    found = find(api.every("/api/v1/cas"), "name", name)
    if found is not None:
        return found
    created: dict[str, Any] = api.expect_when_ready(
        201, "POST", "/api/v1/cas", {"name": name, **body}, pause
    )
    say(f"created CA {name}")
    return created


def ensure_dev_pki(
    api: Api, pause: Pause = time.sleep, say: Callable[[str], None] = print
) -> DevPki:
    """The development CAs, policy, profile and application, each created only when missing;
    API enrollment on, and ACME enrollment turned on unless it already is (an admin's later
    choices, such as the allowed challenge types, are kept). `say` reports what was created."""
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
        pause,
        say,
    )
    issuing = _ca(
        api,
        ISSUING_CA,
        {
            "type": "intermediate",
            "parent_ca_id": root["id"],
            "subject": {"common_name": "Certforge Development Issuing CA"},
            "key_algorithm": "EC_P256",
            "validity": "5y",
            "max_path_length": 0,
        },
        pause,
        say,
    )
    policy = find(api.every("/api/v1/policies"), "name", POLICY)
    if policy is None:
        policy = api.expect(
            201,
            "POST",
            "/api/v1/policies",
            {
                "name": POLICY,
                "description": "names reserved for testing and loopback addresses only (RFC 6761)",
                "sans": {"dns": {"allowed": RESERVED_NAMES}, "ip": {"allowed": LOOPBACK}},
                "max_validity": "90d",
            },
        )
        say(f"created policy {POLICY}")
    status, _ = api.call("GET", f"/api/v1/profiles/{PROFILE}")
    if status == 404:
        api.expect(
            201,
            "POST",
            "/api/v1/profiles",
            {
                "slug": PROFILE,
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
        say(f"created profile {PROFILE}")
    status, _ = api.call("GET", f"/api/v1/applications/{APPLICATION}")
    if status == 404:
        api.expect(201, "POST", "/api/v1/applications", {"slug": APPLICATION, "name": "Demo"})
        say(f"created application {APPLICATION}")
    api.expect(
        (200, 201),
        "PUT",
        f"/api/v1/applications/{APPLICATION}/profiles/{PROFILE}",
        {"api": {"enabled": True}},
    )
    _ensure_acme(api, say)
    return DevPki(
        root_id=str(root["id"]),
        root_pem=str(root["certificate"]),
        issuing_id=str(issuing["id"]),
        issuing_pem=str(issuing["certificate"]),
    )


def _ensure_acme(api: Api, say: Callable[[str], None]) -> None:
    enrollment = f"/api/v1/applications/{APPLICATION}/profiles/{PROFILE}/enrollment/acme"
    status, current = api.call("GET", enrollment)
    if status == 200 and isinstance(current, dict) and current.get("enabled"):
        return
    api.expect(200, "PUT", enrollment, {"enabled": True, "eab_required": True})
    say(f"turned ACME enrollment on for {APPLICATION}/{PROFILE} (EAB required)")
