"""Builds the FastAPI application from settings; all connections open in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from nats.aio.client import Client as NatsClient
from pydantic import SecretStr

from certforge.api import openapi, problems
from certforge.api.access_cache import AccessCache
from certforge.api.config_changes import watch_changes
from certforge.api.context import ApiContext
from certforge.api.deps import ContextDep
from certforge.api.domain.auth_methods import JwksCache
from certforge.api.domain.identities import ensure_bootstrap_admin
from certforge.api.domain.ocsp import OcspDeps
from certforge.api.fast_path import RevocationFastPath
from certforge.api.issuer_client import IssuerClient
from certforge.api.middleware import RequestContextMiddleware
from certforge.api.observability import ObservabilityMiddleware
from certforge.api.ocsp import OcspCache
from certforge.api.outcomes import Outcomes
from certforge.api.replicas import Replicas
from certforge.api.revocation_memory import AnswerMemory, key_of_message
from certforge.api.routes import (
    acme,
    acme_admin,
    alerts,
    applications,
    audit,
    ca_rollover,
    cas,
    certificates,
    crls,
    downloads,
    identities,
    inventory,
    lifecycle,
    ocsp,
    policies,
    profiles,
    successors,
    syncs,
)
from certforge.api.settings import ApiSettings
from certforge.api.summaries import SUMMARIES
from certforge.api.ui import install as install_console
from certforge.common.contracts.subjects import Subjects
from certforge.common.crypto.envelope import KeyRing
from certforge.common.db.engine import SessionFactory, create_engine, session_factory
from certforge.common.db.pool import LazyPool
from certforge.common.health import LEGACY, LIVE, READY, is_ready, readiness
from certforge.common.messaging import connect, ensure_streams, when_reachable
from certforge.common.metrics import exposition
from certforge.common.outbox import OutboxRelay
from certforge.common.tracing import setup_tracing

log = logging.getLogger(__name__)

DESCRIPTION = """Certforge issues, renews, revokes and distributes X.509 certificates.

Authenticate with `Authorization: Bearer <token>` ("Authorize" above takes the token that
`make run` printed). Errors are RFC 9457 problem documents (`application/problem+json`) naming
the fields at fault in `errors`.
"""
VERSION = "1.0.0"


def create_app(settings: ApiSettings) -> FastAPI:
    setup_tracing("api", settings.otlp_endpoint)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url.get_secret_value(), pool_size=settings.database_pool_size
        )
        sessions = session_factory(engine)
        database = LazyPool(
            settings.database_url.get_secret_value(), max_size=settings.database_pool_size
        )
        db = await database.get_when_reachable(log)
        subjects = Subjects(settings.nats.namespace)
        nats = await when_reachable(lambda: connect(settings.nats_url, name="certforge-api"), log)
        js = nats.jetstream()
        await when_reachable(lambda: ensure_streams(js, subjects, settings.nats), log)
        relay = OutboxRelay(database, js, settings.outbox)
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        assert settings.leaf_keks is not None
        outcomes = Outcomes()
        await outcomes.start(nats, subjects)
        leaf_keys = KeyRing.parse(settings.leaf_keks.get_secret_value())
        ocsp_answers = ocsp_deps(settings, sessions, nats, subjects, leaf_keys)
        await ocsp_answers.replicas.start()
        access = AccessCache(settings.access_cache_seconds)
        await access.watch(nats, subjects)

        def changed() -> None:  # a configuration change committed here: forget, announce
            access.forget()
            relay.wake()

        watch_changes(sessions, subjects, on_commit=changed)
        app.state.certforge = ApiContext(
            settings=settings,
            engine=engine,
            sessions=sessions,
            db=db,
            nats=nats,
            relay=relay,
            subjects=subjects,
            leaf_keys=leaf_keys,
            issuer=IssuerClient(nats, subjects, settings.issuer_timeout_seconds),
            outcomes=outcomes,
            access=access,
            login_keys=JwksCache(
                max_age=settings.login_jwks_cache_seconds,
                min_refresh=settings.login_jwks_min_refresh_seconds,
            ),
            ocsp=ocsp_answers,
        )
        if settings.bootstrap_token is not None:
            async with sessions() as session:
                if await ensure_bootstrap_admin(
                    session, settings.bootstrap_token.get_secret_value()
                ):
                    log.info("created the bootstrap product admin")
        try:
            yield
        finally:
            await ocsp_answers.replicas.stop()
            await outcomes.stop()
            await access.stop()
            relay.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay_task, timeout=10)
            await nats.drain()
            await database.close()
            await engine.dispose()

    # Swagger UI and ReDoc from the package's own files: /docs works without internet.
    app = FastAPIOffline(
        title="Certforge API",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # ObservabilityMiddleware makes the request's span and metrics (route templates,
        # Prometheus); FastAPI's own OpenTelemetry span would be a second one per request.
        telemetry={"tracing": False},
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware)
    # Outermost: OCSP and CRL reads answered before routing and the middleware above.
    app.add_middleware(RevocationFastPath, max_body_bytes=settings.max_body_bytes)
    problems.install(app)
    openapi.install(app)

    for module in (
        identities,
        cas,
        ca_rollover,
        crls,
        policies,
        profiles,
        applications,
        acme_admin,
        certificates,
        lifecycle,
        inventory,
        downloads,
        successors,
        syncs,
        alerts,
        audit,
    ):
        app.include_router(_summarized(module.router))
    app.include_router(_summarized(ocsp.router))
    app.include_router(acme.router)
    app.include_router(_summarized(_health_router()))
    install_console(app)
    return app


def ocsp_deps(
    settings: ApiSettings,
    sessions: SessionFactory,
    nats: NatsClient,
    subjects: Subjects,
    leaf_keys: KeyRing,
) -> OcspDeps:
    """OCSP answering for one replica: its memory, and its membership among the replicas."""
    memory = AnswerMemory(max_entries=settings.ocsp_memory_entries)

    def forget(message: bytes) -> None:
        key = key_of_message(message)
        if key is not None:
            memory.forget(key)

    lease = settings.ocsp_replica_lease_seconds
    return OcspDeps(
        sessions=sessions,
        cache=OcspCache(),
        memory=memory,
        replicas=Replicas(nats, subjects, forget, heartbeat=lease / 3, lease=lease),
        leaf_keys=leaf_keys,
        validity=timedelta(seconds=settings.ocsp_response_validity_seconds),
    )


def _summarized(router: APIRouter) -> APIRouter:
    """Give each operation its readable summary (route names stay the audit action names)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.summary is None:
            route.summary = SUMMARIES.get(route.name)
    return router


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/", name="index")
    async def index() -> dict[str, object]:
        """What answers here and where to go next (the URL `make run` prints opens this)."""
        return {
            "name": "Certforge API",
            "version": VERSION,
            "links": {
                "docs": "/docs",
                "redoc": "/redoc",
                "openapi": "/openapi.json",
                "live": LIVE,
                "ready": READY,
                "metrics": "/metrics",
            },
        }

    @router.get(
        "/metrics",
        name="metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
    )
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @router.get(LIVE, name="health.live")
    async def live() -> dict[str, str]:
        """Liveness: the process answers (nothing else; see `certforge.common.health`)."""
        return {"status": "ok"}

    @router.get(READY, name="health.ready", responses={503: {"description": "not ready"}})
    async def ready(context: ContextDep) -> JSONResponse:
        """Readiness: PostgreSQL answers, NATS is connected and the JetStream streams exist."""
        return _readiness(await _checks(context))

    @router.get(
        LEGACY,
        name="health.ready_legacy",
        deprecated=True,
        responses={503: {"description": "not ready"}},
    )
    async def ready_legacy(context: ContextDep) -> JSONResponse:
        """Deprecated alias of `/readyz` (what `/healthz` always meant on the api)."""
        return _readiness(await _checks(context))

    return router


async def _checks(context: ApiContext) -> dict[str, str]:
    return await readiness(context.engine, context.nats, context.subjects, context.settings.nats)


def _readiness(checks: dict[str, str]) -> JSONResponse:
    ok = is_ready(checks)
    return JSONResponse({"status": "ok" if ok else "unready", **checks}, 200 if ok else 503)


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: each worker process builds its app from the environment."""
    return create_app(ApiSettings.load())


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, for `certforge-api openapi` and the checked-in docs.

    The routes do not depend on settings, so it is built without the environment: the app is
    only constructed (its lifespan, which connects, never runs), with a well-formed key-encryption
    key that encrypts nothing.
    """
    settings = ApiSettings(leaf_keks=SecretStr("docs:" + "A" * 43 + "="))
    return create_app(settings).openapi()
