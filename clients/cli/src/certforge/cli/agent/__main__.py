"""`python -m certforge.cli.agent run|status`: the agent without the rest of the CLI."""

from certforge.cli.agent import app

app(prog_name="certforge agent")
