"""The audit hash chain: sealing links entries; verification names the first broken link."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from certforge.common.audit_chain import GENESIS, Entry, Head, Link, Verifier, seal

APP_A, APP_B = uuid4(), uuid4()
T0 = datetime(2026, 12, 2, tzinfo=UTC)


def _entry(i: int, app: UUID | None) -> Entry:
    return Entry(
        id=i,
        occurred_at=T0 + timedelta(seconds=i),
        actor_id=None,
        actor_name="admin",
        action="certificate_request.create",
        resource_type="certificate_request",
        resource_id=str(i),
        application_id=app,
        outcome="success",
        status_code=201,
        details='{"profile": "web"}',
        request_id=f"r{i}",
    )


ENTRIES = [_entry(i, (APP_A, APP_B, None)[i % 3]) for i in range(1, 10)]


def _chain() -> list[tuple[Entry | None, Link]]:
    return list(zip(ENTRIES, seal(ENTRIES, None, {}), strict=True))


def _verify(pairs: list[tuple[Entry | None, Link]], whole_log: bool = True) -> Verifier:
    verifier = Verifier(whole_log=whole_log)
    verifier.check(pairs)
    return verifier


def test_a_sealed_chain_verifies_whole_and_per_application() -> None:
    pairs = _chain()
    assert pairs[0][1].prev_hash == GENESIS
    assert [link.seq for _, link in pairs] == list(range(1, 10))
    whole = _verify(pairs)
    assert (whole.broken, whole.checked) == (None, 9)
    assert whole.head == Head(9, pairs[-1][1].entry_hash)
    for app in (APP_A, APP_B):
        mine = [p for p in pairs if p[1].application_id == app]
        assert _verify(mine, whole_log=False).broken is None


def test_sealing_in_pages_gives_the_same_chain_as_at_once() -> None:
    heads: dict[UUID, bytes] = {}
    first = seal(ENTRIES[:4], None, heads)
    rest = seal(ENTRIES[4:], Head(4, first[-1].entry_hash), heads)
    assert first + rest == seal(ENTRIES, None, {})


def test_an_altered_entry_is_named() -> None:
    pairs = _chain()
    entry, link = pairs[4]
    assert entry is not None
    pairs[4] = (replace(entry, outcome="denied"), link)
    broken = _verify(pairs).broken
    assert broken is not None
    assert (broken.event_id, broken.seq) == (5, 5)
    assert "altered" in broken.reason


def test_a_removed_entry_is_named_by_the_link_after_it() -> None:
    pairs = _chain()
    del pairs[3]
    broken = _verify(pairs).broken
    assert broken is not None
    assert (broken.seq, broken.reason) == (5, "sequence jumps from 3 to 5 (entries removed)")


def test_a_missing_entry_under_its_link_is_named() -> None:
    pairs = _chain()
    pairs[2] = (None, pairs[2][1])
    broken = _verify(pairs).broken
    assert broken is not None
    assert broken.seq == 3
    assert "missing" in broken.reason


def test_rewriting_the_whole_tail_still_breaks_the_application_chain() -> None:
    """Re-sealing from an altered entry onward fixes the log's chain but not what an
    application's auditors recorded: their head no longer matches."""
    pairs = _chain()
    altered = [replace(e, actor_name="nobody") if e.id == 1 else e for e, _ in pairs if e]
    forged = list(zip(altered, seal(altered, None, {}), strict=True))
    assert _verify(forged).broken is None  # self-consistent: only an outside record shows it
    assert forged[-1][1].entry_hash != pairs[-1][1].entry_hash


def test_a_link_moved_to_another_application_is_named() -> None:
    pairs = _chain()
    entry, link = pairs[0]
    pairs[0] = (entry, replace(link, application_id=uuid4()))
    broken = _verify(pairs).broken
    assert broken is not None
    assert broken.seq == 1
