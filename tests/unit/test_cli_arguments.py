"""Arguments the CLI checks before calling the API (SANs, tags, `--set`, bodies from files),
the expiry column, and `--help` of every command carrying an example."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from certforge.cli.cert import parse_san
from certforge.cli.core import CliFailure, body_from, key_values
from certforge.cli.main import app
from certforge.cli.output import expires_in


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        pytest.param("dns:api.example.com", "dns", "api.example.com", id="ok/dns"),
        pytest.param("ip:10.0.0.5", "ip", "10.0.0.5", id="ok/ipv4"),
        pytest.param("ip:2001:db8::1", "ip", "2001:db8::1", id="ok/ipv6"),
        pytest.param("DNS: a.example.com", "dns", "a.example.com", id="ok/case-and-space"),
        pytest.param("email:ops@example.com", "email", "ops@example.com", id="ok/email"),
        pytest.param("uri:spiffe://example.org/w", "uri", "spiffe://example.org/w", id="ok/uri"),
    ],
)
def test_san(text: str, kind: str, value: str) -> None:
    assert parse_san(text) == {"type": kind, "value": value}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("api.example.com", "expected TYPE:VALUE", id="fail/no-type"),
        pytest.param("dns:", "expected TYPE:VALUE", id="fail/empty-value"),
        pytest.param("host:a.example.com", "expected TYPE:VALUE", id="fail/unknown-type"),
        pytest.param("ip:10.0.0.999", "is not an IP address", id="fail/bad-ip"),
        pytest.param("email:ops.example.com", "needs an @", id="fail/email-without-at"),
        pytest.param("uri:example.org", "needs a scheme", id="fail/uri-without-scheme"),
    ],
)
def test_san_refused(text: str, reason: str) -> None:
    with pytest.raises(CliFailure, match=reason) as raised:
        parse_san(text)

    assert raised.value.message.startswith(f"--san {text!r}: ")
    assert raised.value.exit_code == 2


def test_tags() -> None:
    assert key_values(["team=web", "env=prod=eu"], "--tag") == {"team": "web", "env": "prod=eu"}
    with pytest.raises(CliFailure, match="expected KEY=VALUE"):
        key_values(["team"], "--tag")


def test_body_from_file_and_sets(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('{"name": "web", "sans": {"dns": {"allowed": []}}}')

    body = body_from(
        tmp_path / "b.json", ["max_validity=60d", 'sans.ip.allowed=["10.0.0.0/8"]', "n=7"]
    )

    assert body == {
        "name": "web",
        "max_validity": "60d",
        "n": 7,
        "sans": {"dns": {"allowed": []}, "ip": {"allowed": ["10.0.0.0/8"]}},
    }


@pytest.mark.parametrize(
    ("content", "sets", "reason"),
    [
        pytest.param("{not json", [], "is not JSON", id="fail/bad-json"),
        pytest.param("[1]", [], "must hold a JSON object", id="fail/not-an-object"),
        pytest.param("{}", ["novalue"], "expected KEY=VALUE", id="fail/set-without-equals"),
        pytest.param('{"a": 1}', ["a.b=2"], "a is not an object", id="fail/set-into-scalar"),
    ],
)
def test_body_refused(tmp_path: Path, content: str, sets: list[str], reason: str) -> None:
    (tmp_path / "b.json").write_text(content)

    with pytest.raises(CliFailure, match=reason):
        body_from(tmp_path / "b.json", sets)


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("not_after", "expected"),
    [
        pytest.param("2027-01-01T12:00:00Z", "30d", id="ok/days"),
        pytest.param("2026-12-02T17:30:00+00:00", "5h", id="ok/hours"),
        pytest.param("2026-12-02T12:00:30Z", "1m", id="ok/under-a-minute"),
        pytest.param("2026-12-01T00:00:00Z", "expired", id="ok/expired"),
        pytest.param(None, "-", id="ok/none"),
        pytest.param("yesterday", "-", id="ok/unparsable"),
    ],
)
def test_expires_in(not_after: str | None, expected: str) -> None:
    assert expires_in(not_after, NOW) == expected


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = list(_commands(get_command(app)))


def test_every_group_is_there() -> None:
    groups = {path[0] for path in COMMANDS}

    assert {"ca", "policy", "profile", "app", "member", "enrollment", "sync", "cert"} <= groups
    assert {("cert", v) for v in ("request", "list", "show", "renew", "revoke", "download")} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", COMMANDS, ids=[f"ok/{' '.join(p)}" for p in COMMANDS])
def test_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "300"})

    assert result.exit_code == 0, result.output
    assert f"Example:  certforge {' '.join(path)}" in result.output


def test_root_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "300"})

    for code in ("0 ok", "2 usage", "3 refused", "4 not found or forbidden", "5 server or network"):
        assert code in result.output
