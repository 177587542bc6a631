"""The catalog of every message Certforge sends: one `Contract` per subject.

Each entry names the subject (with the default namespace `certforge`; the namespace setting
changes the root), the JetStream stream it lands in, the pydantic model of its payload, who
publishes it, who consumes it and what it means. `docs/asyncapi.json` is generated from this list
(`make docs`), and a unit test fails when a message model of this package is missing from it.

Adding a contract: define its model in `commands.py`, `events.py` or `rpc.py`, then add one line
to `CATALOG` with `command(...)`, `event(...)` or `rpc(...)`.

Stream messages are CloudEvents 1.0 JSON envelopes (`envelope.CloudEvent`) whose `data` is the
model; request/reply messages on core NATS are the bare model, answered with an `RpcReply`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

from pydantic import BaseModel

from certforge.common.contracts.commands import (
    IssueCertificate,
    RenewCertificate,
    RevokeCertificate,
    SyncCertificate,
    ValidateChallenge,
)
from certforge.common.contracts.envelope import MessageData
from certforge.common.contracts.events import (
    AlertDeliveryFailed,
    CertificateExpired,
    CertificateExpiring,
    CertificateIssued,
    CertificateRenewalFailed,
    CertificateRenewed,
    CertificateRevoked,
    ChallengeValidated,
    ConfigurationChanged,
    RequestFailed,
    SyncFailed,
    SyncSucceeded,
)
from certforge.common.contracts.rpc import (
    ALERT_TEST,
    NOTIFIER_CHANNELS,
    AlertTestReply,
    CAReply,
    CreateCA,
    CrossSignCA,
    ImportCA,
    NotifierChannels,
    NotifierChannelsReply,
    RolloverCA,
    RpcReply,
    SyncTestReply,
    TestAlert,
    TestSync,
)
from certforge.common.contracts.subjects import Subjects

__all__ = [
    "API",
    "API_CACHES",
    "API_WAITERS",
    "APPLICATION",
    "CATALOG",
    "ISSUER",
    "NOTIFIER",
    "OTHER_SYSTEMS",
    "RENEWER",
    "SUBJECTS",
    "SYNCER",
    "VALIDATOR",
    "Contract",
    "catalog_problems",
    "command",
    "event",
    "rpc",
]

SUBJECTS = Subjects()
"""Subjects in the default namespace: the names the documents show."""

APPLICATION = "{application}"
"""The subject token of event subjects that carries the application's slug."""

API = "api"
ISSUER = "issuer"
RENEWER = "renewer"
SYNCER = "syncer"
VALIDATOR = "validator"
NOTIFIER = "notifier"
OTHER_SYSTEMS = "other systems"
API_WAITERS = "api (core subscription, wakes `Prefer: wait`)"
API_CACHES = "api (core subscription, drops its cached access and profile answers)"


@dataclass(frozen=True)
class Contract:
    """One message kind on one subject."""

    subject: str
    model: type[BaseModel]
    publishers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str
    stream: str | None = None
    """The JetStream stream that stores it; None for core-NATS request/reply (not persisted)."""
    reply: type[BaseModel] | None = None
    """The model of the answer, for request/reply."""

    @property
    def name(self) -> str:
        """A short unique name: the subject without the namespace root and without the
        application token (`cmd.issue`, `evt.certificate.issued`, `rpc.ca.create`)."""
        return self.subject.removeprefix(f"{SUBJECTS.namespace}.").replace(f"{APPLICATION}.", "")

    @property
    def event_type(self) -> str | None:
        """The CloudEvents `type` of stream messages; None for request/reply."""
        if isinstance(self.model, type) and issubclass(self.model, MessageData):
            return self.model.event_type
        return None


def command(
    subject: str,
    model: type[MessageData],
    *,
    publishers: tuple[str, ...],
    consumers: tuple[str, ...],
    description: str,
    stream: str = SUBJECTS.commands_stream,
) -> Contract:
    """A command on a work-queue stream: each message is consumed once, by one replica."""
    return Contract(
        subject=subject,
        model=model,
        publishers=publishers,
        consumers=consumers,
        description=description,
        stream=stream,
    )


def event(
    model: type[MessageData],
    *,
    publishers: tuple[str, ...],
    consumers: tuple[str, ...],
    description: str,
) -> Contract:
    """An event on the events stream, subject `<ns>.evt.<application>.<model.event_name>`."""
    return Contract(
        subject=SUBJECTS.event(APPLICATION, model.event_name),
        model=model,
        publishers=publishers,
        consumers=consumers,
        description=description,
        stream=SUBJECTS.events_stream,
    )


def rpc(
    subject: str,
    model: type[BaseModel],
    reply: type[BaseModel],
    *,
    publishers: tuple[str, ...],
    consumers: tuple[str, ...],
    description: str,
) -> Contract:
    """A core-NATS request answered by one replica of a queue group; nothing is stored."""
    return Contract(
        subject=subject,
        model=model,
        publishers=publishers,
        consumers=consumers,
        description=description,
        reply=reply,
    )


CATALOG: tuple[Contract, ...] = (
    # --- commands: CERTFORGE_COMMANDS (work queue) ------------------------------------------
    command(
        SUBJECTS.cmd_issue,
        IssueCertificate,
        publishers=(API,),
        consumers=(ISSUER,),
        description="Sign the pending certificate request `request_id`; its parameters are in "
        "the database. Redelivery never makes a second certificate.",
    ),
    command(
        SUBJECTS.cmd_renew,
        RenewCertificate,
        publishers=(API, RENEWER),
        consumers=(ISSUER,),
        description="Issue the successor of `certificate_id` through the pending request "
        "`request_id`: on demand from the API, or when the renewer finds it inside its "
        "renewal window.",
    ),
    command(
        SUBJECTS.cmd_revoke,
        RevokeCertificate,
        publishers=(API,),
        consumers=(ISSUER,),
        description="`certificate_id` was revoked with an RFC 5280 reason (the api recorded "
        "it); the issuer marks its CA's CRL dirty and signs the next one (coalesced).",
    ),
    command(
        SUBJECTS.sync_task,
        SyncCertificate,
        publishers=(SYNCER, API),
        consumers=(SYNCER,),
        description="Push one certificate to one sync destination, or remove it there. The "
        "syncer fans each certificate event out into one task per matching destination, so a "
        "failing destination is retried (nack with backoff) without holding back the others.",
        stream=SUBJECTS.sync_stream,
    ),
    command(
        SUBJECTS.validate_challenge,
        ValidateChallenge,
        publishers=(API,),
        consumers=(VALIDATOR,),
        description="An ACME client asked for challenge `challenge_id` to be checked: the "
        "validator fetches the http-01 token, queries the dns-01 TXT record or performs the "
        "tls-alpn-01 handshake, and records the verdict on the challenge, its authorization "
        "and its order. Redelivery of a decided challenge changes nothing.",
        stream=SUBJECTS.validation_stream,
    ),
    # --- events: CERTFORGE_EVENTS (limits, kept 7 days) --------------------------------------
    event(
        CertificateIssued,
        publishers=(ISSUER,),
        consumers=(NOTIFIER, SYNCER, OTHER_SYSTEMS, API_WAITERS),
        description="A certificate was issued for a request. Carries the public certificate, "
        "never a private key.",
    ),
    event(
        CertificateRenewed,
        publishers=(ISSUER,),
        consumers=(NOTIFIER, SYNCER, OTHER_SYSTEMS, API_WAITERS),
        description="A certificate was issued as the successor of `renewed_from_id`.",
    ),
    event(
        CertificateRenewalFailed,
        publishers=(ISSUER,),
        consumers=(NOTIFIER, OTHER_SYSTEMS),
        description="A renewal of `certificate_id` failed; it is retried with backoff from "
        "`next_attempt_at` (the failure is also recorded on the certificate).",
    ),
    event(
        CertificateRevoked,
        publishers=(API,),
        consumers=(NOTIFIER, SYNCER, OTHER_SYSTEMS),
        description="A certificate was revoked (recorded by the api in the same transaction, "
        "so OCSP answers `revoked` at once); destinations that remove on revoke remove it.",
    ),
    event(
        CertificateExpired,
        publishers=(RENEWER,),
        consumers=(SYNCER, OTHER_SYSTEMS),
        description="A certificate passed its `not_after` and is now `expired`; destinations "
        "that remove on expiry remove it.",
    ),
    event(
        CertificateExpiring,
        publishers=(RENEWER,),
        consumers=(OTHER_SYSTEMS,),
        description="A certificate reached an expiry alert threshold (`threshold`, e.g. 7d).",
    ),
    event(
        RequestFailed,
        publishers=(ISSUER,),
        consumers=(NOTIFIER, OTHER_SYSTEMS, API_WAITERS),
        description="A certificate request failed or was rejected; `errors` names the fields "
        "at fault.",
    ),
    # --- request/reply on core NATS: the issuer holds the CA keys ---------------------------
    rpc(
        SUBJECTS.rpc_ca_create,
        CreateCA,
        RpcReply[CAReply],
        publishers=(API,),
        consumers=(ISSUER,),
        description="Create a root or intermediate CA: the issuer generates the key, signs, "
        "and stores the CA with its key encrypted. Idempotent by `ca_id`, which the api "
        "chooses.",
    ),
    event(
        SyncSucceeded,
        publishers=(SYNCER,),
        consumers=(OTHER_SYSTEMS,),
        description="A certificate was pushed to (or removed from) a destination.",
    ),
    event(
        SyncFailed,
        publishers=(SYNCER,),
        consumers=(NOTIFIER, OTHER_SYSTEMS),
        description="A destination refused a certificate, or kept failing until the retry "
        "limit; `error` holds the destination's message.",
    ),
    event(
        ChallengeValidated,
        publishers=(VALIDATOR,),
        consumers=(OTHER_SYSTEMS,),
        description="The validator decided an ACME challenge: `valid`, or `invalid` with the "
        "ACME problem (`connection`, `dns`, `incorrectResponse`, `tls`, …) in `error`.",
    ),
    rpc(
        SUBJECTS.rpc_sync_test,
        TestSync,
        SyncTestReply,
        publishers=(API,),
        consumers=(SYNCER,),
        description="Check a destination's credentials and reachability without writing.",
    ),
    rpc(
        SUBJECTS.rpc_ca_import,
        ImportCA,
        RpcReply[CAReply],
        publishers=(API,),
        consumers=(ISSUER,),
        description="Import an external CA certificate and its private key. The key crosses "
        "NATS once, in this request: run NATS with TLS in production.",
    ),
    rpc(
        SUBJECTS.rpc_ca_rollover,
        RolloverCA,
        RpcReply[CAReply],
        publishers=(API,),
        consumers=(ISSUER,),
        description="Renew (same key) or rekey (new key) a CA: the issuer makes its successor, "
        "same subject, same parent, overlapping it. Idempotent by `ca_id`.",
    ),
    rpc(
        SUBJECTS.rpc_ca_cross_sign,
        CrossSignCA,
        RpcReply[CAReply],
        publishers=(API,),
        consumers=(ISSUER,),
        description="Cross-sign a CA with a second CA of ours (same subject and key, another "
        "issuer). Idempotent by `cross_id`; the reply names the cross-signed CA.",
    ),
    # --- alerts (issue 13) ------------------------------------------------------------------
    event(
        AlertDeliveryFailed,
        publishers=(NOTIFIER,),
        consumers=(OTHER_SYSTEMS,),
        description="An alert kept failing through one channel until the retry limit; "
        "`error` holds the last failure, `deliveries` the delivery rows (several for a digest).",
    ),
    # --- configuration (issue 17): api replicas keep what they authenticate with in memory ----
    Contract(
        subject=SUBJECTS.configuration_changed,
        model=ConfigurationChanged,
        publishers=(API,),
        consumers=(API_CACHES,),
        description="A token, identity, membership, application, profile, enrollment, policy "
        "or CA changed: every api replica forgets what it cached about them, so a revoked "
        "token or a disabled enrollment is refused everywhere within a second. Not about one "
        "application: the application token is `_system`.",
        stream=SUBJECTS.events_stream,
    ),
    rpc(
        SUBJECTS.rpc(ALERT_TEST),
        TestAlert,
        AlertTestReply,
        publishers=(API,),
        consumers=(NOTIFIER,),
        description="Send a sample alert through every channel of a rule, recording nothing; "
        "the reply gives each channel's outcome.",
    ),
    rpc(
        SUBJECTS.rpc(NOTIFIER_CHANNELS),
        NotifierChannels,
        NotifierChannelsReply,
        publishers=(API,),
        consumers=(NOTIFIER,),
        description="Which channel types the notifier can deliver (email only with an SMTP "
        "server configured): the api refuses a rule it could never deliver.",
    ),
)


def _message_models() -> list[type[MessageData]]:
    """Every concrete message model (one with an `event_type`) in this package."""
    import certforge.common.contracts as package

    found: dict[str, type[MessageData]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, MessageData)
                and obj.__module__ == module.__name__
                and isinstance(getattr(obj, "event_type", None), str)
            ):
                found[obj.__qualname__] = obj
    return list(found.values())


def catalog_problems(catalog: tuple[Contract, ...] = CATALOG) -> list[str]:
    """What is wrong with the catalog: missing contracts, duplicates, subjects that disagree."""
    problems: list[str] = []
    models = {c.model for c in catalog}
    subjects = [c.subject for c in catalog]
    problems += [
        f"{m.__module__}.{m.__qualname__} is not in the catalog (add it to CATALOG in {__name__})"
        for m in _message_models()
        if m not in models
    ]
    problems += [
        f"request/reply subject {getattr(SUBJECTS, name)} (Subjects.{name}) is not in the catalog"
        for name, value in inspect.getmembers(Subjects)
        if name.startswith("rpc_")
        and isinstance(value, property)
        and getattr(SUBJECTS, name) not in subjects
    ]
    problems += [
        f"subject {s} appears twice" for s in sorted(set(subjects)) if subjects.count(s) > 1
    ]
    types = [c.event_type for c in catalog if c.event_type is not None]
    problems += [
        f"CloudEvents type {t} appears twice" for t in sorted(set(types)) if types.count(t) > 1
    ]
    for c in catalog:
        name = getattr(c.model, "event_name", "")
        if name and not c.subject.endswith(f".{name}"):
            problems.append(f"{c.subject} does not end with its event name {name}")
        if c.stream is None and c.reply is None:
            problems.append(f"{c.subject} has neither a stream nor a reply model")
    return problems
