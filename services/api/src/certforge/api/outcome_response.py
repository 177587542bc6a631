"""The answer to a POST that queued a request for the issuer (issue or renew): wait for the
outcome when `Prefer: wait` asks for it, then 201 with the certificate, 202 while pending, or a
422 problem when the issuer refused it. Shared by issuance and renewal routes.

Call it right after the request's state was read or written, with no `await` in between: that
is what makes registering the waiter race-free (see `respond`)."""

from __future__ import annotations

from fastapi import Request, Response

from certforge.api.audit import AuditScope
from certforge.api.context import ApiContext
from certforge.api.domain import certificates, requests
from certforge.api.problems import problem_response
from certforge.common.domain import RequestStatus
from certforge.common.errors import FieldError


def location(app: str, request_id: object) -> str:
    return f"/api/v1/applications/{app}/certificate-requests/{request_id}"


async def respond(
    request: Request,
    context: ApiContext,
    audit: AuditScope,
    submitted: requests.Submitted,
    wait: int,
) -> Response:
    if wait and submitted.request.status == RequestStatus.PENDING:
        # Registered before any await since the request was read: the outcome event is
        # delivered by this event loop, so it cannot arrive before the waiter exists. While
        # waiting no transaction is open and no connection is held.
        future = context.outcomes.expect(submitted.request.id)
        await context.outcomes.wait(submitted.request.id, future, wait)
    if wait or submitted.replayed:
        view = await certificates.outcome_view(context, audit, submitted)
    else:  # just written, pending: nothing to read back
        view = certificates.request_public(submitted, submitted.request, None)
    headers = {"Location": location(submitted.application, submitted.request.id)}
    if wait:
        headers["Preference-Applied"] = f"wait={wait}"
    if view.status is RequestStatus.FAILED or view.status is RequestStatus.REJECTED:
        return problem_response(
            request,
            422,
            "issuance-failed",
            f"the issuer refused the request: {view.error}",
            [FieldError(e["field"], e["message"]) for e in view.errors],
            headers=headers,
        )
    status = 201 if view.status is RequestStatus.ISSUED else 202
    return Response(view.model_dump_json(), status, headers=headers, media_type="application/json")
