"""Where the CLI keeps its URL and token, and how a command finds them.

The token is a bearer secret: the file is created with mode 0600 inside a 0700 directory and
written atomically (a temporary file in the same directory, fsync, rename), so a crash or a full
disk leaves the previous login intact and no other user can read it even for an instant.

Precedence, highest first: `--url`/`--token`/`--ca-file` options, `CERTFORGE_URL`/
`CERTFORGE_TOKEN`/`CERTFORGE_CA_FILE` from the environment (CI, containers), then the file
`certforge login` wrote. `CERTFORGE_CONFIG` names
another file (tests, several servers).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from certforge.cli.files import write_atomically

URL_ENV = "CERTFORGE_URL"
TOKEN_ENV = "CERTFORGE_TOKEN"  # noqa: S105 - the variable's name, not a token
CONFIG_ENV = "CERTFORGE_CONFIG"
CA_FILE_ENV = "CERTFORGE_CA_FILE"


class NotConfigured(Exception):
    """No URL or token from any source: the user has to log in first (exit code 2)."""


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str
    ca_file: str | None = None
    """PEM file of the CA that signed the API's TLS certificate, when it is a private one."""


def config_path() -> Path:
    """`$CERTFORGE_CONFIG`, or `config.json` in the user's config directory (XDG on Linux)."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    return platformdirs.user_config_path("certforge") / "config.json"


def load_saved() -> dict[str, str]:
    """What `certforge login` saved, or nothing; a damaged file counts as no login."""
    try:
        data = json.loads(config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    keys = ("url", "token", "ca_file")
    return {k: v for k, v in data.items() if k in keys and isinstance(v, str)}


def save(credentials: Credentials) -> Path:
    """Store `credentials` for later commands: 0600 file, 0700 directory, atomic replace."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    saved = {"url": credentials.url, "token": credentials.token}
    if credentials.ca_file:
        saved["ca_file"] = credentials.ca_file
    body = json.dumps(saved, indent=2) + "\n"
    write_atomically([(path, body.encode(), 0o600)])
    return path


def resolve(url: str | None, token: str | None, ca_file: str | None = None) -> Credentials:
    """The URL and token a command uses: options, then the environment, then the saved login."""
    saved = load_saved()
    found_ca = ca_file or os.environ.get(CA_FILE_ENV) or saved.get("ca_file")
    found_url = url or os.environ.get(URL_ENV) or saved.get("url")
    found_token = token or os.environ.get(TOKEN_ENV) or saved.get("token")
    if not found_url:
        raise NotConfigured(f"no API URL: run `certforge login` or set {URL_ENV}")
    if not found_token:
        raise NotConfigured(f"no token: run `certforge login` or set {TOKEN_ENV}")
    return Credentials(found_url, found_token, found_ca)
