"""Settings of `certforge-admin`: the database, the namespace and both key rings, read the
same way as the services' (environment, `CERTFORGE_SECRETS_DIR`), so an operator runs it with
the issuer's configuration."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.sealed import Ring
from certforge.common.errors import Unprocessable
from certforge.common.settings import CommonSettings, check_key_ring, secret_is_set


class AdminSettings(CommonSettings):
    ca_keks: SecretStr | None = Field(
        default=None,
        description="the CA key ring (as the issuer's); needed by restore and key rotation",
    )
    leaf_keks: SecretStr | None = Field(
        default=None,
        description="the leaf key ring (as the issuer's); needed by restore and key rotation",
    )

    @field_validator("ca_keks", "leaf_keks")
    @classmethod
    def _ring(cls, value: SecretStr | None) -> SecretStr | None:
        return check_key_ring(value)

    def rings(self, wanted: tuple[Ring, ...] = (Ring.CA, Ring.LEAF)) -> dict[Ring, KeyRing]:
        """The rings asked for; a missing one is an error naming its variable."""
        found: dict[Ring, KeyRing] = {}
        for ring in wanted:
            value = self.ca_keks if ring is Ring.CA else self.leaf_keks
            if value is None or not secret_is_set(value):
                raise Unprocessable.on_field(
                    f"{ring.value}_keks", f"CERTFORGE_{ring.value.upper()}_KEKS is required"
                )
            found[ring] = KeyRing.parse(value.get_secret_value())
        return found
