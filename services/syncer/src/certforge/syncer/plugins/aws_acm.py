"""AWS Certificate Manager: import the certificate with its key and chain; renewals re-import
into the same ARN, so load balancers and CloudFront distributions using it pick it up.

The external id is the certificate ARN. Tags (the sync's plus `certforge:lineage-id` and
`certforge:certificate-id`) go on the first import; ACM refuses tags on a re-import, so they
are re-applied with `AddTagsToCertificate` after it (this also keeps them in moto, which
clears tags on a re-import). A tag removed from the settings stays on existing certificates.

If the recorded ARN is gone (deleted out of band), or belongs to another region than the
sync's (its region was changed), the certificate is imported anew and the new ARN returned;
`remove` likewise reaches only the sync's current region.

`check` lists certificates (`acm:ListCertificates`); pushing needs `acm:ImportCertificate`
and `acm:AddTagsToCertificate`, removing `acm:DeleteCertificate`.

Not idempotent across a lost answer: ACM has no client token, so if an import succeeds but
its ARN never reaches the syncer's records, the retry imports a second copy (found by its
`certforge:lineage-id` tag).
"""

from __future__ import annotations

from typing import Any

from certforge.common.destinations.aws import AWS_ACM, AwsAcmSettings
from certforge.syncer.plugins.aws import AwsDestination, client_error_code
from certforge.syncer.plugins.base import PermanentSyncError, SyncItem, TransientSyncError

__all__ = ["AwsAcm"]


def _arn_region(arn: str) -> str | None:
    """The region of an ACM certificate ARN; None if `arn` is not one."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "acm":
        return None
    if not parts[5].startswith("certificate/"):
        return None
    return parts[3]


class AwsAcm(AwsDestination[AwsAcmSettings]):
    """`aws-acm`: imported certificates in AWS Certificate Manager."""

    spec = AWS_ACM
    service = "acm"
    label = "AWS ACM"
    needs_private_key = True

    def _tags(self, item: SyncItem) -> list[dict[str, str]]:
        tags = {
            **self.settings.tags,
            "certforge:lineage-id": str(item.lineage_id),
            "certforge:certificate-id": str(item.certificate_id),
        }
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def _ours(self, external_id: str | None) -> str | None:
        """The recorded ARN if this sync's client can address it."""
        if external_id and _arn_region(external_id) == self.settings.region:
            return external_id
        return None

    async def push(self, item: SyncItem) -> str:
        if not item.private_key_pem:
            raise PermanentSyncError(
                f"{self.label} needs the private key; this certificate has none in Certforge"
            )
        material: dict[str, Any] = {
            "Certificate": item.certificate_pem,
            "PrivateKey": item.private_key_pem,
        }
        if item.chain_pem.strip():
            material["CertificateChain"] = item.chain_pem
        tags = self._tags(item)
        with self._errors():
            arn = self._ours(item.external_id)
            if arn is not None:
                try:
                    await self._call("import_certificate", CertificateArn=arn, **material)
                except Exception as exc:
                    if client_error_code(exc) != "ResourceNotFoundException":
                        raise
                    # Deleted out of band: import anew below.
                else:
                    try:
                        await self._call("add_tags_to_certificate", CertificateArn=arn, Tags=tags)
                    except Exception as exc:
                        if client_error_code(exc) == "ResourceNotFoundException":
                            raise TransientSyncError(
                                f"{self.label}: certificate deleted during the update; will retry"
                            ) from exc
                        raise
                    return arn
            response = await self._call("import_certificate", Tags=tags, **material)
        new_arn = response.get("CertificateArn")
        if not isinstance(new_arn, str) or not new_arn:
            raise self._unexpected("ImportCertificate")
        return new_arn

    async def remove(self, item: SyncItem, external_id: str) -> None:
        if _arn_region(external_id) is None:
            return  # never an ACM certificate: nothing of ours to delete
        with self._errors():
            try:
                await self._call("delete_certificate", CertificateArn=external_id)
            except Exception as exc:
                if client_error_code(exc) != "ResourceNotFoundException":
                    raise

    async def check(self) -> None:
        with self._errors():
            await self._call("list_certificates", MaxItems=1)
