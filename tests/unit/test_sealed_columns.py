"""The catalog of envelope columns (`common/db/sealed.py`) names every secret the schema holds:
a column missing from it would be skipped by key rotation and by the backup's key check."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlmodel import SQLModel

import certforge.common.db.tables  # noqa: F401 - registers every table
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.sealed import SEALED_COLUMNS


def _binary_secret_columns() -> set[tuple[str, str]]:
    return {
        (table.name, column.name)
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.LargeBinary) and column.name.startswith("encrypted")
    }


def test_every_encrypted_column_is_catalogued() -> None:
    catalogued = {(c.table, c.column) for c in SEALED_COLUMNS}
    assert _binary_secret_columns() == catalogued


def test_each_catalogued_column_and_its_kid_column_exist() -> None:
    tables = SQLModel.metadata.tables
    for c in SEALED_COLUMNS:
        names = set(tables[c.table].columns.keys())
        assert {c.id_column, c.column, c.kid_column} <= names, c


def test_the_aad_of_a_row_is_what_its_owner_seals_with() -> None:
    ring = KeyRing.parse(KeyRing.generate_text("k"))
    row_id = uuid.uuid4()
    by_table = {c.table: c for c in SEALED_COLUMNS}
    sealed = ring.encrypt(b"secret", row_id.bytes)
    assert ring.decrypt(sealed, by_table["certificates"].aad(row_id)) == b"secret"
    assert by_table["acme_eab_keys"].aad("kid-1") == b"acme-eab-key:kid-1"
    assert by_table["alert_rules"].aad(row_id) == b"alert-rule:" + row_id.bytes
