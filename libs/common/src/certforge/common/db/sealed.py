"""Every column that holds an envelope (`crypto/envelope.py`), with its key ring and its AAD.

Key-encryption key rotation (`certforge-admin keys rewrap`) and the backup manifest walk this
list; `tests/unit/test_sealed_columns.py` fails when a table gains an `encrypted_*` column that
is not here, so a new secret cannot be left out of a rotation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certforge.common.acme import eab_key_aad
from certforge.common.alerts import secrets_aad


class Ring(StrEnum):
    """Which key ring seals a column: `CERTFORGE_CA_KEKS` or `CERTFORGE_LEAF_KEKS`."""

    CA = "ca"
    LEAF = "leaf"


def _id_bytes(row_id: Any) -> bytes:
    return bytes(row_id.bytes)


@dataclass(frozen=True)
class SealedColumn:
    """One envelope column, the column that mirrors its kid, and the AAD of a row (from its id)."""

    table: str
    column: str
    kid_column: str
    ring: Ring
    aad: Callable[[Any], bytes] = _id_bytes
    id_column: str = "id"


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("certificate_authorities", "encrypted_private_key", "key_kek_id", Ring.CA),
    SealedColumn("certificates", "encrypted_private_key", "key_kek_id", Ring.LEAF),
    SealedColumn("ocsp_responders", "encrypted_private_key", "key_kek_id", Ring.LEAF),
    SealedColumn("key_pool", "encrypted_key", "key_kek_id", Ring.LEAF),
    SealedColumn("sync_destinations", "encrypted_credentials", "credentials_kek_id", Ring.LEAF),
    SealedColumn("acme_eab_keys", "encrypted_hmac_key", "key_kek_id", Ring.LEAF, eab_key_aad),
    SealedColumn("alert_rules", "encrypted_secrets", "secrets_kek_id", Ring.LEAF, secrets_aad),
)
