"""Signing certificate requests (new and renewals), in numbered steps, one transaction a batch.

For each pending request of a batch:
  1. resolve the template: from the stored parameters and the profile's current defaults, or,
     for a renewal, from the certificate it renews (same subject, SANs, usages; the original
     validity capped by policy and by the CA's expiry);
  2. re-check, with the rules the api applied early (`certforge.common.request_rules`), that
     the profile is attached with API enrollment on and the CA is active (and that a renewed
     certificate is still active with no other renewal in flight);
  3. enforce the policy (authoritative; the api's check was an early courtesy);
  4. obtain the public key: generate a managed key (or reuse the old one), or re-verify a CSR;
  5. pick a random serial, add the profile's extensions as the profile has them now (read at
     signing, not carried with the request: a renewal gets the current ones), and, when
     enabled, lint the certificate signed by a throwaway key;
  6. sign with the CA key;
  7. store the certificate (managed key encrypted under the leaf key ring, bound to its id),
     mark the request issued and enqueue `certificate.issued` (for a renewal: mark the old
     certificate `renewed`, link both ways, enqueue `certificate.renewed`) — in the batch
     transaction.
A request refused in steps 1-5 is marked `failed` with the reason and `request.failed` is
enqueued; a failed renewal is also recorded on the old certificate, which is retried later with
backoff (`certificate.renewal_failed`). Requests are locked `FOR UPDATE` and only `pending`
ones are signed, and `certificates.request_id` is unique: a redelivered command never makes a
second certificate. Database failures propagate: the caller nacks the batch and it is retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from cryptography import x509
from pydantic import ValidationError

from certforge.common.backoff import backoff_delay
from certforge.common.contracts.envelope import CloudEvent
from certforge.common.contracts.events import (
    CertificateIssued,
    CertificateRenewalFailed,
    CertificateRenewed,
    RequestFailed,
)
from certforge.common.contracts.routes import ca_urls
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
    load_stored_private_key,
    private_key_to_der,
)
from certforge.common.db.pool import LazyPool
from certforge.common.db.tables import (
    Application,
    Certificate,
    CertificateRequest,
    Policy,
)
from certforge.common.domain import (
    CertificateStatus,
    KeyAlgorithm,
    RenewalKey,
    RequestKind,
    RequestMethod,
    RequestStatus,
    SignatureHash,
)
from certforge.common.errors import CertforgeError, FieldError, Unprocessable
from certforge.common.issuance import (
    IssuingCA,
    RequestParams,
    fitted_renew_before_days,
    renew_at,
    resolve_template,
)
from certforge.common.metrics import (
    CERTIFICATES_ISSUED,
    ISSUANCE_LATENCY,
    RENEWALS,
    REQUESTS_FAILED,
)
from certforge.common.name_constraint_rules import enforce_policy_and_names
from certforge.common.profile_extensions import ProfileExtensions, check_csr_extensions
from certforge.common.request_rules import (
    Enrollment,
    RenewalAsked,
    RenewedCertificate,
    check_enrollment,
    plan_renewal,
)
from certforge.common.template import CertificateTemplate
from certforge.common.tracing import continued
from certforge.issuer import batch_store, lint
from certforge.issuer.batch_store import Batch, Writes
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.keypool import KeyPool

if TYPE_CHECKING:
    from certforge.common.db.pool import Connection

log = logging.getLogger(__name__)

SOURCE = "/certforge/issuer"
_HASHES = {h.value.lower(): h for h in SignatureHash}


@dataclass
class _Planned:
    request: CertificateRequest
    params: RequestParams
    template: CertificateTemplate
    public_key: PublicKey | None = None
    private_key: PrivateKey | None = None
    old: Certificate | None = None


def renewal_backoff(attempts: int, rand: Callable[[], float]) -> timedelta:
    """Wait before the next attempt of a failed renewal: 1, 2, 4 … minutes, at most a day,
    each spread by jitter over its upper half, so that the certificates of a mass failure (a
    policy change, a CA expiring) do not all come due again in the same scan."""
    return timedelta(seconds=backoff_delay(attempts, base=60.0, cap=86400.0, rand=rand))


@dataclass
class IssuanceService:
    database: LazyPool
    signers: SignerCache
    leaf_keys: KeyRing
    subjects: Subjects
    base_url: str
    lint_before_signing: bool = True
    lint_cache: lint.LintCache = field(default_factory=lint.LintCache)
    """pkilint's verdict per certificate shape (`lint.LintCache`): one full lint per shape."""
    after_commit: Callable[[], None] = lambda: None
    """Called once a batch's transaction has committed (the worker wakes its outbox relay)."""
    key_pool: KeyPool | None = None
    """Pre-generated keys for slow key types; claimed in the batch's transaction."""
    rand: Callable[[], float] = random.random
    """The draw of the renewal backoff's jitter (tests pin it)."""

    async def issue(
        self,
        request_ids: list[UUID],
        now: datetime | None = None,
        traces: Mapping[UUID, Mapping[str, str]] | None = None,
    ) -> int:
        """Sign the pending requests among `request_ids`; return how many were issued.

        `traces` maps a request to the NATS headers of its command, whose `traceparent` each
        request's span continues (the trace that began with the API call)."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        traces = traces or {}
        issued: list[_Planned] = []
        failed: list[CertificateRequest] = []
        writes = Writes()
        db = await self.database.get()
        async with db.acquire() as conn, conn.transaction():
            requests = await batch_store.lock_requests(conn, request_ids)
            pending = [r for r in requests if r.status == RequestStatus.PENDING]
            if not pending:
                return 0
            batch = await batch_store.load(conn, pending)
            planned: list[_Planned] = []
            for request in pending:
                with continued(
                    "plan certificate", traces.get(request.id), request_id=str(request.id)
                ):
                    try:
                        planned.append(self._plan(request, batch, now))
                    except CertforgeError as exc:
                        self._fail(writes, request, batch, exc, now)
                        failed.append(request)
            await self._obtain_keys(conn, [p for p in planned if p.public_key is None])
            for plan in planned:
                request_id = str(plan.request.id)
                with continued(
                    "sign certificate", traces.get(plan.request.id), request_id=request_id
                ):
                    try:
                        cert = self._sign(plan, batch)
                    except CertforgeError as exc:
                        self._fail(writes, plan.request, batch, exc, now)
                        failed.append(plan.request)
                        continue
                    except Exception:
                        log.exception("signing failed", extra={"request_id": request_id})
                        error = Unprocessable(detail="internal error while signing; submit again")
                        self._fail(writes, plan.request, batch, error, now)
                        failed.append(plan.request)
                        continue
                    self._store(writes, plan, cert, batch, now)
                    log.info(
                        "certificate issued",
                        extra={
                            "request_id": request_id,
                            "certificate_id": str(plan.request.certificate_id),
                            "application": batch.applications[plan.request.application_id].slug,
                        },
                    )
                    issued.append(plan)
            await writes.flush(conn)
        self.after_commit()
        _observe(issued, failed)
        return len(issued)

    async def _obtain_keys(self, conn: Connection, plans: list[_Planned]) -> None:
        """New managed keys: from the pool where it holds the type, generated otherwise."""
        if self.key_pool is not None:
            by_algorithm: dict[KeyAlgorithm, list[_Planned]] = {}
            for plan in plans:
                by_algorithm.setdefault(plan.template.key_algorithm, []).append(plan)
            for algorithm, group in by_algorithm.items():
                keys = await self.key_pool.claim(conn, algorithm, len(group))
                for plan, key in zip(group, keys, strict=False):
                    plan.private_key, plan.public_key = key, key.public_key()
        await _generate_keys([p for p in plans if p.public_key is None])

    def _plan(self, request: CertificateRequest, batch: Batch, now: datetime) -> _Planned:
        """Steps 1-4 (new keys are generated afterwards, for the whole batch at once), with the
        rules of `certforge.common.request_rules` that the api applied early."""
        profile = batch.profiles[request.profile_id]
        app = batch.applications[request.application_id]
        ca = batch.cas[profile.ca_id]
        issuing = batch.issuing_ca(ca.id)
        params = _stored_params(request)
        policy = batch.policies[profile.policy_id]
        document = batch.policy_document(policy.id)
        attachment = batch.attachments.get((app.id, profile.id))
        enrollment = Enrollment.of(app, profile, attachment, ca)
        if request.kind == RequestKind.RENEW:
            return self._plan_renewal(request, params, batch, enrollment, policy, issuing, now)
        check_enrollment(enrollment, RequestKind.ISSUE, params.via)
        template = resolve_template(params, batch.profile_defaults(profile.id), issuing, now)
        plan = _Planned(request=request, params=params, template=template)
        if params.method is RequestMethod.CSR:
            plan.public_key = _csr_key(
                params, template.key_algorithm, batch.profile_extensions(profile.id), profile.slug
            )
        enforce_policy_and_names(
            document, plan.template, policy.name, ca.name, issuing.name_constraints
        )
        return plan

    def _plan_renewal(
        self,
        request: CertificateRequest,
        params: RequestParams,
        batch: Batch,
        enrollment: Enrollment,
        policy: Policy,
        ca: IssuingCA,
        now: datetime,
    ) -> _Planned:
        assert request.renewal_of_id is not None
        old = batch.renewed[request.renewal_of_id]
        asked = RenewalAsked(
            key=params.key or RenewalKey.NEW, csr=params.csr, same_key=params.same_key
        )
        renewal = plan_renewal(
            RenewedCertificate.of(old),
            asked,
            request.id,
            enrollment,
            batch.policy_document(policy.id),
            policy.name,
            ca,
            now,
            batch.profile_extensions(request.profile_id),
        )
        plan = _Planned(
            request=request,
            params=params,
            template=renewal.template,
            public_key=renewal.csr_key,
            old=old,
        )
        if asked.key is RenewalKey.REUSE:
            assert old.encrypted_private_key is not None  # plan_renewal refused otherwise
            der = self.leaf_keys.decrypt(old.encrypted_private_key, old.id.bytes)
            plan.private_key = load_stored_private_key(der)
            plan.public_key = plan.private_key.public_key()
        return plan

    def _sign(self, plan: _Planned, batch: Batch) -> x509.Certificate:
        """Steps 5-6."""
        profile = batch.profiles[plan.request.profile_id]
        ca = batch.cas[profile.ca_id]
        signer = self.signers.signer(ca)
        urls = ca_urls(self.base_url, ca.id)
        public_key = plan.public_key
        assert public_key is not None
        serial = new_serial()
        extensions = batch.profile_extensions(profile.id)

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
                extensions=extensions,
            )

        if self.lint_before_signing:
            self.lint_cache.check(build(lint.lint_key(KeyAlgorithm(ca.key_algorithm))))
        return build(signer.key)

    def _store(
        self,
        writes: Writes,
        plan: _Planned,
        cert: x509.Certificate,
        batch: Batch,
        now: datetime,
    ) -> None:
        """Step 7."""
        request, template, old = plan.request, plan.template, plan.old
        profile = batch.profiles[request.profile_id]
        app = batch.applications[request.application_id]
        attachment = batch.attachments[(app.id, profile.id)]
        certificate_id = uuid4()
        encrypted = (
            self.leaf_keys.encrypt(private_key_to_der(plan.private_key), certificate_id.bytes)
            if plan.private_key is not None
            else None
        )
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        auto_renew = old.auto_renew if old else attachment.api_auto_renew
        renew_before_days = old.renew_before_days if old else attachment.api_renew_before_days
        if old is not None and not_after - not_before < old.not_after - old.not_before:
            # capped by the policy or the CA's expiry: the renewal window shrinks to fit
            renew_before_days = fitted_renew_before_days(renew_before_days, not_after - not_before)
        metadata = old.tags if old else plan.params.metadata
        hash_name = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None
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
            method=RequestMethod.CSR.value if encrypted is None else RequestMethod.MANAGED.value,
            not_before=not_before,
            not_after=not_after,
            status=CertificateStatus.ACTIVE.value,
            certificate_pem=certificate_to_pem(cert),
            fingerprint_sha256=fingerprint_sha256(cert),
            encrypted_private_key=encrypted,
            key_kek_id=self.leaf_keys.active_kid if encrypted else None,
            tags=metadata,
            auto_renew=auto_renew and encrypted is not None,
            renew_before_days=renew_before_days,
            renew_at=renew_at(not_before, not_after, renew_before_days),
            renewed_from_id=old.id if old else None,
            lineage_id=(old.lineage_id or old.id) if old else certificate_id,
            created_at=now,
            updated_at=now,
        )
        writes.certificates.append(certificate)
        request.status = RequestStatus.ISSUED.value
        request.certificate_id = certificate_id
        request.completed_at = now
        writes.request(request)
        if old is not None:
            old.status = CertificateStatus.RENEWED.value
            old.renewed_by_id = certificate_id
            old.renewing_request_id = None
            old.renewal_error = None
            old.updated_at = now
            writes.old_certificate(old)
        facts = {
            "certificate_id": certificate_id,
            "application_id": app.id,
            "application": app.slug,
            "profile": profile.slug,
            "ca_id": profile.ca_id,
            "serial_number": certificate.serial_number,
            "common_name": certificate.common_name,
            "sans": template.sans,
            "not_before": not_before,
            "not_after": not_after,
            "fingerprint_sha256": certificate.fingerprint_sha256,
            "certificate_pem": certificate.certificate_pem,
            "metadata": metadata,
            "request_id": request.id,
        }
        event: CertificateIssued | CertificateRenewed = (
            CertificateRenewed(**facts, renewed_from_id=old.id)
            if old is not None
            else CertificateIssued(**facts)
        )
        subject = self.subjects.event(app.slug, event.event_name)
        writes.message(subject, CloudEvent.wrap(event, source=SOURCE, subject=str(certificate_id)))

    def _fail(
        self,
        writes: Writes,
        request: CertificateRequest,
        batch: Batch,
        error: CertforgeError,
        now: datetime,
    ) -> None:
        app = batch.applications[request.application_id]
        request.status = RequestStatus.FAILED.value
        request.error = error.detail
        request.error_details = [e.as_dict() for e in error.errors]
        request.completed_at = now
        writes.request(request)
        event = RequestFailed(
            request_id=request.id,
            application_id=app.id,
            application=app.slug,
            reason=error.detail,
            errors=request.error_details,
        )
        subject = self.subjects.event(app.slug, RequestFailed.event_name)
        writes.message(subject, CloudEvent.wrap(event, source=SOURCE, subject=str(request.id)))
        old = batch.renewed.get(request.renewal_of_id) if request.renewal_of_id else None
        if old is not None and old.renewing_request_id == request.id:
            if old.status == CertificateStatus.REVOKED:
                # revoked while its renewal was queued: renewals stop, nothing to retry or alert
                old.renewing_request_id = None
                old.updated_at = now
                writes.old_certificate(old)
            else:
                self._renewal_failed(writes, old, request, app, error, now)
        log.info(
            "request failed: %s",
            error.detail,
            extra={"request_id": str(request.id), "application": app.slug},
        )

    def _renewal_failed(
        self,
        writes: Writes,
        old: Certificate,
        request: CertificateRequest,
        app: Application,
        error: CertforgeError,
        now: datetime,
    ) -> None:
        """Record the failure on the certificate and push its next attempt back: never hot."""
        old.renewing_request_id = None
        old.renewal_attempts += 1
        old.renewal_error = error.detail
        old.renew_at = now + renewal_backoff(old.renewal_attempts, self.rand)
        old.updated_at = now
        writes.old_certificate(old)
        event = CertificateRenewalFailed(
            certificate_id=old.id,
            application_id=app.id,
            application=app.slug,
            request_id=request.id,
            reason=error.detail,
            attempts=old.renewal_attempts,
            next_attempt_at=old.renew_at,
        )
        subject = self.subjects.event(app.slug, CertificateRenewalFailed.event_name)
        writes.message(subject, CloudEvent.wrap(event, source=SOURCE, subject=str(old.id)))


def _observe(issued: list[_Planned], failed: list[CertificateRequest]) -> None:
    """Metrics of a committed batch: latency from request accepted to certificate stored."""
    done = datetime.now(UTC)
    for plan in issued:
        kind = plan.request.kind
        ISSUANCE_LATENCY.labels(kind).observe((done - plan.request.created_at).total_seconds())
        CERTIFICATES_ISSUED.labels(
            plan.template.key_algorithm.value, plan.request.method, kind
        ).inc()
        if kind == RequestKind.RENEW:
            RENEWALS.labels("renewed").inc()
    for request in failed:
        REQUESTS_FAILED.labels(request.kind).inc()
        if request.kind == RequestKind.RENEW:
            RENEWALS.labels("failed").inc()


def _stored_params(request: CertificateRequest) -> RequestParams:
    """The request's parameters, re-validated: a request stored before a rule was tightened (an
    invalid A-label, once accepted) fails with the reason instead of holding up its batch."""
    try:
        return RequestParams.model_validate(request.params)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise Unprocessable(
            detail="; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors
        ) from None


def _csr_key(
    params: RequestParams, expected: KeyAlgorithm, extensions: ProfileExtensions, profile: str
) -> PublicKey:
    assert params.csr is not None
    csr = parse_csr(params.csr)
    check_csr_extensions(csr.critical_extension_oids, extensions, profile)
    if csr.key_algorithm is not expected:
        raise Unprocessable.on_field("csr", "the CSR's key changed algorithm")
    return csr.public_key


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
