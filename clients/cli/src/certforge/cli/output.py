"""How the CLI shows results and failures: tables for people, the API's own JSON for scripts.

Results go to stdout, failures to stderr, so `certforge … --json | jq` never parses an error
message; with `--json` a failure's problem document is also printed to stdout whole, so a script
can read `errors` the way it reads a result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from certforge.cli.api import ApiError


def console(stderr: bool = False) -> Console:
    """A console on the current streams (tests swap them); wide when not a terminal, so ids
    and dates are never cut in a pipe or a log."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_table(table: Table) -> None:
    """A table on stdout without the padding rich adds to each line's end (clean in files)."""
    out = console()
    with out.capture() as captured:
        out.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


def cell(value: Any) -> str:
    """One table cell: lists and objects as compact JSON, nothing as `-`."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def show_object(obj: Mapping[str, Any], *, skip: Iterable[str] = ()) -> None:
    """A single object as a two-column table, PEM blobs left out (download them instead)."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    skipped = set(skip)
    for key, value in obj.items():
        if key in skipped or (isinstance(value, str) and value.startswith("-----BEGIN")):
            continue
        table.add_row(key, cell(value))
    print_table(table)


def show_list(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Rows as a table of `(header, key)` columns; an empty list says so instead."""
    if not rows:
        console(stderr=True).print("(none)")
        return
    table = Table(*(header for header, _ in columns), box=None, pad_edge=False)
    for row in rows:
        table.add_row(*(cell(row.get(key)) for _, key in columns))
    print_table(table)


def expires_in(not_after: str | None, now: datetime) -> str:
    """`12d`, `5h`, `expired` — how long a certificate still has, for the expiry column."""
    if not not_after:
        return "-"
    try:
        end = datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    left = (end - now).total_seconds()
    if left <= 0:
        return "expired"
    if left >= 86400:
        return f"{int(left // 86400)}d"
    if left >= 3600:
        return f"{int(left // 3600)}h"
    return f"{max(1, int(left // 60))}m"


def now() -> datetime:
    return datetime.now(UTC)


def report_failure(exc: ApiError, as_json: bool) -> None:
    """The problem's title and detail on one line, then one line per field error."""
    if as_json and exc.problem is not None and exc.problem.raw:
        print_json(exc.problem.raw)
    err = console(stderr=True)
    err.print(f"error: {exc.message}", markup=False)
    if exc.problem is not None:
        for item in exc.problem.errors:
            field = item.get("field") or "-"
            err.print(f"  {field}: {item.get('message', '')}", markup=False)


def report_message(message: str) -> None:
    console(stderr=True).print(f"error: {message}", markup=False)
