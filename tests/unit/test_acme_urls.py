"""ACME URLs are the ones the client used (`certforge.api.acme.urls`): scheme and host from
the request or a well-formed proxy header, the mount prefix kept, or a pinned base."""

from __future__ import annotations

from uuid import UUID

import pytest
from starlette.requests import Request

from certforge.api.acme.urls import AcmeUrls, request_base, request_url


def request(
    path: str = "/acme/app/prof/new-order",
    *,
    headers: dict[str, str] | None = None,
    scheme: str = "http",
    host: str = "api.internal:8080",
    root_path: str = "",
    query: str = "",
) -> Request:
    raw = [(b"host", host.encode())] + [
        (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    return Request(
        {
            "type": "http",
            "method": "POST",
            "scheme": scheme,
            "server": ("api.internal", 8080),
            "path": root_path + path,
            "root_path": root_path,
            "query_string": query.encode(),
            "headers": raw,
        }
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "http://api.internal:8080"),
        ({"X-Forwarded-Proto": "https"}, "https://api.internal:8080"),
        (
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "acme.example.com, x"},
            "https://acme.example.com",
        ),
        ({"X-Forwarded-Host": "[2001:db8::1]:8443"}, "http://[2001:db8::1]:8443"),
        ({"X-Forwarded-Proto": "gopher"}, "http://api.internal:8080"),
        ({"X-Forwarded-Host": "evil.example/path"}, "http://api.internal:8080"),
        ({"X-Forwarded-Host": "a b"}, "http://api.internal:8080"),
    ],
    ids=[
        "ok/plain",
        "ok/proto",
        "ok/first-values",
        "ok/ipv6",
        "fail/proto",
        "fail/path",
        "fail/space",
    ],
)
def test_base_follows_well_formed_proxy_headers(headers: dict[str, str], expected: str) -> None:
    assert request_base(request(headers=headers), "") == expected


def test_pinned_base_wins() -> None:
    r = request(headers={"X-Forwarded-Host": "other.example"})
    assert request_base(r, "https://acme.example.com/") == "https://acme.example.com"
    assert request_url(r, "https://acme.example.com") == (
        "https://acme.example.com/acme/app/prof/new-order"
    )


def test_request_url_keeps_the_mount_prefix_once_and_the_query() -> None:
    r = request("/acme/app/prof/acct/1/orders", root_path="/pki", query="cursor=abc")
    assert (
        request_url(r, "") == "http://api.internal:8080/pki/acme/app/prof/acct/1/orders?cursor=abc"
    )
    urls = AcmeUrls.of(r, "", "app", "prof")
    assert urls.directory == "http://api.internal:8080/pki/acme/app/prof/directory"


def test_account_ids_only_from_this_directory() -> None:
    urls = AcmeUrls("https://acme.example.com/acme/app/prof")
    account = UUID(int=5)
    assert urls.account_id(urls.account(account)) == account
    assert urls.account_id(f"https://acme.example.com/acme/app/other/acct/{account}") is None
    assert urls.account_id(f"{urls.root}/acct/not-a-uuid") is None
    assert urls.certificate(account, 1).endswith(f"/cert/{account}/1")
    assert urls.certificate(account).endswith(f"/cert/{account}")
