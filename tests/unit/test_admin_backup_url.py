"""`certforge-admin backup`/`restore` hand the database to pg_dump and pg_restore without the
password on their command line (it would show in the process list)."""

from __future__ import annotations

from certforge.issuer.admin.backup import libpq_target


def test_the_database_password_goes_to_pg_dump_by_environment_only() -> None:
    url, env = libpq_target("postgresql+asyncpg://cf:p%40ss%3Aword@db.example:5432/certforge")
    assert url == "postgresql://cf@db.example:5432/certforge"
    assert env["PGPASSWORD"] == "p@ss:word"
    url, env = libpq_target("postgresql://postgres@127.0.0.1/x")
    assert url == "postgresql://postgres@127.0.0.1/x"
