"""The sync API with the REAL running syncer: `POST …/run`, `POST …/test`, selectors, name
templates, enabling and deleting; bad input (a precise 422 naming the field, nothing stored);
write-only credentials; tenancy and roles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlmodel import select

from admin_kit import API, ClientFor, create_profile, every, ok, problem, uid
from certforge.common.db.tables import SyncDestination
from certforge.common.destinations.webhook import WebhookCredentials, WebhookSettings
from certforge.common.settings import Environment
from certforge.syncer.plugins.base import PermanentSyncError
from certforge.syncer.plugins.webhook import WebhookDestination
from issuance_kit import WAIT, Enrollment, audit_events, enroll, issue, member
from sync_plugin_kit import closed_port
from syncs_kit import (
    PUSHED,
    WebhookReceiver,
    create_sync,
    names_in,
    states,
    sync_body,
    syncs_url,
    wait_status,
    webhook_credentials,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SECRET = "never-shown-" + "s" * 24


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = await WebhookReceiver().start()
    yield started
    await started.stop()


async def _events_drained(api_app: Any) -> None:
    """Wait until the syncer's event consumer has handled every certificate event so far: a
    sync created after that sees none of them again (only `POST …/run` pushes them)."""
    context = api_app.state.certforge
    js = context.nats.jetstream()
    durable = context.subjects.durable("syncer_events")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        info = await js.consumer_info(context.subjects.events_stream, durable)
        if not info.num_pending and not info.num_ack_pending:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the syncer's event consumer did not catch up in 15 s")


async def _sync_rows(api_app: Any, app_id: str) -> list[SyncDestination]:
    async with api_app.state.certforge.sessions() as session:
        return list(
            await session.exec(
                select(SyncDestination).where(SyncDestination.application_id == UUID(app_id))
            )
        )


async def _second_profile(admin: httpx.AsyncClient, e: Enrollment) -> dict[str, Any]:
    """Another profile of `e`'s CA and policy, attached to `e`'s application."""
    profile = await create_profile(admin, e.issuing["id"], e.policy["id"], defaults=e.defaults)
    base = f"{API}/applications/{e.app}/profiles/{profile['slug']}"
    ok(await admin.put(base), 201)
    ok(await admin.put(f"{base}/enrollment/api", json={"enabled": True}))
    return profile


# --- run, test ---------------------------------------------------------------------------------


async def test_run_pushes_the_active_certificates_that_existed_before(
    admin: httpx.AsyncClient, api_app: Any, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    a = (await issue(admin, e, common_name="a.example.com"))["certificate"]
    b = (await issue(admin, e, common_name="b.example.com"))["certificate"]
    c = (await issue(admin, e, common_name="c.example.com"))["certificate"]
    ok(await admin.post(f"{e.certificates}/{c['id']}/revoke", json={"reason": "keyCompromise"}))
    r = await admin.post(f"{e.certificates}/{b['id']}/renew", headers=WAIT, json={})
    b2 = ok(r, 201)["certificate"]
    await _events_drained(api_app)

    sync = await create_sync(admin, e.app, "directory", {"path": str(tmp_path)})
    assert await states(admin, e.app, sync["id"]) == []  # a new sync waits for events or a run

    r = await admin.post(f"{syncs_url(e.app)}/{sync['id']}/run")
    assert ok(r) == {"queued": 2}  # a and b's renewal; not c (revoked) nor b (renewed)
    await wait_status(admin, e.app, sync["id"], a["id"], "succeeded")
    await wait_status(admin, e.app, sync["id"], b2["id"], "succeeded")
    listed = await states(admin, e.app, sync["id"])
    assert {s["lineage_id"] for s in listed} == {a["id"], b["id"]}
    assert await names_in(tmp_path) == sorted(
        f"{e.app}-{lineage}" for lineage in (a["id"], b["id"])
    )
    assert (tmp_path / f"{e.app}-{b['id']}" / "cert.pem").read_text() == b2["certificate"]

    # the run is audited
    [audited] = [
        x for x in await audit_events(api_app, resource_id=sync["id"]) if "run" in x.details
    ]
    assert audited.details == {"run": 2}


async def test_test_checks_reachability_without_writing(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    e = await enroll(admin)
    good = await create_sync(admin, e.app, "directory", {"path": str(tmp_path)})
    r = await admin.post(f"{syncs_url(e.app)}/{good['id']}/test")
    assert ok(r) == {"ok": True, "detail": "directory destination reachable"}
    assert await names_in(tmp_path) == []

    missing = await create_sync(admin, e.app, "directory", {"path": str(tmp_path / "nowhere")})
    r = await admin.post(f"{syncs_url(e.app)}/{missing['id']}/test")
    assert ok(r) == {"ok": False, "detail": f"{tmp_path / 'nowhere'} is not a directory"}

    closed = await create_sync(
        admin,
        e.app,
        "webhook",
        {"url": f"http://127.0.0.1:{closed_port()}/hook"},
        credentials={"hmac_secret": SECRET},
    )
    r = await admin.post(f"{syncs_url(e.app)}/{closed['id']}/test")
    assert ok(r) == {"ok": False, "detail": "webhook unreachable: ConnectError"}

    url, hook = receiver.hook(plan=[401])
    refusing = await create_sync(
        admin, e.app, "webhook", {"url": url}, credentials=webhook_credentials(hook)
    )
    r = await admin.post(f"{syncs_url(e.app)}/{refusing['id']}/test")
    assert ok(r) == {"ok": False, "detail": "webhook answered 401"}
    r = await admin.post(f"{syncs_url(e.app)}/{refusing['id']}/test")
    assert ok(r) == {"ok": True, "detail": "webhook destination reachable"}
    assert [event["type"] for _, event in hook.received] == ["io.certforge.sync.ping.v1"] * 2
    for sync in (good, missing, closed, refusing):  # testing records no state
        assert await states(admin, e.app, sync["id"]) == []


# --- which certificates, named how -------------------------------------------------------------


async def test_selectors_by_profile_and_by_tag(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    other = await _second_profile(admin, e)
    everything = await create_sync(admin, e.app, "directory", {"path": str(tmp_path / "all")})
    by_profile = await create_sync(
        admin,
        e.app,
        "directory",
        {"path": str(tmp_path / "profile")},
        selector={"profiles": [other["id"]]},
    )
    by_tag = await create_sync(
        admin,
        e.app,
        "directory",
        {"path": str(tmp_path / "tag")},
        selector={"tags": {"env": "prod"}},
    )
    both = await create_sync(
        admin,
        e.app,
        "directory",
        {"path": str(tmp_path / "both")},
        selector={"profiles": [other["id"]], "tags": {"env": "prod"}},
    )
    issued = {}
    for name, profile, env in (
        ("p1-prod", e.profile, "prod"),
        ("p2-dev", other["slug"], "dev"),
        ("p2-prod", other["slug"], "prod"),
    ):
        body = await issue(
            admin, e, profile=profile, common_name=f"{name}.example.com", metadata={"env": env}
        )
        issued[name] = body["certificate"]["id"]
    expected = {
        everything["id"]: {"p1-prod", "p2-dev", "p2-prod"},
        by_profile["id"]: {"p2-dev", "p2-prod"},
        by_tag["id"]: {"p1-prod", "p2-prod"},
        both["id"]: {"p2-prod"},
    }
    for sync_id, names in expected.items():
        for name in names:
            await wait_status(admin, e.app, sync_id, issued[name], "succeeded")
    # everything fanned out for a certificate is queued at once: the others are decided
    for sync_id, names in expected.items():
        pushed = {s["certificate_id"] for s in await states(admin, e.app, sync_id)}
        assert pushed == {issued[n] for n in names}, sync_id
    r = await admin.post(f"{syncs_url(e.app)}/{by_tag['id']}/run")
    assert ok(r) == {"queued": 2}


async def test_name_template_placeholders(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    sync = await create_sync(
        admin,
        e.app,
        "directory",
        {"path": str(tmp_path)},
        options={"name_template": "{application}.{profile}.{common_name}.{certificate_id}"},
    )
    plain = (await issue(admin, e, common_name="names.example.com"))["certificate"]
    # no common name: the placeholder still yields a usable name
    nameless = (await issue(admin, e, sans=[{"type": "dns", "value": "san.example.com"}]))[
        "certificate"
    ]
    subject = x509.load_pem_x509_certificate(nameless["certificate"].encode()).subject
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    nameless_shown = str(names[0].value) if names else "unnamed"
    for certificate, shown in ((plain, "names.example.com"), (nameless, nameless_shown)):
        state = await wait_status(admin, e.app, sync["id"], certificate["id"], "succeeded")
        folder = Path(state["external_id"])
        assert folder == tmp_path / f"{e.app}.{e.profile}.{shown}.{certificate['id']}"
        assert (folder / "cert.pem").read_text() == certificate["certificate"]


# --- enabling, disabling, deleting ------------------------------------------------------------


async def test_a_disabled_sync_pushes_nothing(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    disabled = await create_sync(
        admin, e.app, "directory", {"path": str(tmp_path / "off")}, enabled=False
    )
    assert disabled["enabled"] is False
    barrier = await create_sync(admin, e.app, "directory", {"path": str(tmp_path / "on")})
    first = (await issue(admin, e, common_name="off.example.com"))["certificate"]
    # The certificate's tasks for every sync are queued together: once the barrier has it,
    # the disabled sync would have had its task too.
    await wait_status(admin, e.app, barrier["id"], first["id"], "succeeded")
    assert await states(admin, e.app, disabled["id"]) == []
    assert not (tmp_path / "off").exists()
    r = await admin.post(f"{syncs_url(e.app)}/{disabled['id']}/run")
    problem(r, 422, "sync_id", detail_contains="disabled")

    # enabled again: new certificates and a run reach it
    r = await admin.patch(f"{syncs_url(e.app)}/{disabled['id']}", json={"enabled": True})
    assert ok(r)["enabled"] is True
    assert ok(await admin.post(f"{syncs_url(e.app)}/{disabled['id']}/run")) == {"queued": 1}
    await wait_status(admin, e.app, disabled["id"], first["id"], "succeeded")

    # disabled again: the next certificate is not pushed
    r = await admin.patch(f"{syncs_url(e.app)}/{disabled['id']}", json={"enabled": False})
    assert ok(r)["enabled"] is False
    second = (await issue(admin, e, common_name="off2.example.com"))["certificate"]
    await wait_status(admin, e.app, barrier["id"], second["id"], "succeeded")
    assert [s["certificate_id"] for s in await states(admin, e.app, disabled["id"])] == [
        first["id"]
    ]


async def test_deleting_a_sync_stops_its_pushes(
    admin: httpx.AsyncClient, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    doomed = await create_sync(admin, e.app, "directory", {"path": str(tmp_path / "doomed")})
    barrier = await create_sync(admin, e.app, "directory", {"path": str(tmp_path / "stays")})
    first = (await issue(admin, e, common_name="before.example.com"))["certificate"]
    state = await wait_status(admin, e.app, doomed["id"], first["id"], "succeeded")

    r = await admin.delete(f"{syncs_url(e.app)}/{doomed['id']}")
    assert r.status_code == 204, r.text
    for path in ("", "/certificates"):
        problem(await admin.get(f"{syncs_url(e.app)}/{doomed['id']}{path}"), 404, "sync_id")
    assert [s["id"] for s in await every(admin, syncs_url(e.app))] == [barrier["id"]]

    second = (await issue(admin, e, common_name="after.example.com"))["certificate"]
    await wait_status(admin, e.app, barrier["id"], second["id"], "succeeded")
    assert await names_in(tmp_path / "doomed") == [Path(state["external_id"]).name]
    # what it pushed stays where it was
    assert (Path(state["external_id"]) / "cert.pem").read_text() == first["certificate"]


async def test_patch_revalidates_and_replaces_credentials(
    admin: httpx.AsyncClient, api_app: Any, syncer: Any, receiver: WebhookReceiver
) -> None:
    e = await enroll(admin)
    url, hook = receiver.hook()
    sync = await create_sync(
        admin, e.app, "webhook", {"url": url}, credentials=webhook_credentials(hook)
    )
    base = f"{syncs_url(e.app)}/{sync['id']}"
    problem(await admin.patch(base, json={"settings": {"url": "not a url"}}), 422, "settings.url")
    problem(
        await admin.patch(base, json={"credentials": {"hmac_secret": "short"}}),
        422,
        "credentials.hmac_secret",
    )
    problem(
        await admin.patch(base, json={"options": {"name_template": "{common_name}"}}),
        422,
        "options.name_template",
    )
    assert ok(await admin.get(base)) == sync  # unchanged

    # new credentials replace the old: the receiver now only accepts the new secret
    hook.secret = b"the-new-shared-secret-0123"
    r = await admin.patch(base, json={"credentials": {"hmac_secret": hook.secret.decode()}})
    patched = ok(r)
    assert patched["has_credentials"] is True
    assert "credentials" not in patched
    issued = (await issue(admin, e, common_name="rotated.example.com"))["certificate"]
    await wait_status(admin, e.app, sync["id"], issued["id"], "succeeded")
    assert hook.bad_signatures == 0
    assert len(hook.accepted_of(PUSHED, issued["id"])) == 1


# --- bad input ---------------------------------------------------------------------------------

AWS = {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:1"}
AWS_KEYS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": SECRET}
HOOK = {"url": "https://hooks.example.com/certforge"}

BAD_INPUT = [
    pytest.param({"kind": "ftp", "settings": {}}, "kind", id="unknown-kind"),
    pytest.param(
        {"kind": "aws-acm", "settings": {**AWS, "region": "Europe"}, "credentials": AWS_KEYS},
        "settings.region",
        id="aws-region",
    ),
    pytest.param(
        {"kind": "aws-acm", "settings": AWS, "credentials": None},
        "credentials",
        id="aws-no-credentials",
    ),
    pytest.param(
        {
            "kind": "aws-secrets-manager",
            "settings": AWS,
            "credentials": {"access_key_id": "AKIAIOSFODNN7EXAMPLE"},
        },
        "credentials",
        id="aws-half-a-key-pair",
    ),
    pytest.param(
        {"kind": "directory", "settings": {"path": "relative/dir"}},
        "settings.path",
        id="directory-relative-path",
    ),
    pytest.param(
        {"kind": "directory", "settings": {"path": "/tmp", "mode": "0644"}},
        "settings.mode",
        id="unknown-setting",
    ),
    pytest.param(
        {"kind": "webhook", "settings": HOOK},
        "credentials.hmac_secret",
        id="webhook-without-hmac-secret",
    ),
    pytest.param(
        {"kind": "webhook", "settings": {"url": "ftp://x"}, "credentials": {"hmac_secret": SECRET}},
        "settings.url",
        id="webhook-url",
    ),
    pytest.param(
        {"kind": "vault-kv", "settings": {"url": "https://vault.example.com"}, "credentials": {}},
        "credentials",
        id="vault-without-credentials",
    ),
    pytest.param(
        {
            "kind": "kubernetes-tls",
            "settings": {"namespace": "certs", "api_server": "https://k8s.example.com"},
        },
        "credentials",
        id="kubernetes-api-server-without-credentials",
    ),
    pytest.param(
        {
            "kind": "webhook",
            "settings": HOOK,
            "credentials": {"hmac_secret": SECRET},
            "options": {"name_template": "{application}-{common_name}"},
        },
        "options.name_template",
        id="name-template-without-certificate-id",
    ),
    pytest.param(
        {
            "kind": "webhook",
            "settings": HOOK,
            "credentials": {"hmac_secret": SECRET},
            "options": {"name_template": "{certificate_id}-{serial}"},
        },
        "options.name_template",
        id="name-template-unknown-placeholder",
    ),
    pytest.param(
        {
            "kind": "webhook",
            "settings": HOOK,
            "credentials": {"hmac_secret": SECRET},
            "selector": {"profiles": ["web"]},
        },
        "selector.profiles.0",
        id="selector-profile-not-an-id",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUT)
async def test_bad_input_is_a_precise_422_and_stores_nothing(
    admin: httpx.AsyncClient, api_app: Any, body: dict[str, Any], field: str
) -> None:
    app = ok(await admin.post(f"{API}/applications", json={"slug": uid("app"), "name": "x"}), 201)
    r = await admin.post(syncs_url(app["slug"]), json={"name": uid("bad"), **body})
    error = problem(r, 422, field)
    assert SECRET not in r.text
    if field == "kind":
        assert "aws-acm" in error["detail"]  # names the kinds there are
    assert await every(admin, syncs_url(app["slug"])) == []
    assert await _sync_rows(api_app, app["id"]) == []


async def test_plain_http_is_refused_outside_development_mode(
    admin: httpx.AsyncClient, api_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plugin itself
    credentials = WebhookCredentials.model_validate({"hmac_secret": SECRET})
    plain = WebhookSettings.model_validate({"url": "http://hooks.example.com/x"})
    with pytest.raises(PermanentSyncError, match=r"^url: https is required"):
        WebhookDestination(plain, credentials, development=False)
    for settings, development in ((plain, True), (WebhookSettings.model_validate(HOOK), False)):
        await WebhookDestination(settings, credentials, development=development).close()

    # The API builds it with the deployment's mode (`context.settings.is_development`): the
    # test API runs in development mode, so switch it to production for these requests.
    context = api_app.state.certforge
    assert context.settings.is_development
    monkeypatch.setattr(context.settings, "environment", Environment.PRODUCTION)
    assert not context.settings.is_development
    app = ok(await admin.post(f"{API}/applications", json={"slug": uid("app"), "name": "x"}), 201)
    url = syncs_url(app["slug"])
    for kind, plain_settings, creds, field in (
        ("webhook", {"url": "http://hooks.example.com/x"}, {"hmac_secret": SECRET}, "url"),
        ("vault-kv", {"url": "http://vault.example.com:8200"}, {"token": SECRET}, "url"),
        (
            "kubernetes-tls",
            {"namespace": "certs", "api_server": "http://k8s.example.com"},
            {"token": SECRET},
            "api_server",
        ),
    ):
        body = sync_body(kind, plain_settings, credentials=creds)
        problem(await admin.post(url, json=body), 422, f"settings.{field}", detail_contains="https")
    assert await _sync_rows(api_app, app["id"]) == []
    # https is fine in production
    body = sync_body("webhook", HOOK, credentials={"hmac_secret": SECRET})
    ok(await admin.post(url, json=body), 201)
    monkeypatch.undo()
    assert context.settings.is_development


# --- credentials are write-only ---------------------------------------------------------------


async def test_credentials_are_never_returned_nor_stored_in_clear(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    app = ok(await admin.post(f"{API}/applications", json={"slug": uid("app"), "name": "x"}), 201)
    url = syncs_url(app["slug"])
    r = await admin.post(url, json=sync_body("aws-acm", AWS, credentials=AWS_KEYS))
    created = ok(r, 201)
    answers = [r.text]
    hook = ok(
        await admin.post(url, json=sync_body("webhook", HOOK, credentials={"hmac_secret": SECRET})),
        201,
    )
    plain = ok(await admin.post(url, json=sync_body("directory", {"path": "/tmp"})), 201)
    assert (created["has_credentials"], hook["has_credentials"]) == (True, True)
    assert plain["has_credentials"] is False
    for sync in (created, hook, plain):
        assert "credentials" not in sync
        answers.append((await admin.get(f"{url}/{sync['id']}")).text)
    answers.append((await admin.get(url)).text)
    r = await admin.patch(f"{url}/{hook['id']}", json={"credentials": {"hmac_secret": SECRET}})
    answers.append(ok(r) and r.text)
    r = await admin.patch(
        f"{url}/{created['id']}", json={"settings": {**AWS, "region": "eu-west-2"}}
    )
    answers.append(ok(r) and r.text)  # credentials kept, decrypted to revalidate, not shown
    assert all(SECRET not in answer for answer in answers)
    assert ok(await admin.get(f"{url}/{created['id']}"))["has_credentials"] is True

    for row in await _sync_rows(api_app, app["id"]):
        stored = repr(row.model_dump()).encode() + (row.encrypted_credentials or b"")
        assert SECRET.encode() not in stored
    for sync in (created, hook):
        for entry in await audit_events(api_app, resource_id=sync["id"]):
            assert SECRET not in str(entry.details)


# --- tenancy and roles ------------------------------------------------------------------------


async def test_other_tenants_get_404_and_roles_are_enforced(
    admin: httpx.AsyncClient, client_for: ClientFor, syncer: Any, tmp_path: Path
) -> None:
    e = await enroll(admin)
    sync = await create_sync(admin, e.app, "directory", {"path": str(tmp_path)})
    issued = (await issue(admin, e, common_name="roles.example.com"))["certificate"]
    await wait_status(admin, e.app, sync["id"], issued["id"], "succeeded")
    own = f"{syncs_url(e.app)}/{sync['id']}"

    other = ok(await admin.post(f"{API}/applications", json={"slug": uid("app"), "name": "o"}), 201)
    stranger = await member(admin, client_for, other["slug"], "application-admin")
    body = sync_body("directory", {"path": str(tmp_path)})
    for method, url, json in (
        ("GET", syncs_url(e.app), None),
        ("POST", syncs_url(e.app), body),
        ("GET", own, None),
        ("PATCH", own, {"enabled": False}),
        ("DELETE", own, None),
        ("POST", f"{own}/run", None),
        ("POST", f"{own}/test", None),
        ("GET", f"{own}/certificates", None),
    ):
        problem(await stranger.request(method, url, json=json), 404, "app")
    # its own application's path with our sync's id: no such sync there
    theirs = f"{syncs_url(other['slug'])}/{sync['id']}"
    for method, path in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/run"),
        ("GET", "/certificates"),
    ):
        json = {"enabled": False} if method == "PATCH" else None
        problem(await stranger.request(method, theirs + path, json=json), 404, "sync_id")

    for role in ("operator", "auditor"):
        client = await member(admin, client_for, e.app, role)
        for method, url, json in (
            ("POST", syncs_url(e.app), body),
            ("PATCH", own, {"enabled": False}),
            ("DELETE", own, None),
            ("POST", f"{own}/run", None),
            ("POST", f"{own}/test", None),
        ):
            problem(await client.request(method, url, json=json), 403)
        # reading is allowed, statuses included
        assert [s["id"] for s in await every(client, syncs_url(e.app))] == [sync["id"]]
        assert ok(await client.get(own))["enabled"] is True
        [state] = await every(client, f"{own}/certificates")
        assert state["status"] == "succeeded"
        assert state["certificate_id"] == issued["id"]
    assert ok(await admin.get(own))["enabled"] is True  # nothing changed
