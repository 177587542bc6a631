"""`certforge agent`: keep certificate files fresh on this host and reload what uses them.

`run --config agent.yaml` obtains each configured certificate, writes its files atomically,
follows the server's renewals within seconds (a long-poll of the api), renews CSR certificates
itself with a key that never leaves the host, and reloads the service after each change.
`status` reads the state file the agent keeps. See `runner` for the loop, `files` for the
atomic writes, `config` for the file format.

Exit codes: 0 stopped by SIGTERM/SIGINT or all certificates fine (`status`); 1 a certificate is
not fine (`status`); 2 a config the agent cannot use, with its file and line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from certforge.cli.agent import logs
from certforge.cli.agent.config import AgentConfig, ConfigError, load
from certforge.cli.agent.runner import run as run_agent
from certforge.cli.agent.state import State
from certforge.cli.core import example

app = typer.Typer(
    name="agent",
    help="Keep certificates fresh on this host: obtain, renew, write files, reload.",
    no_args_is_help=True,
)

_EXAMPLE_CONFIG = "/etc/certforge/agent.yaml"

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="the agent's YAML config", show_default=True),
]


@app.command("run", epilog=example("certforge agent run --config /etc/certforge/agent.yaml"))
def run_command(config: ConfigOption = Path(_EXAMPLE_CONFIG)) -> None:
    """Run until stopped (SIGTERM or Ctrl-C), keeping every certificate of the config.

    Exit code 2, with the file and line, on a config it cannot use.
    """
    loaded = load_config(config)
    logs.setup(loaded.log_format)
    try:
        loaded.token()
    except (OSError, ValueError) as exc:
        Console(stderr=True).print(f"error: {config}: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    asyncio.run(_until_signalled(loaded))


def load_config(path: Path) -> AgentConfig:
    try:
        return load(path)
    except ConfigError as exc:
        Console(stderr=True).print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(2) from None


async def _until_signalled(config: AgentConfig) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(run_agent(config))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@app.command(
    "status", epilog=example("certforge agent status --config /etc/certforge/agent.yaml --json")
)
def status_command(
    config: ConfigOption = Path(_EXAMPLE_CONFIG),
    as_json: Annotated[bool, typer.Option("--json", help="the state file as JSON")] = False,
) -> None:
    """What the agent holds and how its last attempt went, from its state file.

    Exit code 0 when every certificate is installed and fine, 1 otherwise.
    """
    loaded = load_config(config)
    state = State.load(loaded.state_file)
    names = [c.name for c in loaded.certificates]
    entries = {name: state.entries.get(name) for name in names}
    healthy = all(e is not None and e.status == "ok" for e in entries.values())
    if as_json:
        from dataclasses import asdict

        document = {n: (asdict(e) if e else None) for n, e in entries.items()}
        typer.echo(json.dumps({"healthy": healthy, "certificates": document}, indent=2))
    else:
        table = Table("certificate", "status", "certificate id", "serial", "valid until", "note")
        for name, entry in entries.items():
            if entry is None:
                table.add_row(name, "not started", "", "", "", "")
                continue
            note = entry.last_error if entry.status == "error" else (entry.last_reload_error or "")
            if entry.status == "error" and entry.next_attempt_at:
                note = f"{note} (next try {entry.next_attempt_at})"
            table.add_row(
                name,
                entry.status,
                entry.certificate_id or "",
                entry.serial_number or "",
                entry.not_after or "",
                note or "",
            )
        Console().print(table)
    raise typer.Exit(0 if healthy else 1)
