"""The `certforge` command: the root options, login and whoami, and every sub-command group.

A new group (the agent, say) joins with one line: `app.add_typer(agent_app, name="agent")`;
it inherits the root options (`--url`, `--token`, `--timeout`), `State` and the exit codes
through `certforge.cli.core`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from certforge.cli import admin, cert
from certforge.cli.agent import app as agent_app
from certforge.cli.audit import audit_app
from certforge.cli.config import CA_FILE_ENV, TOKEN_ENV, URL_ENV, Credentials, save
from certforge.cli.core import CliGroup, JsonOpt, example, state
from certforge.cli.output import print_json, show_object

HELP = """Certforge from the terminal: set up CAs, policies, profiles and applications, and
request, download, renew and revoke certificates, over the public REST API.

Log in once with `certforge login` (or set CERTFORGE_URL and CERTFORGE_TOKEN).

Exit codes: 0 ok · 2 usage (bad arguments, not logged in, unwritable output path) ·
3 refused by the server (policy, validation, conflict) · 4 not found or forbidden (wrong token
included) · 5 server or network failure · 1 `audit verify` found the chain broken.
"""

app = typer.Typer(
    cls=CliGroup,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog=example("certforge login --url https://certforge.example.com"),
)
app.add_typer(admin.ca_app, name="ca")
app.add_typer(admin.policy_app, name="policy")
app.add_typer(admin.profile_app, name="profile")
app.add_typer(admin.app_app, name="app")
app.add_typer(admin.member_app, name="member")
app.add_typer(admin.enrollment_app, name="enrollment")
app.add_typer(admin.sync_app, name="sync")
app.add_typer(admin.identity_app, name="identity")
app.add_typer(cert.cert_app, name="cert")
app.add_typer(agent_app, name="agent")
app.add_typer(audit_app, name="audit")


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help=f"API URL (default: ${URL_ENV}, then the saved login).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help=f"Bearer token (default: ${TOKEN_ENV}, then the saved login)."),
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option(help=f"PEM CA of the API's TLS certificate (default: ${CA_FILE_ENV})."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the API.", min=1)] = 30.0,
) -> None:
    found = state(ctx)
    found.url = url or found.url
    found.token = token or found.token
    found.ca_file = ca_file or found.ca_file
    found.timeout = timeout


@app.command(epilog=example("certforge login --url http://127.0.0.1:8080  (then paste the token)"))
def login(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help=f"API URL (or ${URL_ENV}).")] = None,
    token: Annotated[
        str | None, typer.Option(help=f"Token (or ${TOKEN_ENV}; prompted for if absent).")
    ] = None,
) -> None:
    """Check a URL and token against the API and save them (mode 0600) for later commands."""
    current = state(ctx)
    found_url = url or current.url or os.environ.get(URL_ENV)
    if not found_url:
        found_url = typer.prompt("API URL")
    found_token = token or current.token or os.environ.get(TOKEN_ENV)
    if not found_token:
        found_token = typer.prompt("Token", hide_input=True)
    found_ca = current.ca_file or os.environ.get(CA_FILE_ENV)
    if found_ca:
        found_ca = str(Path(found_ca).resolve())  # later commands run from anywhere
    with current.client_for(Credentials(found_url, found_token, found_ca)) as client:
        me = client.get("/api/v1/me")
    path = save(Credentials(client.base_url, found_token, found_ca))
    typer.echo(f"logged in to {client.base_url} as {me.get('name')} (saved in {path})")


@app.command(epilog=example("certforge whoami --json"))
def whoami(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Who the token belongs to, and its roles."""
    with state(ctx).client() as client:
        me = client.get("/api/v1/me")
    if json:
        print_json(me)
    else:
        show_object(me)


def main() -> None:
    app(prog_name="certforge")
