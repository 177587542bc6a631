"""One database setting for two drivers, including a list of hosts to fail over between.

`CERTFORGE_DATABASE_URL` is a libpq URL, as `psql` takes it:
`postgresql://user:password@db-a:5432,db-b:5432/certforge?target_session_attrs=read-write`.
Several hosts and `target_session_attrs=read-write` make every new connection try each host
in turn and keep the first that accepts writes: after a failover, connections made again find
the promoted standby with no change of setting (README, "Beyond one machine").

asyncpg reads that form as it is. SQLAlchemy's URL parser takes one `host:port`; its asyncpg
dialect takes several as repeated `host` query parameters (`?host=db-a:5432&host=db-b:5432`),
so the ORM's URL is rewritten to that form. Either form is accepted as input.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SCHEMES = ("postgresql+asyncpg", "postgresql", "postgres")
DEFAULT_PORT = 5432


def _split(url: str) -> tuple[str, list[str], str, list[tuple[str, str]]]:
    """(userinfo with its `@`, hosts as `host:port`, path, other query parameters)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError("database URL must start with postgresql://")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    hosts = [h for h in hostlist.split(",") if h]
    hosts += [value for key, value in query if key == "host" and value]
    rest = [(key, value) for key, value in query if key != "host"]
    return (userinfo + "@" if userinfo else ""), hosts, parts.path, rest


def hosts(url: str) -> list[str]:
    """The servers a URL names, in the order connections try them."""
    return _split(url)[1]


def asyncpg_url(url: str) -> str:
    """The libpq form asyncpg takes: `postgresql://user@h1:5432,h2:5432/db?…`."""
    userinfo, names, path, rest = _split(url)
    return urlunsplit(
        ("postgresql", userinfo + ",".join(names), path, urlencode(rest, safe=":"), "")
    )


def sqlalchemy_url(url: str) -> str:
    """The form of SQLAlchemy's asyncpg dialect: one host in place, several as `host=` parameters
    (each with its port: the dialect pairs a bare host with no port)."""
    userinfo, names, path, rest = _split(url)
    if len(names) <= 1:
        netloc, extra = userinfo + "".join(names), []
    else:
        with_ports = [n if ":" in n.rsplit("]", 1)[-1] else f"{n}:{DEFAULT_PORT}" for n in names]
        netloc, extra = userinfo, [("host", n) for n in with_ports]
    query = urlencode(extra + rest, safe=":")
    return urlunsplit(("postgresql+asyncpg", netloc, path, query, ""))
