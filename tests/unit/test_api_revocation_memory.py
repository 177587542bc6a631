"""The api's memory of OCSP answers and CRLs: freshness, one re-signer per stale answer, the
forget that a load started earlier cannot undo, one re-checker per CRL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from certforge.api.domain.crls import remembered
from certforge.api.ocsp import GOOD
from certforge.api.revocation_memory import (
    AnswerMemory,
    CrlMemory,
    Prepared,
    ServedCrl,
    forget_message,
    key_of_message,
)

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _prepared(this_update: datetime = T0) -> Prepared:
    return Prepared(b"der", GOOD, this_update, this_update + HOUR, '"tag"')


def test_fresh_until_half_validity_then_one_request_re_signs() -> None:
    memory = AnswerMemory()
    key = (uuid4(), 42)
    memory.remember(key, _prepared(), memory.epoch)
    assert memory.serve(key, T0 + 29 * timedelta(minutes=1)) is not None
    late = T0 + 31 * timedelta(minutes=1)
    assert memory.get(key, late) is None  # the slow path re-signs
    assert memory.serve(key, late) is None  # this request claims the re-signing
    assert memory.serve(key, late) is not None  # the others get the still valid answer
    assert memory.serve(key, late + timedelta(seconds=6)) is None  # a stale claim is retaken
    memory.remember(key, _prepared(late), memory.epoch)
    assert memory.serve(key, late) is not None
    assert memory.get(key, late) is not None


def test_an_expired_answer_is_never_served() -> None:
    memory = AnswerMemory()
    key = (uuid4(), 1)
    memory.remember(key, _prepared(), memory.epoch)
    after = T0 + HOUR
    assert memory.serve(key, after) is None
    assert memory.serve(key, after) is None


def test_a_forget_wins_over_a_load_that_started_before_it() -> None:
    memory = AnswerMemory()
    key = (uuid4(), 7)
    epoch = memory.epoch  # a load reads the database...
    memory.forget(key)  # ...a revocation is announced meanwhile...
    memory.remember(key, _prepared(), epoch)  # ...the load's (good) answer is not kept
    assert memory.get(key, T0) is None
    memory.remember(key, _prepared(), memory.epoch)
    assert memory.get(key, T0) is not None


def test_bounded() -> None:
    memory = AnswerMemory(max_entries=2)
    keys = [(uuid4(), n) for n in range(3)]
    for key in keys:
        memory.remember(key, _prepared(), memory.epoch)
    assert len(memory) == 2
    assert memory.get(keys[0], T0) is None
    assert memory.get(keys[2], T0) is not None
    off = AnswerMemory(max_entries=0)  # CERTFORGE_OCSP_MEMORY_ENTRIES=0: always the database
    off.remember(keys[0], _prepared(), off.epoch)
    assert len(off) == 0


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="fail/empty"),
        pytest.param(b"nope", id="fail/no-colon"),
        pytest.param(b"not-a-uuid:1", id="fail/ca"),
        pytest.param(b"a:b:c", id="fail/three"),
    ],
)
def test_forget_messages(data: bytes) -> None:
    assert key_of_message(data) is None
    key = (uuid4(), 0xDEADBEEF)
    assert key_of_message(forget_message(key)) == key


def test_one_request_re_checks_a_crl() -> None:
    memory = CrlMemory()
    ca_id = uuid4()
    served = ServedCrl(1, b"\x30\x00", T0, T0 + HOUR, '"crl"', checked_at=100.0)
    memory.crls[ca_id] = served
    assert remembered(memory, ca_id, 101.0, 2) is served
    assert remembered(memory, ca_id, 103.0, 2) is None  # this one re-checks
    assert remembered(memory, ca_id, 103.5, 2) is served  # the others are served meanwhile
    assert remembered(memory, ca_id, 109.0, 2) is None  # the claim was abandoned: retaken
    assert remembered(memory, uuid4(), 103.0, 2) is None
    assert served.pem.startswith(b"-----BEGIN X509 CRL-----\nMAA=\n")
