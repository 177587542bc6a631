"""Column lists and plain-SQL statements derived from the table models, computed once at import.

The hot paths (the api's request submission, the issuer's batch writes, the outbox) write with
fixed asyncpg statements instead of the ORM. Their column lists come from here, read off the
SQLModel tables of `certforge.common.db.tables`, so a column added to a model reaches every
statement and no list can drift from the schema or from another copy of itself. Rows are
mappings by column name; `values` puts them in a statement's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> sa.Table:
    """The model's table (SQLModel declares `__table__` only on the classes it creates)."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def columns(model: type[SQLModel]) -> tuple[str, ...]:
    """Every column of the model's table, in the table's order."""
    return tuple(c.name for c in table_of(model).columns)


def insertable(model: type[SQLModel]) -> tuple[str, ...]:
    """The columns an INSERT fills: all but those the database generates (identity columns)."""
    return tuple(c.name for c in table_of(model).columns if c.identity is None)


def parameters(count: int, first: int = 1) -> str:
    """`$first, …` for `count` values: positional parameters of asyncpg."""
    return ", ".join(f"${i}" for i in range(first, first + count))


def insert_sql(model: type[SQLModel], names: Sequence[str], first: int = 1) -> str:
    """`INSERT INTO <table> (<names>) VALUES ($first, …)`; `first` lets several INSERTs share
    one statement (as CTEs) with their parameters numbered one after the other."""
    _check(model, names)
    return (
        f"INSERT INTO {table_of(model).name} ({', '.join(names)}) "  # noqa: S608 - model names
        f"VALUES ({parameters(len(names), first)})"
    )


def update_by_id_sql(model: type[SQLModel], names: Sequence[str]) -> str:
    """`UPDATE <table> SET <name> = $2, … WHERE id = $1`."""
    _check(model, ("id", *names))
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(names, start=2))
    return f"UPDATE {table_of(model).name} SET {assignments} WHERE id = $1"  # noqa: S608


def select_list(names: Iterable[str], alias: str) -> str:
    """`alias.a, alias.b, …`: the columns of a joined table, keeping their own names."""
    return ", ".join(f"{alias}.{c}" for c in names)


def values(row: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
    """The row's values in the statement's column order."""
    return [row[c] for c in names]


def _check(model: type[SQLModel], names: Iterable[str]) -> None:
    known = set(columns(model))
    unknown = [c for c in names if c not in known]
    if unknown:
        raise ValueError(f"{table_of(model).name} has no column {', '.join(unknown)}")
