"""One typed error hierarchy crosses every boundary; the API maps it to problem+json in one place.

    CertforgeError                 (500 only if raised by a bug; carries code, detail, fields)
    ├── InvalidInput               400 malformed input (bad PEM, bad JSON shape)
    ├── Unprocessable              422 well-formed but refused (policy, CA disabled, …)
    │   └── PolicyViolation        422 with one entry per violated rule
    ├── Unauthenticated            401
    ├── Forbidden                  403
    ├── NotFound                   404
    ├── Conflict                   409 (duplicate slug, revoking twice, idempotency mismatch)
    ├── PayloadTooLarge            413
    └── Unavailable                503 a dependency (NATS, issuer, database) did not answer

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
    status: int = 500

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @classmethod
    def on_field(cls, name: str, message: str) -> CertforgeError:
        """An error about one field, with the message repeated as the detail."""
        return cls(detail=f"{name}: {message}", errors=[FieldError(name, message)])


@dataclass
class InvalidInput(CertforgeError):
    code: str = "invalid-input"
    status: int = 400


@dataclass
class Unprocessable(CertforgeError):
    code: str = "unprocessable"
    status: int = 422


@dataclass
class PolicyViolation(Unprocessable):
    code: str = "policy-violation"


@dataclass
class Unauthenticated(CertforgeError):
    code: str = "unauthenticated"
    status: int = 401


@dataclass
class Forbidden(CertforgeError):
    code: str = "forbidden"
    status: int = 403


@dataclass
class NotFound(CertforgeError):
    code: str = "not-found"
    status: int = 404


@dataclass
class Conflict(CertforgeError):
    code: str = "conflict"
    status: int = 409


@dataclass
class PayloadTooLarge(CertforgeError):
    code: str = "payload-too-large"
    status: int = 413


@dataclass
class Unavailable(CertforgeError):
    code: str = "unavailable"
    status: int = 503
