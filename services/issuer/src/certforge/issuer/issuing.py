"""Signing certificate requests, in numbered steps, one database transaction per batch.

For each pending request of a batch:
  1. resolve the template from the stored parameters and the profile's current defaults;
  2. re-check that the profile is attached with API enrollment on and the CA is active;
  3. enforce the policy (authoritative; the api's check was an early courtesy);
  4. obtain the public key: generate the managed key, or re-verify the CSR;
  5. pick a random serial and, when enabled, lint the certificate signed by a throwaway key;
  6. sign with the CA key;
  7. store the certificate (managed key encrypted under the leaf key ring, bound to its id),
     mark the request issued and enqueue `certificate.issued` — all in the batch transaction.
A request refused in steps 1-5 is marked `failed` with the reason and `request.failed` is
enqueued. Requests are locked `FOR UPDATE` and only `pending` ones are signed, and
`certificates.request_id` is unique: a redelivered command never makes a second certificate.
Database failures propagate: the caller nacks the batch and it is retried whole.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from cryptography import x509
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import CertificateIssued, RequestFailed
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.certificates import (
    build_certificate,
    certificate_to_pem,
    fingerprint_sha256,
    new_serial,
)
from certforge.common.crypto.csr import parse_csr
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    private_key_to_der,
)
from certforge.common.db.engine import SessionFactory
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateAuthority,
    CertificateRequest,
    Policy,
    Profile,
    ProfileAttachment,
)
from certforge.common.domain import (
    CAStatus,
    CertificateStatus,
    KeyAlgorithm,
    RequestMethod,
    RequestStatus,
    SignatureHash,
)
from certforge.common.errors import CertforgeError, Unprocessable
from certforge.common.issuance import IssuingCA, ProfileDefaults, RequestParams, resolve_template
from certforge.common.outbox import enqueue
from certforge.common.policy import PolicyDocument, enforce
from certforge.common.template import CertificateTemplate
from certforge.issuer import lint
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.urls import ca_urls

log = logging.getLogger(__name__)

SOURCE = "/certforge/issuer"
_HASHES = {h.value.lower(): h for h in SignatureHash}


@dataclass
class _Batch:
    """Everything the requests of a batch refer to, loaded with one query per table."""

    applications: dict[UUID, Application] = field(default_factory=dict)
    profiles: dict[UUID, Profile] = field(default_factory=dict)
    policies: dict[UUID, Policy] = field(default_factory=dict)
    cas: dict[UUID, CertificateAuthority] = field(default_factory=dict)
    attachments: dict[tuple[UUID, UUID], ProfileAttachment] = field(default_factory=dict)


@dataclass
class _Planned:
    request: CertificateRequest
    params: RequestParams
    template: CertificateTemplate
    public_key: PublicKey | None = None
    private_key: PrivateKey | None = None


def renew_at(not_before: datetime, not_after: datetime, renew_before_days: int) -> datetime:
    """When renewal is due: `renew_before_days` before expiry, but never in the first two
    thirds of the validity, so a short-lived certificate is not due the moment it is issued."""
    window = min(timedelta(days=renew_before_days), (not_after - not_before) / 3)
    return not_after - window


@dataclass
class IssuanceService:
    sessions: SessionFactory
    signers: SignerCache
    leaf_keys: KeyRing
    subjects: Subjects
    base_url: str
    lint_before_signing: bool = True

    async def issue(self, request_ids: list[UUID], now: datetime | None = None) -> int:
        """Sign the pending requests among `request_ids`; return how many were issued."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        issued = 0
        async with self.sessions() as session, session.begin():
            requests = (
                await session.exec(
                    select(CertificateRequest)
                    .where(col(CertificateRequest.id).in_(sorted(set(request_ids))))
                    .order_by(col(CertificateRequest.id))
                    .with_for_update()
                )
            ).all()
            pending = [r for r in requests if r.status == RequestStatus.PENDING]
            if not pending:
                return 0
            batch = await _load(session, pending)
            planned: list[_Planned] = []
            for request in pending:
                try:
                    planned.append(self._plan(request, batch, now))
                except CertforgeError as exc:
                    self._fail(session, request, batch, exc, now)
            await _generate_keys([p for p in planned if p.params.method is RequestMethod.MANAGED])
            for plan in planned:
                try:
                    cert = self._sign(plan, batch)
                except CertforgeError as exc:
                    self._fail(session, plan.request, batch, exc, now)
                    continue
                except Exception:
                    log.exception("signing failed", extra={"request_id": str(plan.request.id)})
                    error = Unprocessable(detail="internal error while signing; submit it again")
                    self._fail(session, plan.request, batch, error, now)
                    continue
                self._store(session, plan, cert, batch, now)
                issued += 1
        return issued

    def _plan(self, request: CertificateRequest, batch: _Batch, now: datetime) -> _Planned:
        """Steps 1-4 (the key itself is generated afterwards, for the whole batch at once)."""
        profile = batch.profiles[request.profile_id]
        ca = batch.cas[profile.ca_id]
        params = RequestParams.model_validate(request.params)
        template = resolve_template(
            params,
            ProfileDefaults.model_validate(profile.defaults),
            IssuingCA(ca.name, KeyAlgorithm(ca.key_algorithm), ca.not_after),
            now,
        )
        attachment = batch.attachments.get((request.application_id, profile.id))
        if attachment is None or not attachment.api_enabled:
            raise Unprocessable.on_field(
                "profile", f"API enrollment of profile {profile.slug!r} is no longer enabled"
            )
        if ca.status != CAStatus.ACTIVE:
            raise Unprocessable.on_field("profile", f"CA {ca.name!r} is disabled")
        policy = batch.policies[profile.policy_id]
        enforce(PolicyDocument.model_validate(policy.document), template, policy.name)
        plan = _Planned(request=request, params=params, template=template)
        if params.method is RequestMethod.CSR:
            assert params.csr is not None
            csr = parse_csr(params.csr)
            if csr.key_algorithm is not template.key_algorithm:
                raise Unprocessable.on_field("csr", "the CSR's key changed algorithm")
            plan.public_key = csr.public_key
        return plan

    def _sign(self, plan: _Planned, batch: _Batch) -> x509.Certificate:
        """Steps 5-6."""
        profile = batch.profiles[plan.request.profile_id]
        ca = batch.cas[profile.ca_id]
        signer = self.signers.signer(ca)
        urls = ca_urls(self.base_url, ca.id)
        public_key = plan.public_key
        assert public_key is not None
        serial = new_serial()

        def build(key: PrivateKey) -> x509.Certificate:
            return build_certificate(
                plan.template,
                public_key,
                signer.name,
                key,
                signer.key_id,
                serial,
                crl_url=urls.crl,
                ocsp_url=urls.ocsp,
                ca_issuers_url=urls.ca_issuers,
            )

        if self.lint_before_signing:
            lint.check(build(lint.lint_key(KeyAlgorithm(ca.key_algorithm))))
        return build(signer.key)

    def _store(
        self,
        session: AsyncSession,
        plan: _Planned,
        cert: x509.Certificate,
        batch: _Batch,
        now: datetime,
    ) -> None:
        """Step 7."""
        request, template = plan.request, plan.template
        profile = batch.profiles[request.profile_id]
        app = batch.applications[request.application_id]
        attachment = batch.attachments[(app.id, profile.id)]
        certificate_id = uuid4()
        encrypted = (
            self.leaf_keys.encrypt(private_key_to_der(plan.private_key), certificate_id.bytes)
            if plan.private_key is not None
            else None
        )
        hash_name = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        certificate = Certificate(
            id=certificate_id,
            application_id=app.id,
            profile_id=profile.id,
            ca_id=profile.ca_id,
            request_id=request.id,
            serial_number=format(cert.serial_number, "x"),
            common_name=template.subject.common_name,
            subject_dn=cert.subject.rfc4514_string(),
            sans=[s.model_dump(mode="json") for s in template.sans],
            key_algorithm=template.key_algorithm.value,
            signature_hash=_HASHES[hash_name].value if hash_name else None,
            method=request.method,
            not_before=not_before,
            not_after=not_after,
            status=CertificateStatus.ACTIVE.value,
            certificate_pem=certificate_to_pem(cert),
            fingerprint_sha256=fingerprint_sha256(cert),
            encrypted_private_key=encrypted,
            key_kek_id=self.leaf_keys.active_kid if encrypted else None,
            tags=plan.params.metadata,
            auto_renew=attachment.api_auto_renew and encrypted is not None,
            renew_before_days=attachment.api_renew_before_days,
            renew_at=renew_at(not_before, not_after, attachment.api_renew_before_days),
            created_at=now,
            updated_at=now,
        )
        session.add(certificate)
        request.status = RequestStatus.ISSUED.value
        request.certificate_id = certificate_id
        request.completed_at = now
        session.add(request)
        event = CertificateIssued(
            certificate_id=certificate_id,
            application_id=app.id,
            application=app.slug,
            profile=profile.slug,
            ca_id=profile.ca_id,
            serial_number=certificate.serial_number,
            common_name=certificate.common_name,
            sans=template.sans,
            not_before=not_before,
            not_after=not_after,
            fingerprint_sha256=certificate.fingerprint_sha256,
            certificate_pem=certificate.certificate_pem,
            metadata=plan.params.metadata,
            request_id=request.id,
        )
        subject = self.subjects.event(app.slug, CertificateIssued.event_name)
        enqueue(
            session, subject, CloudEvent.wrap(event, source=SOURCE, subject=str(certificate_id))
        )

    def _fail(
        self,
        session: AsyncSession,
        request: CertificateRequest,
        batch: _Batch,
        error: CertforgeError,
        now: datetime,
    ) -> None:
        app = batch.applications[request.application_id]
        request.status = RequestStatus.FAILED.value
        request.error = error.detail
        request.error_details = [e.as_dict() for e in error.errors]
        request.completed_at = now
        session.add(request)
        event = RequestFailed(
            request_id=request.id,
            application_id=app.id,
            application=app.slug,
            reason=error.detail,
            errors=request.error_details,
        )
        subject = self.subjects.event(app.slug, RequestFailed.event_name)
        enqueue(session, subject, CloudEvent.wrap(event, source=SOURCE, subject=str(request.id)))
        log.info(
            "request failed: %s",
            error.detail,
            extra={"request_id": str(request.id), "application": app.slug},
        )


async def _load(session: AsyncSession, requests: list[CertificateRequest]) -> _Batch:
    batch = _Batch()
    app_ids = {r.application_id for r in requests}
    profile_ids = {r.profile_id for r in requests}
    for app in await session.exec(select(Application).where(col(Application.id).in_(app_ids))):
        batch.applications[app.id] = app
    for profile in await session.exec(select(Profile).where(col(Profile.id).in_(profile_ids))):
        batch.profiles[profile.id] = profile
    policy_ids = {p.policy_id for p in batch.profiles.values()}
    ca_ids = {p.ca_id for p in batch.profiles.values()}
    for policy in await session.exec(select(Policy).where(col(Policy.id).in_(policy_ids))):
        batch.policies[policy.id] = policy
    for ca in await session.exec(
        select(CertificateAuthority).where(col(CertificateAuthority.id).in_(ca_ids))
    ):
        batch.cas[ca.id] = ca
    for attachment in await session.exec(
        select(ProfileAttachment).where(
            col(ProfileAttachment.application_id).in_(app_ids),
            col(ProfileAttachment.profile_id).in_(profile_ids),
        )
    ):
        batch.attachments[(attachment.application_id, attachment.profile_id)] = attachment
    return batch


async def _generate_keys(plans: list[_Planned]) -> None:
    """Managed keys for a batch; RSA generation (tens of ms each) runs on worker threads."""

    async def generate(plan: _Planned) -> None:
        algorithm = plan.template.key_algorithm
        if algorithm.is_rsa:
            plan.private_key = await asyncio.to_thread(generate_private_key, algorithm)
        else:
            plan.private_key = generate_private_key(algorithm)
        plan.public_key = plan.private_key.public_key()

    await asyncio.gather(*(generate(p) for p in plans))
