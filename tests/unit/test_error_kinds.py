"""Error kinds carry no HTTP status: the api's edge maps each one, and the CA RPC names kinds.

A kind added to `certforge.common.errors` without a status in `certforge.api.problems.STATUSES`
would answer 500 ("a bug") for an ordinary refusal; `test_every_kind_has_a_status_at_the_edge`
catches that. A kind missing from `ERROR_KINDS` would come back from the issuer as 503.
"""

from __future__ import annotations

import pytest

from certforge.api.issuer_client import as_error
from certforge.api.problems import status_for
from certforge.common.contracts.rpc import RpcError
from certforge.common.errors import (
    ERROR_KINDS,
    CertforgeError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)


def _kinds(root: type[CertforgeError] = CertforgeError) -> list[type[CertforgeError]]:
    """Every subclass of `root`, however deep: the kinds a service may raise."""
    found = []
    for kind in root.__subclasses__():
        found += [kind, *_kinds(kind)]
    return found


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        pytest.param(InvalidInput, 400, id="ok/invalid-input-400"),
        pytest.param(Unauthenticated, 401, id="ok/unauthenticated-401"),
        pytest.param(Forbidden, 403, id="ok/forbidden-403"),
        pytest.param(NotFound, 404, id="ok/not-found-404"),
        pytest.param(Conflict, 409, id="ok/conflict-409"),
        pytest.param(PayloadTooLarge, 413, id="ok/payload-too-large-413"),
        pytest.param(Unprocessable, 422, id="ok/unprocessable-422"),
        pytest.param(PolicyViolation, 422, id="ok/policy-violation-inherits-422"),
        pytest.param(Unavailable, 503, id="ok/unavailable-503"),
        pytest.param(CertforgeError, 500, id="fail/bare-error-is-a-bug-500"),
    ],
)
def test_status_of_each_kind(kind: type[CertforgeError], status: int) -> None:
    assert status_for(kind("refused")) == status


@pytest.mark.parametrize("kind", _kinds(), ids=lambda k: f"ok/{k.__name__}")
def test_every_kind_has_a_status_at_the_edge(kind: type[CertforgeError]) -> None:
    status = status_for(kind("refused"))

    assert status != 500, f"{kind.__name__} falls through to 500: add it to STATUSES"


def test_kinds_carry_no_http_status() -> None:
    assert not any(hasattr(kind("x"), "status") for kind in [CertforgeError, *_kinds()])


@pytest.mark.parametrize("kind", _kinds(), ids=lambda k: f"ok/{k.__name__}")
def test_every_kind_is_named_by_its_code(kind: type[CertforgeError]) -> None:
    assert ERROR_KINDS[kind.code] is kind


@pytest.mark.parametrize("kind", _kinds(), ids=lambda k: f"ok/{k.__name__}")
def test_rpc_reply_raises_the_kind_the_issuer_raised(kind: type[CertforgeError]) -> None:
    sent = kind(detail="no", errors=[FieldError("name", "taken")])

    received = as_error(RpcError.of(sent))

    assert type(received) is kind
    assert (received.code, received.detail, received.errors) == (sent.code, "no", sent.errors)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(CertforgeError.code, id="fail/issuer-failed-internal"),
        pytest.param("from-a-newer-issuer", id="fail/unknown-code"),
    ],
)
def test_rpc_reply_of_an_issuer_failure_is_unavailable(code: str) -> None:
    received = as_error(RpcError(code=code, detail="the issuer failed"))

    assert type(received) is Unavailable
    assert received.detail == "the issuer failed"
