"""`certforge audit`: read the audit log and verify its hash chain."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from certforge.cli.core import JsonOpt, example, state
from certforge.cli.output import print_json, show_list

audit_app = typer.Typer(
    name="audit", help="The audit log: list entries, verify the hash chain.", no_args_is_help=True
)

EXIT_BROKEN = 1
"""`verify` found a link that does not hold (the command itself worked)."""

AppOpt = Annotated[
    str | None, typer.Option("--app", help="An application (slug or id); default: the whole log.")
]
ENTRY_COLUMNS = [
    ("ID", "id"),
    ("TIME", "occurred_at"),
    ("ACTOR", "actor_name"),
    ("ACTION", "action"),
    ("OUTCOME", "outcome"),
    ("STATUS", "status_code"),
]


@audit_app.command("list", epilog=example("certforge audit list --app shop --limit 20"))
def audit_list(
    ctx: typer.Context,
    app: AppOpt = None,
    action: Annotated[str | None, typer.Option(help="e.g. certificate.revoke")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, failed or denied")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json: JsonOpt = False,
) -> None:
    """The newest entries first."""
    params = {"application": app, "action": action, "outcome": outcome, "limit": limit}
    with state(ctx).client() as client:
        page = client.get(
            "/api/v1/audit-events", {k: v for k, v in params.items() if v is not None}
        )
    if json:
        print_json(page)
    else:
        show_list(page["items"], ENTRY_COLUMNS)


@audit_app.command("verify", epilog=example("certforge audit verify --app shop"))
def audit_verify(ctx: typer.Context, app: AppOpt = None, json: JsonOpt = False) -> None:
    """Recompute the hash chain; exit 1 naming the first entry altered or removed since it was
    sealed. Record the printed head elsewhere: a later run that ends before it shows a cut log."""
    params = {"application": app} if app else None
    with state(ctx).client() as client:
        result: dict[str, Any] = client.get("/api/v1/audit-events/verification", params)
    if json:
        print_json(result)
    else:
        typer.echo(_summary(result))
    if result["broken"] is not None:
        raise typer.Exit(EXIT_BROKEN)


def _summary(result: dict[str, Any]) -> str:
    head = result["head"]
    lines = [f"verified {result['verified']} entries"]
    if head:
        lines.append(f"head: seq {head['seq']} sha256 {head['hash']}")
    if result["unsealed"]:
        lines.append(f"not sealed yet: {result['unsealed']} (is the renewer running?)")
    broken = result["broken"]
    if broken:
        lines.append(
            f"BROKEN at entry {broken['event_id']} (seq {broken['seq']}): {broken['reason']}"
        )
    return "\n".join(lines)
