"""Plain-SQL statements and rows derived from the table models: every row a writer builds fills
exactly the columns its statement names, and records are read by column name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from certforge.api.audit import ENTRY_COLUMNS, AuditScope
from certforge.api.auth import Actor
from certforge.api.domain.requests import RequestRecord
from certforge.common.contracts.commands import IssueCertificate
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.db.columns import (
    columns,
    insert_sql,
    insertable,
    select_list,
    update_by_id_sql,
    values,
)
from certforge.common.db.tables import AuditEvent, CertificateRequest, OutboxMessage
from certforge.common.domain import RenewalKey, RequestKind, RequestMethod
from certforge.common.issuance import RequestParams
from certforge.common.outbox import MESSAGE_COLUMNS, message_row
from certforge.common.request_rows import new_request_row

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_insertable_leaves_out_identity_columns() -> None:
    assert "seq" in columns(OutboxMessage)
    assert "seq" not in insertable(OutboxMessage)
    assert "id" not in insertable(AuditEvent)
    assert insertable(CertificateRequest) == columns(CertificateRequest)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param(
            insert_sql(OutboxMessage, ("id", "subject")),
            "INSERT INTO outbox (id, subject) VALUES ($1, $2)",
            id="ok/insert",
        ),
        pytest.param(
            insert_sql(OutboxMessage, ("id", "subject"), first=17),
            "INSERT INTO outbox (id, subject) VALUES ($17, $18)",
            id="ok/insert-numbered-after-another",
        ),
        pytest.param(
            update_by_id_sql(CertificateRequest, ("status", "error")),
            "UPDATE certificate_requests SET status = $2, error = $3 WHERE id = $1",
            id="ok/update-by-id",
        ),
        pytest.param(select_list(("id", "kind"), "r"), "r.id, r.kind", id="ok/select-list"),
    ],
)
def test_statements(sql: str, expected: str) -> None:
    assert sql == expected


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: insert_sql(OutboxMessage, ("id", "sbject")), id="fail/insert-typo"),
        pytest.param(
            lambda: update_by_id_sql(CertificateRequest, ("state",)), id="fail/update-typo"
        ),
    ],
)
def test_unknown_column_refused_at_import(build: Any) -> None:
    with pytest.raises(ValueError, match="has no column"):
        build()


def test_values_follow_the_statement_order() -> None:
    assert values({"b": 2, "a": 1}, ("a", "b")) == [1, 2]


@pytest.mark.parametrize(
    ("kind", "params", "renewal_of"),
    [
        pytest.param(
            RequestKind.ISSUE, RequestParams(method=RequestMethod.MANAGED), None, id="ok/issue"
        ),
        pytest.param(
            RequestKind.RENEW,
            RequestParams(method=RequestMethod.MANAGED, key=RenewalKey.NEW),
            uuid4(),
            id="ok/renew",
        ),
    ],
)
def test_request_row_fills_every_column(
    kind: RequestKind, params: RequestParams, renewal_of: UUID | None
) -> None:
    row = new_request_row(
        id=uuid4(),
        kind=kind,
        application_id=uuid4(),
        profile_id=uuid4(),
        params=params,
        now=NOW,
        renewal_of_id=renewal_of,
    )
    assert tuple(row) == columns(CertificateRequest)
    assert (row["kind"], row["status"], row["method"]) == (kind.value, "pending", "managed")
    assert RequestParams.model_validate(row["params"]) == params
    assert CertificateRequest(**row).renewal_of_id == renewal_of


def test_outbox_and_audit_rows_fill_their_statements() -> None:
    command = IssueCertificate(request_id=uuid4(), application_id=uuid4())
    assert tuple(message_row("s", CloudEvent.wrap(command, source="/t"))) == MESSAGE_COLUMNS
    scope = AuditScope(
        Actor(identity_id=uuid4(), name="n", is_product_admin=False), "request.create", None
    )
    assert tuple(scope.entry(resource_type="x", resource_id=None)) == ENTRY_COLUMNS


def test_request_record_is_read_by_column_name() -> None:
    row = new_request_row(
        id=uuid4(),
        kind=RequestKind.ISSUE,
        application_id=uuid4(),
        profile_id=uuid4(),
        params=RequestParams(method=RequestMethod.CSR),
        now=NOW,
    )
    shuffled = dict(reversed(row.items()))
    record = RequestRecord.of_row(shuffled)
    assert (record.id, record.method, record.kind) == (row["id"], "csr", "issue")
    assert RequestRecord.of(CertificateRequest(**row)) == record
