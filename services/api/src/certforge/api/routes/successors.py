"""The renewal watch: a long-poll that answers when a lineage has a newer certificate.

Long-poll rather than server-sent events: an agent holds a few certificates and asks one
question per certificate ("is there a newer one than mine?"), which is one request and one
answer. A long-poll goes through every proxy and HTTP client unchanged, needs no event-id
bookkeeping to resume (the question itself carries the state: the id the caller has), and a
dropped connection is simply the next poll. It costs the server one waiter per caller, no
database connection (see `domain.successors`).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from certforge.api.deps import ActorDep, ContextDep
from certforge.api.domain import certificates, successors
from certforge.api.routes import API_PREFIX
from certforge.api.schemas.certificates import CertificatePublic
from certforge.api.successor_watch import SuccessorWatch

router = APIRouter(prefix=API_PREFIX, tags=["certificates"])


async def get_watch(request: Request) -> SuccessorWatch:
    """The process's watch, kept with the api's context (`successor_watch` says why it
    subscribes only on first use)."""
    watch: SuccessorWatch = request.app.state.certforge.successors
    return watch


WatchDep = Annotated[SuccessorWatch, Depends(get_watch)]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": CertificatePublic,
        "description": "the lineage's newest certificate, which is not the one named: fetch its "
        "files (`/bundle`, `/private-key`) and watch it next",
    },
    204: {"description": "the named certificate is still the newest of its lineage"},
}


@router.get(
    "/applications/{app}/certificates/{certificate_id}/successor",
    name="certificate.successor",
    response_model=None,
    responses=_RESPONSES,
)
async def certificate_successor(
    app: str,
    certificate_id: UUID,
    actor: ActorDep,
    context: ContextDep,
    watch: WatchDep,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=successors.MAX_WAIT_SECONDS,
            description="seconds to wait for a renewal when there is none yet (0: answer at "
            "once); the answer comes as soon as the issuer renews the certificate",
            examples=[30],
        ),
    ] = 0,
) -> Response:
    """Is there a newer certificate than this one? Long-poll for renewal agents.

    Answers 200 with the newest certificate of the lineage (this one and its renewals) as soon
    as there is one newer than `certificate_id`: at once if it already exists, else within
    moments of the renewal (server-side auto-renewal, a manual renew, ARI), waiting up to
    `wait` seconds. 204 when the wait ends without one: ask again. Any member of the
    application may ask; another application's certificate is a 404.

    `curl -H "Authorization: Bearer $TOKEN"
    "$URL/api/v1/applications/shop/certificates/$ID/successor?wait=30"`
    """
    found = await successors.wait_for_newer(context, watch, actor, app, certificate_id, wait)
    if found is None:
        return Response(status_code=204)
    view = certificates.certificate_view(found.certificate, found.application, found.profile)
    return Response(view.model_dump_json(), 200, media_type="application/json")
