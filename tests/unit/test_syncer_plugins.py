"""What every syncer plugin shares: one registry matching the kinds common validates, one
wording of rule refusals, one truncation of peer messages, one thread runner with a deadline,
and jittered retry delays."""

from __future__ import annotations

import threading

import pytest

from certforge.common.destinations import catalog
from certforge.common.destinations.webhook import WebhookCredentials, WebhookSettings
from certforge.syncer.plugins import registry
from certforge.syncer.plugins.base import (
    MAX_PEER_MESSAGE,
    PermanentSyncError,
    TransientSyncError,
    peer_message,
)
from certforge.syncer.plugins.directory import DirectoryDestination
from certforge.syncer.plugins.webhook import WebhookDestination
from certforge.syncer.tasks import retry_delay


def test_every_validated_kind_has_a_plugin_and_no_more() -> None:
    assert set(registry.KINDS) == set(catalog.KINDS)
    for kind, cls in registry.KINDS.items():
        assert cls.spec is catalog.KINDS[kind]
        assert cls.kind == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("refused", "refused", id="ok/short-kept"),
        pytest.param("a\n  b\tc ", "a b c", id="ok/whitespace-collapsed"),
        pytest.param("x" * MAX_PEER_MESSAGE, "x" * MAX_PEER_MESSAGE, id="ok/at-the-limit"),
        pytest.param(
            "x" * (MAX_PEER_MESSAGE + 1),
            "x" * (MAX_PEER_MESSAGE - 1) + "…",
            id="ok/cut-with-an-ellipsis",
        ),
        pytest.param(KeyError("k"), "'k'", id="ok/exception"),
    ],
)
def test_peer_message(text: object, expected: str) -> None:
    assert peer_message(text) == expected


def test_rule_refusals_name_the_field_like_the_plugins_always_did() -> None:
    settings = WebhookSettings.model_validate({"url": "http://h.example.com"})
    credentials = WebhookCredentials.model_validate({"hmac_secret": "0123456789abcdef"})
    with pytest.raises(PermanentSyncError, match=r"^url: https is required outside development"):
        WebhookDestination.validate_for(settings, credentials, development=False)
    WebhookDestination.validate_for(settings, credentials, development=True)


def test_build_refuses_a_stored_configuration_no_longer_valid() -> None:
    with pytest.raises(
        PermanentSyncError, match=r"^invalid directory configuration: settings.path"
    ):
        registry.build("directory", {"path": "relative"}, None, development=True)


async def test_run_blocking_bounds_a_hanging_call_by_the_deadline() -> None:
    destination = registry.build("directory", {"path": "/tmp"}, None, development=True)
    assert isinstance(destination, DirectoryDestination)
    release = threading.Event()
    try:
        with pytest.raises(TransientSyncError, match=r"^directory: hang did not finish within 0 s"):
            await destination.run_blocking(release.wait, action="hang", deadline=0.05)
    finally:
        release.set()
    assert await destination.run_blocking(lambda: 42, action="answer") == 42


@pytest.mark.parametrize(
    ("attempt", "cap", "draw", "expected"),
    [
        pytest.param(1, 300.0, 0.0, 1.0, id="ok/first-retry-earliest"),
        pytest.param(1, 300.0, 1.0, 2.0, id="ok/first-retry-latest"),
        pytest.param(3, 300.0, 0.5, 6.0, id="ok/third-retry-middle"),
        pytest.param(20, 300.0, 1.0, 300.0, id="ok/capped"),
        pytest.param(20, 300.0, 0.0, 150.0, id="ok/capped-never-below-half"),
    ],
)
def test_retry_delay_is_jittered_exponential(
    attempt: int, cap: float, draw: float, expected: float
) -> None:
    assert retry_delay(attempt, cap, lambda: draw) == pytest.approx(expected)
