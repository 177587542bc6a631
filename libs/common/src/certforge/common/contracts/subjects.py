"""Stream and subject names, derived from one namespace so test runs never collide.

With the default namespace `certforge` these are exactly the names of DESIGN.md:
streams `CERTFORGE_COMMANDS` (work queue) and `CERTFORGE_EVENTS` (limits), subjects
`certforge.cmd.issue|renew|revoke` and `certforge.evt.<application>.<event>`.
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEM_APPLICATION = "_system"
"""The application token of events about no single application."""


@dataclass(frozen=True)
class Subjects:
    namespace: str = "certforge"

    @property
    def commands_stream(self) -> str:
        return f"{self.namespace.upper()}_COMMANDS"

    @property
    def events_stream(self) -> str:
        return f"{self.namespace.upper()}_EVENTS"

    @property
    def sync_stream(self) -> str:
        """Work queue of per-destination sync tasks (its own stream: a work-queue stream
        refuses overlapping consumers, and NATS 2.9 has no multi-subject consumer filters)."""
        return f"{self.namespace.upper()}_SYNC"

    @property
    def sync_wildcard(self) -> str:
        return f"{self.namespace}.sync.>"

    @property
    def sync_task(self) -> str:
        return f"{self.namespace}.sync.task"

    @property
    def validation_stream(self) -> str:
        """Work queue of ACME challenge validations (its own stream for the same reason as
        sync: the issuer's consumer takes every `cmd.>` subject)."""
        return f"{self.namespace.upper()}_VALIDATION"

    @property
    def validation_wildcard(self) -> str:
        return f"{self.namespace}.validate.>"

    @property
    def validate_challenge(self) -> str:
        return f"{self.namespace}.validate.challenge"

    @property
    def rpc_sync_test(self) -> str:
        return self.rpc("sync.test")

    @property
    def commands_wildcard(self) -> str:
        return f"{self.namespace}.cmd.>"

    @property
    def events_wildcard(self) -> str:
        return f"{self.namespace}.evt.>"

    @property
    def cmd_issue(self) -> str:
        return f"{self.namespace}.cmd.issue"

    @property
    def cmd_renew(self) -> str:
        return f"{self.namespace}.cmd.renew"

    @property
    def cmd_revoke(self) -> str:
        return f"{self.namespace}.cmd.revoke"

    def event(self, application: str, name: str) -> str:
        """`<ns>.evt.<application slug>.<name>`, e.g. `certforge.evt.shop.certificate.issued`."""
        return f"{self.namespace}.evt.{application}.{name}"

    @property
    def configuration_changed(self) -> str:
        """`<ns>.evt._system.configuration.changed`: on the events stream, under an application
        token no slug can take (slugs have no `_`), so `evt.*.<name>` filters still work."""
        return self.event(SYSTEM_APPLICATION, "configuration.changed")

    def rpc(self, name: str) -> str:
        """Core-NATS request/reply subjects (not in any stream): `<ns>.rpc.<name>`."""
        return f"{self.namespace}.rpc.{name}"

    @property
    def rpc_ca_create(self) -> str:
        return self.rpc("ca.create")

    @property
    def rpc_ca_import(self) -> str:
        return self.rpc("ca.import")

    @property
    def api_heartbeat(self) -> str:
        """Core NATS, api replicas only: each replica's id, every second (`api/replicas.py`)."""
        return f"{self.namespace}.api.replica.heartbeat"

    @property
    def api_forget(self) -> str:
        """Core NATS request, api replicas only: drop an OCSP answer from memory, then reply."""
        return f"{self.namespace}.api.replica.forget"

    @property
    def rpc_ca_rollover(self) -> str:
        return self.rpc("ca.rollover")

    @property
    def rpc_ca_cross_sign(self) -> str:
        return self.rpc("ca.cross_sign")

    def durable(self, name: str) -> str:
        """Durable consumer names are namespaced too: `<ns>_<name>`."""
        return f"{self.namespace}_{name}"
