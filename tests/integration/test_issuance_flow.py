"""Issue 3, the request's life: `Prefer: wait` (201) or 202 + `Location` and polling, listing
with filters and cursor pagination, `Idempotency-Key`, and the issuer's authoritative refusal
and idempotency when a command reaches it for a request the api would no longer accept.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
import pytest_asyncio
from cryptography import x509

from admin_kit import API, create_profile, ok, problem
from certforge.common.contracts.events import RequestFailed
from issuance_kit import (
    WAIT,
    Enrollment,
    certificate_count,
    check_issued,
    enroll,
    inject_request,
    issue,
    pem_blocks,
    poll_until_done,
    request_count,
)
from pki_tools import openssl_verify

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin)


def _managed(e: Enrollment, host: str = "api.example.com", **more: Any) -> dict[str, Any]:
    return e.body(
        method="managed",
        common_name=host,
        sans=[{"type": "dns", "value": host}, {"type": "ip", "value": "10.1.2.3"}],
        key_algorithm="EC_P256",
        ttl="30d",
        metadata={"team": "payments"},
        **more,
    )


# --- Prefer: wait ---------------------------------------------------------------------------


async def test_prefer_wait_answers_201_with_the_certificate(
    admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    r = await admin.post(shop.requests, headers=WAIT, json=_managed(shop))
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"{shop.requests}/{body['id']}"
    assert r.headers["preference-applied"] == "wait=10"
    assert body["status"] == "issued"
    assert body["method"] == "managed"
    assert body["application"] == shop.app
    assert body["profile"] == shop.profile
    assert body["certificate_id"] == body["certificate"]["id"]
    assert body["completed_at"] is not None
    assert body["certificate"]["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    check_issued(body["certificate"], shop)


async def test_without_prefer_202_then_poll_location(
    admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    r = await admin.post(shop.requests, json=_managed(shop, "poll.example.com"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending"
    assert body["certificate"] is None
    assert "preference-applied" not in r.headers
    location = r.headers["location"]
    assert location == f"{shop.requests}/{body['id']}"
    done = await poll_until_done(admin, location)
    assert done["status"] == "issued", done
    assert done["certificate"]["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    check_issued(done["certificate"], shop)


@pytest.mark.parametrize(
    ("prefer", "status", "applied"),
    [
        pytest.param("wait=0", 202, None, id="ok/wait-0-is-no-wait"),
        pytest.param("wait=abc", 202, None, id="ok/garbage-ignored"),
        pytest.param("handling=lenient", 202, None, id="ok/other-preference-ignored"),
        pytest.param("wait=-5", 202, None, id="ok/negative-ignored"),
        pytest.param("respond-async, wait=5", 201, "wait=5", id="ok/among-others"),
        pytest.param("WAIT = 7", 201, "wait=7", id="ok/case-and-spaces"),
        pytest.param("wait=100000", 201, "wait=60", id="ok/capped-at-60"),
    ],
)
async def test_prefer_header_variants(
    admin: httpx.AsyncClient, shop: Enrollment, prefer: str, status: int, applied: str | None
) -> None:
    r = await admin.post(shop.requests, headers={"Prefer": prefer}, json=_managed(shop))
    assert r.status_code == status, r.text
    assert r.headers.get("preference-applied") == applied
    if status == 202:
        assert (await poll_until_done(admin, r.headers["location"]))["status"] == "issued"


# --- listing --------------------------------------------------------------------------------


async def test_list_filters_and_pagination(api_app: Any, admin: httpx.AsyncClient) -> None:
    e = await enroll(admin)
    other = await create_profile(admin, e.issuing["id"], e.policy["id"])
    ok(await admin.put(f"{API}/applications/{e.app}/profiles/{other['slug']}"), 201)
    ok(
        await admin.put(
            f"{API}/applications/{e.app}/profiles/{other['slug']}/enrollment/api",
            json={"enabled": True},
        )
    )
    made: list[dict[str, Any]] = []
    for index, profile in enumerate(
        [e.profile, e.profile, other["slug"], e.profile, other["slug"]]
    ):
        body = {**_managed(e, f"n{index}.example.com"), "profile": profile}
        made.append(ok(await admin.post(e.requests, headers=WAIT, json=body), 201))
    failed = await inject_request(
        api_app, e, {"method": "managed", "sans": [{"type": "dns", "value": "x.test"}]}
    )
    assert (await poll_until_done(admin, f"{e.requests}/{failed}"))["status"] == "failed"

    everything = ok(await admin.get(e.requests))
    ids = [item["id"] for item in everything["items"]]
    assert ids == [str(failed)] + [m["id"] for m in reversed(made)], "newest first"
    assert everything.get("next_cursor") is None
    assert all(
        item["certificate"] is None or item["certificate"]["private_key"] is None
        for item in everything["items"]
    ), "lists never carry private keys"

    issued = ok(await admin.get(e.requests, params={"status": "issued"}))
    assert {i["id"] for i in issued["items"]} == {m["id"] for m in made}
    only_failed = ok(await admin.get(e.requests, params={"status": "failed"}))
    assert [i["id"] for i in only_failed["items"]] == [str(failed)]
    assert only_failed["items"][0]["error"]
    by_profile = ok(await admin.get(e.requests, params={"profile": other["slug"]}))
    assert [i["id"] for i in by_profile["items"]] == [made[4]["id"], made[2]["id"]]
    by_profile_id = ok(await admin.get(e.requests, params={"profile": other["id"]}))
    assert by_profile_id["items"] == by_profile["items"]

    middle = made[2]["created_at"]
    after = ok(await admin.get(e.requests, params={"created_after": middle, "status": "issued"}))
    assert [i["id"] for i in after["items"]] == [m["id"] for m in reversed(made[2:])]
    before = ok(await admin.get(e.requests, params={"created_before": middle}))
    assert [i["id"] for i in before["items"]] == [made[1]["id"], made[0]["id"]]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = ok(await admin.get(e.requests, params=params))
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
        assert len(page["items"]) == 2
    assert pages == 3
    assert seen == ids

    # A cursor is combined with the filters it was made under.
    page = ok(await admin.get(e.requests, params={"limit": 1, "profile": other["slug"]}))
    rest = ok(
        await admin.get(
            e.requests,
            params={"limit": 5, "profile": other["slug"], "cursor": page["next_cursor"]},
        )
    )
    assert [i["id"] for i in rest["items"]] == [made[2]["id"]]


def _cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        pytest.param({"status": "done"}, 422, "status", id="fail/unknown-status"),
        pytest.param({"limit": 0}, 422, "limit", id="fail/limit-0"),
        pytest.param({"limit": 501}, 422, "limit", id="fail/limit-too-big"),
        pytest.param({"created_after": "yesterday"}, 422, "created_after", id="fail/bad-date"),
        pytest.param({"cursor": "!!!"}, 400, "cursor", id="fail/garbage-cursor"),
        pytest.param(
            {"cursor": _cursor("2024-01-01T00:00:00+00:00", "not-a-uuid")},
            400,
            "cursor",
            id="fail/cursor-bad-id",
        ),
        pytest.param({"cursor": _cursor("x")}, 400, "cursor", id="fail/cursor-short"),
        pytest.param({"profile": "no-such-profile"}, 404, "profile", id="fail/unknown-profile"),
    ],
)
async def test_list_bad_query(
    admin: httpx.AsyncClient, shop: Enrollment, params: dict[str, Any], status: int, field: str
) -> None:
    problem(await admin.get(shop.requests, params=params), status, field)


async def test_list_naive_dates_are_read_as_utc(admin: httpx.AsyncClient, shop: Enrollment) -> None:
    """A date without a timezone (in a filter or a cursor) is UTC, not an error."""
    made = await issue(admin, shop, common_name="naive.example.com")
    r = await admin.get(shop.requests, params={"created_after": "2000-01-01T00:00:00"})
    assert made["id"] in {i["id"] for i in ok(r)["items"]}
    r = await admin.get(shop.requests, params={"created_before": "2000-01-01T00:00:00"})
    assert ok(r)["items"] == []
    cursor = _cursor("2999-01-01T00:00:00", "00000000-0000-0000-0000-000000000000")
    r = await admin.get(shop.requests, params={"cursor": cursor})
    assert made["id"] in {i["id"] for i in ok(r)["items"]}


# --- Idempotency-Key ------------------------------------------------------------------------


async def test_idempotency_same_key_same_body(api_app: Any, admin: httpx.AsyncClient) -> None:
    e = await enroll(admin)
    headers = {**WAIT, "Idempotency-Key": "order-1"}
    first = ok(await admin.post(e.requests, headers=headers, json=_managed(e)), 201)
    again = await admin.post(e.requests, headers=headers, json=_managed(e))
    assert again.status_code == 201, again.text
    replay = again.json()
    assert replay["id"] == first["id"]
    assert replay["certificate"]["id"] == first["certificate"]["id"]
    assert replay["certificate"]["private_key"] == first["certificate"]["private_key"]
    # Without waiting, the replay of an issued request still says what happened.
    plain = await admin.post(e.requests, headers={"Idempotency-Key": "order-1"}, json=_managed(e))
    assert plain.status_code == 201
    assert plain.json()["id"] == first["id"]
    assert await request_count(api_app, e.app_id) == 1
    assert await certificate_count(api_app, first["id"]) == 1

    # The same key with another body is refused, naming the header; nothing new is stored.
    changed = _managed(e, "other.example.com")
    body = problem(
        await admin.post(e.requests, headers=headers, json=changed), 422, "Idempotency-Key"
    )
    assert "different" in body["detail"]
    assert await request_count(api_app, e.app_id) == 1

    # Keys belong to an application: another application may use the same key.
    f = await enroll(admin)
    elsewhere = ok(await admin.post(f.requests, headers=headers, json=_managed(f)), 201)
    assert elsewhere["id"] != first["id"]


async def test_idempotency_key_after_a_refusal_is_free(
    api_app: Any, admin: httpx.AsyncClient
) -> None:
    """A refused request stores nothing, so the corrected retry under the same key succeeds."""
    e = await enroll(admin)
    headers = {**WAIT, "Idempotency-Key": "retry-me"}
    problem(
        await admin.post(e.requests, headers=headers, json=_managed(e, "api.elsewhere.org")),
        422,
        "common_name",
    )
    assert await request_count(api_app, e.app_id) == 0
    ok(await admin.post(e.requests, headers=headers, json=_managed(e)), 201)
    assert await request_count(api_app, e.app_id) == 1


async def test_idempotency_concurrent_posts_make_one_request(
    api_app: Any, admin: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    headers = {**WAIT, "Idempotency-Key": "burst-1"}
    responses = await asyncio.gather(
        *(admin.post(e.requests, headers=headers, json=_managed(e)) for _ in range(5))
    )
    assert all(r.status_code in (201, 202) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    request_id = responses[0].json()["id"]
    assert await request_count(api_app, e.app_id) == 1
    done = await poll_until_done(admin, f"{e.requests}/{request_id}")
    assert done["status"] == "issued"
    assert await certificate_count(api_app, request_id) == 1


@pytest.mark.parametrize(
    "key", [pytest.param("", id="fail/empty"), pytest.param("k" * 256, id="fail/too-long")]
)
async def test_idempotency_key_shape(admin: httpx.AsyncClient, shop: Enrollment, key: str) -> None:
    r = await admin.post(shop.requests, headers={"Idempotency-Key": key}, json=_managed(shop))
    problem(r, 422, "Idempotency-Key")


# --- the issuer decides, authoritatively -----------------------------------------------------


async def test_issuer_refuses_what_policy_no_longer_allows(
    api_app: Any, admin: httpx.AsyncClient
) -> None:
    """A request stored pending that breaks the policy (as after a policy change) is marked
    failed by the issuer, with the violations by field, a `request.failed` event, no certificate;
    and the api's Prefer: wait reports the refusal as a problem."""
    e = await enroll(admin)
    context = api_app.state.certforge
    events: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def on_event(msg: Any) -> None:
        events.append(orjson.loads(msg.data))
        got.set()

    subject = context.subjects.event(e.app, RequestFailed.event_name)
    subscription = await context.nats.subscribe(subject, cb=on_event)
    try:
        request_id = await inject_request(
            api_app,
            e,
            {
                "method": "managed",
                "subject": {"common_name": "evil.example.org"},
                "sans": [{"type": "dns", "value": "evil.example.org"}],
            },
        )
        done = await poll_until_done(admin, f"{e.requests}/{request_id}")
        await asyncio.wait_for(got.wait(), timeout=10)
    finally:
        await subscription.unsubscribe()
    assert done["status"] == "failed", done
    assert "evil.example.org" in done["error"]
    fields = {error["field"] for error in done["errors"]}
    assert {"subject.common_name", "sans.0.value"} <= fields, done["errors"]
    assert done["certificate"] is None
    assert done["certificate_id"] is None
    assert await certificate_count(api_app, str(request_id)) == 0
    assert events[0]["type"] == RequestFailed.event_type
    assert events[0]["data"]["request_id"] == str(request_id)
    assert "private_key" not in orjson.dumps(events).decode()


async def test_issuer_refuses_when_the_ca_was_disabled(
    api_app: Any, admin: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/disable"))
    request_id = await inject_request(
        api_app, e, {"method": "managed", "subject": {"common_name": "api.example.com"}}
    )
    done = await poll_until_done(admin, f"{e.requests}/{request_id}")
    assert done["status"] == "failed", done
    assert "disabled" in done["error"], done
    assert await certificate_count(api_app, str(request_id)) == 0
    # Enabled again, a new request is issued: the refusal left nothing half-done.
    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/enable"))
    await issue(admin, e, common_name="api.example.com")


async def test_post_reports_the_issuers_refusal(api_app: Any, admin: httpx.AsyncClient) -> None:
    """The POST's answer once the issuer refused (here seen through an Idempotency-Key replay
    of a request accepted before its CA was disabled): a 422 problem carrying the issuer's
    reason, with the request's Location."""
    e = await enroll(admin)
    body = e.body(common_name="api.example.com")
    ok(await admin.post(f"{API}/cas/{e.issuing['id']}/disable"))
    request_id = await inject_request(
        api_app,
        e,
        {"method": "managed", "subject": {"common_name": "api.example.com"}},
        idempotency_body=body,
        idempotency_key="refused-1",
    )
    assert (await poll_until_done(admin, f"{e.requests}/{request_id}"))["status"] == "failed"
    for headers in ({**WAIT, "Idempotency-Key": "refused-1"}, {"Idempotency-Key": "refused-1"}):
        r = await admin.post(e.requests, headers=headers, json=body)
        refusal = problem(r, 422, "profile")
        assert refusal["type"] == "urn:certforge:problem:issuance-failed"
        assert "disabled" in refusal["detail"]
        assert r.headers["location"] == f"{e.requests}/{request_id}"
    assert await request_count(api_app, e.app_id) == 1


async def test_prefer_wait_gives_up_with_202(api_app: Any, admin: httpx.AsyncClient) -> None:
    """Not issued within the wait (here: a request whose command never reaches the issuer):
    202 and the pending request, after about the time asked for."""
    e = await enroll(admin)
    body = e.body(common_name="api.example.com")
    request_id = await inject_request(
        api_app,
        e,
        {"method": "managed", "subject": {"common_name": "api.example.com"}},
        command=False,
        idempotency_body=body,
        idempotency_key="slow-1",
    )
    started = time.monotonic()
    r = await admin.post(
        e.requests, headers={"Prefer": "wait=1", "Idempotency-Key": "slow-1"}, json=body
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 202, r.text
    assert r.json()["id"] == str(request_id)
    assert r.json()["status"] == "pending"
    assert r.headers["preference-applied"] == "wait=1"
    assert 0.9 <= elapsed < 5, elapsed


async def test_redelivered_command_makes_no_second_certificate(
    api_app: Any, admin: httpx.AsyncClient
) -> None:
    e = await enroll(admin)
    first = await issue(admin, e, common_name="once.example.com")
    await inject_request(api_app, e, {}, request_id=UUID(first["id"]))
    # A marker behind the duplicate: once it is issued, the duplicate was handled too.
    marker = await inject_request(
        api_app, e, {"method": "managed", "subject": {"common_name": "marker.example.com"}}
    )
    assert (await poll_until_done(admin, f"{e.requests}/{marker}"))["status"] == "issued"
    assert await certificate_count(api_app, first["id"]) == 1
    again = ok(await admin.get(f"{e.requests}/{first['id']}"))
    assert again["certificate"]["id"] == first["certificate"]["id"]


async def test_a_wildcard_certificate_is_issued(admin: httpx.AsyncClient, shop: Enrollment) -> None:
    """The policy allows `*.example.com`; the pre-issuance lint must not refuse the wildcard
    (pkilint's RFC 5280 validator reads `*` as a bad label; see issuer/lint.py)."""
    body = shop.body(
        method="managed",
        common_name="*.example.com",
        sans=[{"type": "dns", "value": "*.example.com"}, {"type": "dns", "value": "example.com"}],
    )
    r = await admin.post(shop.requests, headers=WAIT, json=body)
    assert r.status_code == 201, r.text
    issued = r.json()["certificate"]
    openssl_verify(shop.root["certificate"], pem_blocks(issued["chain"]), issued["certificate"])
    cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.example.com", "example.com"]
