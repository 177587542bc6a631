"""What every command shares: the state built by the root options, `--json`, the error
boundary that turns failures into exit codes, and the parsers of repeated `key=value` options.

Exit codes (documented in `certforge --help` and the README): 0 ok, 2 usage (bad arguments,
not logged in, an output path that cannot be written), 3 refused by the server (policy,
validation, conflict), 4 not found or forbidden (wrong or expired token included), 5 server or
network failure.
"""

from __future__ import annotations

import json
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from typer.core import TyperGroup

from certforge.cli.api import ApiClient, ApiError
from certforge.cli.config import Credentials, NotConfigured, resolve
from certforge.cli.output import report_failure, report_message

EXIT_USAGE = 2


class CliFailure(Exception):
    """A local failure before or after the API call (e.g. an unwritable path): one line, exit 2
    unless said otherwise."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class State:
    """The root options, shared by every sub-command through `ctx.obj`."""

    url: str | None = None
    token: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0
    json: bool = False
    transport: httpx.BaseTransport | None = None
    """Tests may inject one (`CliRunner.invoke(app, obj=State(transport=…))`)."""

    def client(self) -> ApiClient:
        return self.client_for(resolve(self.url, self.token, self.ca_file))

    def client_for(self, credentials: Credentials) -> ApiClient:
        """A client of `credentials`; a bad URL or CA file is a usage error (exit 2)."""
        verify: bool | ssl.SSLContext = True
        if credentials.ca_file:
            try:
                verify = ssl.create_default_context(cafile=credentials.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise CliFailure(f"cannot use CA file {credentials.ca_file}: {exc}") from exc
        try:
            return ApiClient(
                credentials.url,
                credentials.token,
                timeout=self.timeout,
                transport=self.transport,
                verify=verify,
            )
        except ValueError as exc:
            raise CliFailure(str(exc)) from exc


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:
        found = ctx.ensure_object(State)
    return found


class CliGroup(TyperGroup):
    """The root group: every failure below it becomes one message and its exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            report_failure(exc, state(ctx).json)
            raise typer.Exit(exc.exit_code) from None
        except NotConfigured as exc:
            report_message(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except CliFailure as exc:
            report_message(exc.message)
            raise typer.Exit(exc.exit_code) from None


def bad_argument(option: str, message: str) -> CliFailure:
    """A value the CLI refuses before calling the API: `--san 'x': …`, one line, exit 2."""
    return CliFailure(f"{option} {message}")


def _set_json(ctx: typer.Context, value: bool) -> bool:
    if value:
        state(ctx).json = True
    return value


JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the API's own JSON object instead of a table.",
        callback=_set_json,
    ),
]
AppOpt = Annotated[
    str,
    typer.Option("--app", "-a", help="Application slug or id.", envvar="CERTFORGE_APP"),
]


def example(*lines: str) -> str:
    """A command's epilog: the example its `--help` shows."""
    return "Example:  " + "  ·  ".join(lines)


def parse_json_value(text: str) -> Any:
    """`--set` values: JSON when they parse (`true`, `7`, `["a"]`), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def body_from(file: Path | None, sets: list[str] | None) -> dict[str, Any]:
    """A request body from `--file` (JSON, `-` for stdin) with `--set a.b=value` applied."""
    body: dict[str, Any] = {}
    if file is not None:
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read {file}: {exc.strerror}"
            raise bad_argument("--file", msg) from None
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise bad_argument("--file", f"{file} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise bad_argument("--file", f"{file} must hold a JSON object")
        body = loaded
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise bad_argument("--set", f"{item!r}: expected KEY=VALUE")
        target = body
        *parents, leaf = key.split(".")
        for part in parents:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise bad_argument("--set", f"{key!r}: {part} is not an object")
            target = nested
        target[leaf] = parse_json_value(value)
    return body


def key_values(items: list[str] | None, option: str) -> dict[str, str]:
    """`--tag team=web` repeated, as a dict; a missing `=` is a usage error naming the option."""
    found: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise bad_argument(option, f"{item!r}: expected KEY=VALUE")
        found[key.strip()] = value
    return found


def put_if(body: dict[str, Any], **values: Any) -> dict[str, Any]:
    """`body` with each given value that is not None set (flags the user left out stay out)."""
    body.update({k: v for k, v in values.items() if v is not None})
    return body
