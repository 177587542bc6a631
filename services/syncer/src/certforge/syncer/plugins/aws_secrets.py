"""AWS Secrets Manager: one secret per certificate lineage holding a JSON document; a renewal
writes a new version of the same secret (AWSCURRENT moves, AWSPREVIOUS keeps the old one).

The secret string is
`{"certificate", "chain", "private_key"?, "serial_number", "not_after", "certificate_id",
"lineage_id"}` (PEM text; `private_key` only when Certforge holds the key, so CSR
certificates sync too). The external id is the secret ARN.

- First push: `CreateSecret` named `item.name`, tagged `certforge:lineage-id`. If that name
  exists already and carries the tag (our own earlier attempt, or another Certforge lineage),
  a new version is written to it; a secret Certforge did not create is refused unless the
  sync sets `adopt_existing`, so a name template cannot overwrite an unrelated secret.
- Later pushes: `PutSecretValue` into the recorded ARN; if it is gone, it is created again;
  if it is scheduled for deletion, it is restored first.
- Versions are idempotent: the version id (`ClientRequestToken`) is derived from the
  certificate id and the content, so a redelivered event does not add a version.
- `kms_key_id` applies when the secret is created (an existing secret keeps its key).

`check` lists secrets (`secretsmanager:ListSecrets`); pushing needs `CreateSecret`,
`PutSecretValue`, `DescribeSecret`, `TagResource`, `RestoreSecret` (and `kms:GenerateDataKey`
/ `kms:Encrypt` on a customer key); removing `DeleteSecret`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from certforge.common.destinations.aws import AWS_SECRETS_MANAGER, AwsSecretsManagerSettings
from certforge.syncer.plugins.aws import AwsDestination, client_error_code
from certforge.syncer.plugins.base import PermanentSyncError, SyncItem

__all__ = ["AwsSecretsManager"]

OWNER_TAG = "certforge:lineage-id"
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_VERSION_NAMESPACE = uuid.UUID("5b0e8f8e-7d0c-4d43-9a53-3c7f4f1a6c21")


def secret_document(item: SyncItem) -> dict[str, str]:
    """What the secret holds for `item`."""
    document = {
        "certificate": item.certificate_pem,
        "chain": item.chain_pem,
        "serial_number": item.serial_number,
        "not_after": item.not_after.isoformat(),
        "certificate_id": str(item.certificate_id),
        "lineage_id": str(item.lineage_id),
    }
    if item.private_key_pem:
        document["private_key"] = item.private_key_pem
    if item.trust_bundle_pem:
        document["trust_bundle"] = item.trust_bundle_pem
    return document


def _version_token(item: SyncItem, secret_string: str) -> str:
    digest = hashlib.sha256(secret_string.encode()).hexdigest()
    return str(uuid.uuid5(_VERSION_NAMESPACE, f"{item.certificate_id}:{digest}"))


class AwsSecretsManager(AwsDestination[AwsSecretsManagerSettings]):
    """`aws-secrets-manager`: one JSON secret per certificate lineage."""

    spec = AWS_SECRETS_MANAGER
    service = "secretsmanager"
    label = "AWS Secrets Manager"
    needs_private_key = False

    async def push(self, item: SyncItem) -> str:
        secret_string = json.dumps(secret_document(item), sort_keys=True)
        token = _version_token(item, secret_string)
        with self._errors():
            if item.external_id:
                arn = await self._put_existing(item.external_id, secret_string, token)
                if arn is not None:
                    return arn
            return await self._create(item, secret_string, token)

    async def _put(self, secret_id: str, secret_string: str, token: str) -> str:
        response = await self._call(
            "put_secret_value",
            SecretId=secret_id,
            SecretString=secret_string,
            ClientRequestToken=token,
        )
        arn = response.get("ARN")
        if not isinstance(arn, str) or not arn:
            raise self._unexpected("PutSecretValue")
        return arn

    async def _put_existing(self, secret_id: str, secret_string: str, token: str) -> str | None:
        """A new version of the recorded secret; None if it no longer exists."""
        try:
            return await self._put(secret_id, secret_string, token)
        except Exception as exc:
            code = client_error_code(exc)
            if code == "ResourceNotFoundException":
                return None
            if code != "InvalidRequestException" or not await self._restore_if_deleted(secret_id):
                raise
        return await self._put(secret_id, secret_string, token)

    async def _restore_if_deleted(self, secret_id: str) -> bool:
        """Restore a secret scheduled for deletion; False if it is not scheduled."""
        description = await self._call("describe_secret", SecretId=secret_id)
        if not description.get("DeletedDate"):
            return False
        await self._call("restore_secret", SecretId=secret_id)
        return True

    async def _create(self, item: SyncItem, secret_string: str, token: str) -> str:
        if not _NAME.fullmatch(item.name):
            raise PermanentSyncError(
                f"{self.label}: secret name {item.name[:80]!r} is invalid (1-512 of "
                "A-Z a-z 0-9 / _ + = . @ -)"
            )
        params: dict[str, Any] = {
            "Name": item.name,
            "SecretString": secret_string,
            "ClientRequestToken": token,
            "Description": f"Certificate synced by Certforge (lineage {item.lineage_id})",
            "Tags": [{"Key": OWNER_TAG, "Value": str(item.lineage_id)}],
        }
        if self.settings.kms_key_id:
            params["KmsKeyId"] = self.settings.kms_key_id
        try:
            response = await self._call("create_secret", **params)
        except Exception as exc:
            # Exists: our earlier attempt whose answer was lost, or someone else's secret.
            # InvalidRequestException: AWS's answer for a name scheduled for deletion.
            if client_error_code(exc) not in ("ResourceExistsException", "InvalidRequestException"):
                raise
            return await self._take_over(item, secret_string, token, exc)
        arn = response.get("ARN")
        if not isinstance(arn, str) or not arn:
            raise self._unexpected("CreateSecret")
        return arn

    async def _take_over(
        self, item: SyncItem, secret_string: str, token: str, cause: Exception
    ) -> str:
        try:
            description = await self._call("describe_secret", SecretId=item.name)
        except Exception as exc:
            if client_error_code(exc) == "ResourceNotFoundException":
                raise cause from None  # not an existence problem after all
            raise
        arn = str(description.get("ARN") or item.name)
        tags = {t.get("Key"): t.get("Value") for t in description.get("Tags") or []}
        owner = tags.get(OWNER_TAG)
        if owner is None and not self.settings.adopt_existing:
            raise PermanentSyncError(
                f"{self.label}: a secret named {item.name!r} exists and was not created by "
                "Certforge; delete it, choose another name template, or set adopt_existing"
            )
        if description.get("DeletedDate"):
            await self._call("restore_secret", SecretId=arn)
        if owner != str(item.lineage_id):
            await self._call(
                "tag_resource",
                SecretId=arn,
                Tags=[{"Key": OWNER_TAG, "Value": str(item.lineage_id)}],
            )
        return await self._put(arn, secret_string, token)

    async def remove(self, item: SyncItem, external_id: str) -> None:
        params: dict[str, Any] = {"SecretId": external_id}
        if self.settings.recovery_window_days is None:
            params["ForceDeleteWithoutRecovery"] = True
        else:
            params["RecoveryWindowInDays"] = self.settings.recovery_window_days
        with self._errors():
            try:
                await self._call("delete_secret", **params)
            except Exception as exc:
                code = client_error_code(exc)
                if code == "ResourceNotFoundException":
                    return
                if code == "InvalidRequestException":
                    # Already scheduled for deletion (a second remove): done, unless the
                    # sync wants it gone now.
                    description = await self._call("describe_secret", SecretId=external_id)
                    if description.get("DeletedDate"):
                        if "ForceDeleteWithoutRecovery" in params:
                            await self._call("delete_secret", **params)
                        return
                raise

    async def check(self) -> None:
        with self._errors():
            await self._call("list_secrets", MaxResults=1)
