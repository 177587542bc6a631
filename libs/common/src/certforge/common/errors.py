"""One typed error hierarchy crosses every boundary; the API maps it to problem+json in one place.

    CertforgeError          a bug if raised as such; carries code, detail, fields
    ├── InvalidInput        malformed input (bad PEM, bad JSON shape)
    ├── Unprocessable       well-formed but refused (policy, CA disabled, …)
    │   └── PolicyViolation with one entry per violated rule
    ├── Unauthenticated     no or unknown credentials
    ├── Forbidden           known caller, missing role
    ├── NotFound
    ├── Conflict            duplicate slug, revoking twice, idempotency mismatch
    ├── StaleVersion        the caller changed an object from an outdated copy (lost update)
    ├── PayloadTooLarge
    ├── RateLimited         too many requests of one caller; `retry_after` seconds
    └── Unavailable         a dependency (NATS, issuer, database) did not answer

The kinds say what went wrong, never how a protocol reports it: the issuer, renewer and syncer
raise them without speaking HTTP, and the api's edge (`certforge.api.problems`) alone turns a
kind into an HTTP status. `code` names the kind on the wire (problem `type`, the CA RPC reply).

`detail` is written for the caller and must never contain a secret; `errors` names the fields
at fault as JSON pointers-ish dotted paths (`sans.0.value`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class CertforgeError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    code: str = "internal"

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @classmethod
    def on_field(cls, name: str, message: str) -> CertforgeError:
        """An error about one field, with the message repeated as the detail."""
        return cls(detail=f"{name}: {message}", errors=[FieldError(name, message)])


@dataclass
class InvalidInput(CertforgeError):
    code: str = "invalid-input"


@dataclass
class Unprocessable(CertforgeError):
    code: str = "unprocessable"


@dataclass
class PolicyViolation(Unprocessable):
    code: str = "policy-violation"


@dataclass
class Unauthenticated(CertforgeError):
    code: str = "unauthenticated"


@dataclass
class Forbidden(CertforgeError):
    code: str = "forbidden"


@dataclass
class NotFound(CertforgeError):
    code: str = "not-found"


@dataclass
class Conflict(CertforgeError):
    code: str = "conflict"


@dataclass
class StaleVersion(CertforgeError):
    """The object changed since the caller read the version it names (`If-Match`): applying
    the change would silently undo someone else's."""

    code: str = "stale-version"


@dataclass
class PayloadTooLarge(CertforgeError):
    code: str = "payload-too-large"


@dataclass
class RateLimited(CertforgeError):
    code: str = "rate-limited"
    retry_after: int = 1
    """Whole seconds until the caller's next attempt can succeed."""


@dataclass
class Unavailable(CertforgeError):
    code: str = "unavailable"


ERROR_KINDS: dict[str, type[CertforgeError]] = {
    kind.code: kind
    for kind in (
        CertforgeError,
        InvalidInput,
        Unprocessable,
        PolicyViolation,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        StaleVersion,
        PayloadTooLarge,
        RateLimited,
        Unavailable,
    )
}
"""Every kind by its `code`, so a receiver re-raises the kind a peer named (the CA RPC reply)."""
