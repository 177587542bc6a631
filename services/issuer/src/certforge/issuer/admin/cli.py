"""`certforge-admin`: backup, restore and key-encryption key rotation from the command line.

    certforge-admin backup FILE           pg_dump + manifest into one tar file
    certforge-admin restore FILE          into an empty database, for this namespace
    certforge-admin keys status           which key ids the stored envelopes use
    certforge-admin keys new KID          a new `KID:base64` key to put into a ring
    certforge-admin keys rewrap [--ring]  re-seal everything under each ring's first key id

Configuration comes from the same variables as the issuer's (`CERTFORGE_DATABASE_URL`,
`CERTFORGE_NATS__NAMESPACE`, `CERTFORGE_CA_KEKS`, `CERTFORGE_LEAF_KEKS`).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tarfile
from pathlib import Path

from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.pool import open_pool
from certforge.common.db.sealed import Ring
from certforge.common.errors import CertforgeError, Unprocessable
from certforge.issuer.admin import backup as backups
from certforge.issuer.admin.rotation import kids_in_use, kids_needed, missing_kids, rewrap_all
from certforge.issuer.admin.settings import AdminSettings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="certforge-admin", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    b = commands.add_parser("backup", help="write a backup of the database to FILE")
    b.add_argument("file", type=Path)
    r = commands.add_parser("restore", help="restore FILE into an empty database")
    r.add_argument("file", type=Path)
    keys = commands.add_parser("keys", help="key-encryption key rotation").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("status", help="key ids in use, per sealed column")
    new = keys.add_parser("new", help="print a new key `KID:base64(32 random bytes)`")
    new.add_argument("kid")
    rewrap = keys.add_parser("rewrap", help="re-seal every envelope under the active key id")
    rewrap.add_argument("--ring", choices=[r.value for r in Ring], action="append")
    rewrap.add_argument("--batch-size", type=int, default=500)
    return top


async def run(args: argparse.Namespace, settings: AdminSettings) -> int:
    url = settings.database_url.get_secret_value()
    namespace = settings.nats.namespace
    if args.command == "backup":
        manifest = await backups.backup(url, namespace, args.file)
        print(f"backup written to {args.file} (schema {manifest.schema_revision})")
        for table, count in manifest.rows.items():
            print(f"  {table}: {count}")
        return 0
    if args.command == "restore":
        restored = await backups.restore(args.file, url, namespace, settings.rings())
        print(
            f"restored the backup of {restored.manifest.created_at.isoformat()} "
            f"(namespace {restored.manifest.namespace} -> {namespace}); "
            f"{restored.outbox_pending} message(s) to publish, "
            f"{restored.requests_requeued} pending request(s) queued again"
        )
        return 0
    if args.keys_command == "new":
        try:
            print(KeyRing.generate_text(args.kid))
        except ValueError as exc:
            raise Unprocessable.on_field("kid", str(exc)) from None
        return 0
    pool = await open_pool(url, max_size=1)
    try:
        async with pool.acquire() as conn:
            if args.keys_command == "rewrap":
                wanted = tuple(Ring(r) for r in args.ring) if args.ring else tuple(Ring)
                rings = settings.rings(wanted)
                report = await rewrap_all(conn, rings, args.batch_size)
                for column, count in report.rewrapped.items():
                    print(f"{column}: {count} re-sealed")
            usage = await kids_in_use(conn)
    finally:
        await pool.close()
    for column, kids in usage.items():
        print(f"{column}: " + (", ".join(f"{k}={n}" for k, n in kids.items()) or "empty"))
    available = _configured_rings(settings)
    stale = {
        ring: kids - {available[ring].active_kid}
        for ring, kids in kids_needed(usage).items()
        if ring in available
    }
    unopenable = missing_kids(kids_needed(usage), available)
    for ring, lacking in unopenable.items():
        if lacking:
            print(
                f"error: the {ring.value} ring cannot open key id(s) {', '.join(sorted(lacking))}"
            )
    for ring, others in stale.items():
        if others:
            print(f"{ring.value} ring: other key ids still in use: {', '.join(sorted(others))}")
        elif ring in available:
            print(f"{ring.value} ring: everything is sealed under {available[ring].active_kid}")
    return 1 if any(unopenable.values()) or any(stale.values()) else 0


def _configured_rings(settings: AdminSettings) -> dict[Ring, KeyRing]:
    """The rings that are configured (`keys status` works with either or none)."""
    found: dict[Ring, KeyRing] = {}
    for ring in Ring:
        try:
            found.update(settings.rings((ring,)))
        except CertforgeError:
            continue
    return found


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = AdminSettings.load_or_exit("certforge-admin")
    try:
        code = asyncio.run(run(args, settings))
    except CertforgeError as exc:
        print(f"certforge-admin: {exc.detail}", file=sys.stderr)
        code = 1
    except (OSError, tarfile.TarError) as exc:
        print(f"certforge-admin: {exc}", file=sys.stderr)
        code = 1
    except subprocess.CalledProcessError as exc:
        print(
            f"certforge-admin: {exc.cmd[0]} failed with exit code {exc.returncode}", file=sys.stderr
        )
        code = 1
    raise SystemExit(code)
