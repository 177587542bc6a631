"""Backup and restore: `pg_dump` of the whole database plus a manifest, in one tar file.

The key rings are not in the backup. They are the other half of it, kept apart on purpose: a
stolen backup then holds only envelopes. The manifest records which key ids the envelopes need,
so a restore refuses to start when the configured rings cannot open them (see
docs/operations.md for the procedure).

A restore goes into an empty database and may move to another NATS namespace. Everything the
services know is in PostgreSQL, the transactional outbox included, so afterwards:

- messages that were sent stay sent (they are not published again), and messages that were not
  sent yet are published by the relays as usual, under the new namespace's subjects;
- certificate requests still pending get their command again: the one sent before the backup
  may have been consumed by nobody (it lived in the old stream). The issuer is idempotent per
  request, so a command that had been consumed after all makes nothing twice;
- CRL numbers, serial numbers and every other counter continue from the database.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from certforge.common.contracts.commands import IssueCertificate, RenewCertificate
from certforge.common.contracts.envelope import CloudEvent, MessageData
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.columns import insert_sql, values
from certforge.common.db.pool import open_pool, plain_url
from certforge.common.db.sealed import Ring
from certforge.common.db.tables import OutboxMessage
from certforge.common.domain import RequestKind, RequestStatus
from certforge.common.errors import Conflict, Unprocessable
from certforge.common.outbox import MESSAGE_COLUMNS, message_row
from certforge.issuer.admin.rotation import kids_in_use, kids_needed, missing_kids

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
SOURCE = "/certforge/admin"


@dataclass(frozen=True)
class Manifest:
    """What a backup holds and needs, written beside the dump."""

    format: int
    created_at: datetime
    namespace: str
    schema_revision: str
    kids: dict[str, dict[str, int]]
    """`{"table.column": {kid: rows}}` at backup time"""
    rows: dict[str, int]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": self.format,
                "created_at": self.created_at.isoformat(),
                "namespace": self.namespace,
                "schema_revision": self.schema_revision,
                "kids": self.kids,
                "rows": self.rows,
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise Unprocessable.on_field("backup", f"backup format {raw.get('format')!r} unknown")
        return cls(
            format=raw["format"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            namespace=raw["namespace"],
            schema_revision=raw["schema_revision"],
            kids=raw["kids"],
            rows=raw["rows"],
        )


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    outbox_pending: int
    """unsent messages the relays will publish (under the new namespace)"""
    requests_requeued: int
    """pending certificate requests whose command was queued again"""


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """The URL for pg_dump/pg_restore without its password, and the environment that carries
    it (`PGPASSWORD`), so the password never shows in the process list."""
    parts = urlsplit(plain_url(url))
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.replace(f":{parts.password}@", "@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts), env


_COUNTED = (
    "certificate_authorities",
    "certificates",
    "certificate_requests",
    "profiles",
    "policies",
    "applications",
    "identities",
    "sync_destinations",
    "crls",
    "outbox",
)


async def backup(database_url: str, namespace: str, target: Path) -> Manifest:
    """Write `target` (a tar file): the manifest, then `pg_dump --format=custom` of the database.

    pg_dump reads one consistent snapshot while the services keep running; the manifest's counts
    come from a moment just before it, so they are a guide, not a checksum.
    """
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        kids = await kids_in_use(conn)
        rows = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in _COUNTED}  # noqa: S608 - fixed names
    finally:
        await conn.close()
    manifest = Manifest(FORMAT, datetime.now(UTC), namespace, revision, kids, rows)
    url, env = libpq_target(database_url)
    with tempfile.TemporaryDirectory() as scratch:
        dump = Path(scratch) / DUMP
        await asyncio.to_thread(
            subprocess.run,
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "-f", str(dump), url],
            env=env,
            check=True,
        )
        with tarfile.open(target, "w") as tar:
            info = tarfile.TarInfo(MANIFEST)
            data = manifest.to_json()
            info.size = len(data)
            info.mtime = int(manifest.created_at.timestamp())
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname=DUMP)
    return manifest


def read_manifest(source: Path) -> Manifest:
    with tarfile.open(source, "r") as tar:
        member = tar.extractfile(MANIFEST)
        if member is None:
            raise Unprocessable.on_field("backup", f"{source} holds no {MANIFEST}")
        return Manifest.from_json(member.read())


def check_rings(manifest: Manifest, rings: dict[Ring, KeyRing]) -> None:
    """Refuse a restore whose configured key rings cannot open what the backup holds."""
    missing = missing_kids(kids_needed(manifest.kids), rings)
    problems = [
        f"CERTFORGE_{ring.value.upper()}_KEKS lacks key id(s) {', '.join(sorted(kids))}"
        for ring, kids in missing.items()
        if kids
    ]
    if problems:
        raise Unprocessable.on_field("keks", "; ".join(problems))


async def _refuse_non_empty(url: str) -> None:
    conn = await asyncpg.connect(plain_url(url))
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    if tables:
        raise Conflict.on_field(
            "database_url",
            f"the target database is not empty ({tables} tables): restore "
            "into a new, empty database",
        )


async def restore(
    source: Path, database_url: str, namespace: str, rings: dict[Ring, KeyRing]
) -> RestoreReport:
    """Restore `source` into the empty database `database_url`, for the NATS `namespace`.

    Checks first (the rings open every envelope, the database is empty), then `pg_restore` in
    one transaction, then brings the outbox to the new namespace. Run the services' migration
    afterwards (`certforge-migrate`) when the release is newer than the backup.
    """
    manifest = read_manifest(source)
    check_rings(manifest, rings)
    await _refuse_non_empty(database_url)
    url, env = libpq_target(database_url)
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source, "r") as tar:
        tar.extract(DUMP, scratch, filter="data")
        await asyncio.to_thread(
            subprocess.run,
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                "-d",
                url,
                str(Path(scratch) / DUMP),
            ],
            env=env,
            check=True,
        )
    pool = await open_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await move_outbox(conn, manifest.namespace, namespace)
            requeued = await requeue_pending(conn, Subjects(namespace), datetime.now(UTC))
            pending = int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    finally:
        await pool.close()
    return RestoreReport(manifest, pending, requeued)


async def move_outbox(conn: Connection, old: str, new: str) -> None:
    """Re-address outbox rows from namespace `old` to `new` (subjects start `<ns>.`)."""
    if old != new:
        await conn.execute(
            "UPDATE outbox SET subject = $2 || substr(subject, length($1) + 1) "
            "WHERE subject LIKE $1 || '.%'",
            old,
            new,
        )


_PENDING_SQL = """
SELECT id, kind, application_id, renewal_of_id FROM certificate_requests
WHERE status = $1 ORDER BY created_at
"""


async def requeue_pending(conn: Connection, subjects: Subjects, now: datetime) -> int:
    """Queue the command of every pending certificate request again (see the module's doc)."""
    rows = await conn.fetch(_PENDING_SQL, RequestStatus.PENDING.value)
    messages: list[dict[str, Any]] = []
    for row in rows:
        command: MessageData
        if row["kind"] == RequestKind.RENEW.value and row["renewal_of_id"] is not None:
            command = RenewCertificate(
                request_id=row["id"],
                certificate_id=row["renewal_of_id"],
                application_id=row["application_id"],
            )
            subject = subjects.cmd_renew
        else:
            command = IssueCertificate(request_id=row["id"], application_id=row["application_id"])
            subject = subjects.cmd_issue
        messages.append(message_row(subject, CloudEvent.wrap(command, source=SOURCE, now=now)))
    if messages:
        await conn.executemany(
            insert_sql(OutboxMessage, MESSAGE_COLUMNS),
            [values(m, MESSAGE_COLUMNS) for m in messages],
        )
    return len(messages)
