"""One `CERTFORGE_DATABASE_URL`, one host or several, read by both drivers (asyncpg and
SQLAlchemy's asyncpg dialect), and the database errors of a failover answered 503."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from certforge.api.problems import _connection_lost
from certforge.common.db.engine import async_url
from certforge.common.db.pool import plain_url
from certforge.common.db.urls import asyncpg_url, hosts, sqlalchemy_url

TWO = "postgresql://app:s%40cret@db-a:5432,db-b:5433/certforge?target_session_attrs=read-write"


def test_one_host_keeps_its_form() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/certforge"
    assert sqlalchemy_url(url) == "postgresql+asyncpg://postgres@127.0.0.1:5432/certforge"
    assert asyncpg_url(url) == url
    assert plain_url("postgresql+asyncpg://postgres@127.0.0.1:5432/certforge") == url


def test_several_hosts_become_host_parameters_for_sqlalchemy() -> None:
    parsed = make_url(async_url(TWO))
    assert parsed.drivername == "postgresql+asyncpg"
    assert parsed.host is None
    assert parsed.query["host"] == ("db-a:5432", "db-b:5433")
    assert parsed.query["target_session_attrs"] == "read-write"
    assert parsed.password == "s@cret"
    assert parsed.database == "certforge"


def test_a_host_without_port_gets_the_default_one_for_sqlalchemy() -> None:
    parsed = make_url(sqlalchemy_url("postgresql://app@db-a,db-b:6000/x"))
    assert parsed.query["host"] == ("db-a:5432", "db-b:6000")


def test_asyncpg_takes_the_libpq_form_from_either() -> None:
    assert asyncpg_url(TWO) == TWO
    assert asyncpg_url(sqlalchemy_url(TWO)) == TWO
    assert hosts(TWO) == ["db-a:5432", "db-b:5433"]


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        async_url("mysql://db/x")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
)
def test_failover_errors_are_unavailable_not_internal(error: Exception) -> None:
    assert _connection_lost(error)
    assert _connection_lost(DBAPIError("INSERT …", {}, error))


def test_a_constraint_violation_is_not_a_lost_connection() -> None:
    assert not _connection_lost(asyncpg.UniqueViolationError("duplicate key"))
