"""The agent's configuration: a YAML file validated by pydantic, errors naming their line.

PyYAML's composer keeps every node's position; the document is turned into plain values while
the line of each key path is recorded, so a validation error at
`certificates[0].files.key.mode` is reported as `agent.yaml:14: …`, the line a person edits.
Everything that can be checked before the agent talks to anyone is checked here (SAN syntax,
owners and groups that exist, output directories that exist): a config the agent cannot use
stops it at start with one line, rather than failing at the first renewal weeks later.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import signal
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

KeyAlgorithm = Literal[
    "EC_P256", "EC_P384", "EC_P521", "RSA_2048", "RSA_3072", "RSA_4096", "ED25519"
]
SAN_TYPES = ("dns", "ip", "email", "uri")


class ConfigError(Exception):
    """A config the agent cannot use; `str()` is `FILE:LINE: where: what`."""

    def __init__(self, path: Path, line: int | None, where: str, message: str) -> None:
        self.path, self.line, self.where, self.message = path, line, where, message
        at = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{at}: {where}: {message}" if where else f"{at}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _mode(value: object) -> object:
    """An octal mode: `0640` or `'0640'` or `0o640`. A bare `640` is refused: read as the
    decimal number it is, it would be a different, wrong mode (`_plain` keeps an unquoted
    `0640` as written rather than as YAML 1.1's octal integer)."""
    if isinstance(value, str) and re.fullmatch(r"0[0-7]{3}|0o[0-7]{3}|[0-7]{3}", value):
        return int(value.removeprefix("0o"), 8)
    raise ValueError("an octal mode, e.g. '0640'")


Mode = Annotated[int, BeforeValidator(_mode)]


class OutputFile(_Strict):
    path: Path = Field(description="absolute path; its directory must exist")
    mode: Mode | None = Field(default=None, description="e.g. '0640'; 0644 or 0600 for keys")
    owner: str | None = Field(default=None, description="user name or uid (needs root)")
    group: str | None = Field(default=None, description="group name or gid (needs root)")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        if value.name in ("", ".", ".."):
            raise ValueError("must name a file")
        parent = value.parent
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist"
            raise ValueError(f"cannot be written: {parent} {what}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"cannot be written: no write permission on {parent}")
        if value.is_dir():
            raise ValueError(f"cannot be written: {value} is a directory")
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            try:
                pwd.getpwnam(value)
            except KeyError:
                raise ValueError(f"no user {value!r} on this host") from None
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            try:
                grp.getgrnam(value)
            except KeyError:
                raise ValueError(f"no group {value!r} on this host") from None
        return value

    def uid(self) -> int:
        if self.owner is None:
            return -1
        return int(self.owner) if self.owner.isdigit() else pwd.getpwnam(self.owner).pw_uid

    def gid(self) -> int:
        if self.group is None:
            return -1
        return int(self.group) if self.group.isdigit() else grp.getgrnam(self.group).gr_gid


class Pkcs12File(OutputFile):
    password_file: Path | None = Field(
        default=None, description="file holding the PKCS#12 password; none: no password"
    )


class Files(_Strict):
    certificate: OutputFile | None = None
    chain: OutputFile | None = Field(default=None, description="issuing CA first, root last")
    fullchain: OutputFile | None = Field(default=None, description="certificate, then chain")
    key: OutputFile | None = None
    pkcs12: Pkcs12File | None = None

    @model_validator(mode="after")
    def _some(self) -> Files:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError("name at least one file (certificate, chain, fullchain, key, pkcs12)")
        paths = [f.path for f in self.outputs().values()]
        if len(set(paths)) != len(paths):
            raise ValueError("two outputs share a path")
        return self

    def outputs(self) -> dict[str, OutputFile]:
        return {name: value for name in type(self).model_fields if (value := getattr(self, name))}


class Reload(_Strict):
    """After every change of the files: run `command`, or send `signal` to the pid in
    `pid_file`."""

    command: list[str] | None = Field(default=None, min_length=1, description="argv, no shell")
    signal: str | None = Field(default=None, description="e.g. HUP, with pid_file")
    pid_file: Path | None = None
    timeout: float = Field(default=60, gt=0, le=3600, description="seconds for the command")

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("a list of arguments, e.g. [systemctl, reload, nginx]")
        return value

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if not hasattr(signal.Signals, name):
            raise ValueError(f"no signal {value!r} (e.g. HUP, USR1)")
        return name

    @model_validator(mode="after")
    def _one(self) -> Reload:
        if (self.command is None) == (self.signal is None):
            raise ValueError("give either command, or signal with pid_file")
        if (self.signal is None) != (self.pid_file is None):
            raise ValueError("signal and pid_file go together")
        return self


def _san(value: object) -> dict[str, str]:
    """`dns:api.example.com`, `ip:10.0.0.5`, `email:a@example.com`, `uri:spiffe://…`."""
    if isinstance(value, dict):
        return value  # already the API's shape; the server judges it
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"{value!r}: write TYPE:VALUE, TYPE one of {', '.join(SAN_TYPES)}")
    kind, _, name = value.partition(":")
    kind = kind.strip().lower()
    name = name.strip()
    if kind not in SAN_TYPES:
        raise ValueError(f"{value!r}: unknown type {kind!r} (one of {', '.join(SAN_TYPES)})")
    if not name:
        raise ValueError(f"{value!r}: the value is empty")
    if kind == "ip":
        try:
            ipaddress.ip_address(name)
        except ValueError:
            raise ValueError(f"{value!r}: not an IP address") from None
    if kind == "dns" and (" " in name or "/" in name or ":" in name):
        raise ValueError(f"{value!r}: not a DNS name")
    if kind == "email" and "@" not in name:
        raise ValueError(f"{value!r}: not an e-mail address")
    return {"type": kind, "value": name}


San = Annotated[dict[str, str], BeforeValidator(_san)]


class RequestSpec(_Strict):
    """What to request when the agent has no certificate yet (fields as in the REST API)."""

    profile: str = Field(min_length=1)
    common_name: str | None = Field(default=None, min_length=1, max_length=64)
    sans: list[San] = Field(default_factory=list)
    key_algorithm: KeyAlgorithm | None = None
    method: Literal["managed", "csr"] = Field(
        default="managed", description="managed: Certforge makes the key; csr: it stays here"
    )
    ttl: str | None = Field(default=None, description="e.g. 30d; else the profile's")
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> RequestSpec:
        if self.common_name is None and not self.sans:
            raise ValueError("give common_name or sans")
        return self


class Certificate(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="for logs")
    app: str = Field(min_length=1, description="application slug or id")
    certificate_id: UUID | None = Field(default=None, description="keep an existing one")
    request: RequestSpec | None = None
    files: Files
    reload: Reload | None = None
    renew_at_fraction: float = Field(
        default=2 / 3,
        gt=0,
        lt=1,
        description="certificates this agent renews itself (CSR, or managed without server "
        "auto-renewal) are renewed when this fraction of their lifetime has passed",
    )

    @model_validator(mode="after")
    def _source(self) -> Certificate:
        if (self.certificate_id is None) == (self.request is None):
            raise ValueError("give either certificate_id or request")
        csr = self.request is not None and self.request.method == "csr"
        if csr and self.files.key is None:
            raise ValueError("method csr keeps the key on this host: name files.key")
        return self


class Server(_Strict):
    url: str = Field(pattern=r"^https?://[^/\s]+", description="the Certforge API base URL")
    token_file: Path | None = Field(
        default=None, description="file with the API token; else $CERTFORGE_TOKEN"
    )
    ca_bundle: Path | None = Field(default=None, description="CA file to verify the server")
    timeout: float = Field(default=30, gt=0, le=600)

    @field_validator("ca_bundle")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read {value}")
        return value


class AgentConfig(_Strict):
    server: Server
    state_file: Path = Field(default=Path("/var/lib/certforge-agent/state.json"))
    log_format: Literal["text", "json"] = "text"
    watch: bool = Field(
        default=True, description="long-poll the api for renewals; false: poll every poll_interval"
    )
    watch_wait: int = Field(default=30, ge=1, le=60, description="seconds per long-poll")
    poll_interval: float = Field(default=300, gt=0, description="seconds between polls")
    backoff_initial: float = Field(default=1, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(default=300, gt=0, description="longest retry delay, seconds")
    certificates: list[Certificate] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> AgentConfig:
        names = [c.name for c in self.certificates]
        if len(set(names)) != len(names):
            raise ValueError("two certificates share a name")
        paths = [f.path for c in self.certificates for f in c.files.outputs().values()]
        if len(set(paths)) != len(paths):
            raise ValueError("two certificates write the same path")
        return self

    def token(self) -> str:
        """The API token, read when needed (never kept in the config object or logged)."""
        if self.server.token_file is not None:
            token = self.server.token_file.read_text().strip()
        else:
            token = os.environ.get("CERTFORGE_TOKEN", "").strip()
        if not token:
            raise ValueError("no API token: set server.token_file or CERTFORGE_TOKEN")
        return token


# --- loading with line numbers ---------------------------------------------------------------

Location = tuple[str | int, ...]


def _plain(node: yaml.Node, at: Location, lines: dict[Location, int]) -> Any:
    """The node's value, recording the (1-based) line of every key path below it."""
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _plain(key_node, (*at, "\0key"), {})
            lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, (*at, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*at, i), lines) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:int" and re.fullmatch(r"0[0-7]+", node.value):
        return node.value  # 0640: a mode, as written (see `_mode`)
    return yaml.SafeLoader("").construct_object(node)


def _where(loc: Location) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(path: Path) -> AgentConfig:
    """The validated config at `path`, or a `ConfigError` naming the first bad line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, line, "", f"not valid YAML: {exc.problem or exc}") from exc
    if node is None:
        raise ConfigError(path, 1, "", "the file is empty")
    lines: dict[Location, int] = {}
    data = _plain(node, (), lines)
    if not isinstance(data, dict):
        raise ConfigError(path, 1, "", "a mapping (server:, certificates:) is expected")
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(p for p in error["loc"] if not _is_tag(p))
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required"
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more)"
        raise ConfigError(path, line, _where(loc), message) from None


def _is_tag(part: object) -> bool:
    """pydantic inserts the validator's name (`function-before[...]`) into some locations."""
    return isinstance(part, str) and ("[" in part and "(" not in part and part.endswith("]"))
