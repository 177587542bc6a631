"""Issue 20, defects 1-4: a name is judged, and issued, in one form, whichever way it is spelt
and whichever field carries it.

The policy allows `*.example.com` and denies `admin.example.com` and `fass.example.com`, as the
issue's attacker found it. Every spelling that reaches a denied name is refused with a problem
naming the field, as a common name as well as a SAN, through JSON and through a CSR, and nothing
is stored; the issuer refuses the same when a request reaches it without the api's check.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from admin_kit import API, problem, profile_body
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm
from issuance_kit import (
    WAIT,
    Enrollment,
    check_issued,
    enroll,
    inject_request,
    issue,
    poll_until_done,
    request_count,
    sans_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

_POLICY = {
    "sans": {
        "dns": {
            "allowed": ["*.example.com", "example.com"],
            "denied": ["admin.example.com", "fass.example.com"],
        }
    }
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop(admin: httpx.AsyncClient) -> Enrollment:
    return await enroll(admin, policy=_POLICY)


def _csr(common_name: str | None, dns: list[str] | None = None) -> str:
    """A CSR built with cryptography alone, so that it may carry names our helpers refuse."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns]), critical=False
        )
    key = generate_private_key(KeyAlgorithm.EC_P256)
    csr = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _common_name(cert: x509.Certificate) -> str:
    [attribute] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


# Every spelling of a denied name the issue found issued, and a few more of the same kind.
_DENIED_SPELLINGS = {
    "fullwidth-letter": "\uff41dmin.example.com",
    "soft-hyphen": "ad\u00admin.example.com",
    "zero-width-space": "admin\u200b.example.com",
    "zero-width-joiner": "adm\u200din.example.com",
    "bidi-override": "admin\u202e.example.com",
    "ideographic-full-stop": "admin\u3002example.com",
    "upper-case-and-root-dot": "ADMIN.Example.COM.",
    "sharp-s-u-label": "fa\u00df.example.com",
    "sharp-s-a-label": "xn--fa-hia.example.com",
    "capital-sharp-s": "FA\u1e9e.example.com",
}


@pytest.mark.parametrize(
    "spelling", list(_DENIED_SPELLINGS.values()), ids=[f"fail/{k}" for k in _DENIED_SPELLINGS]
)
async def test_a_denied_name_is_refused_as_a_common_name_in_every_spelling(
    admin: httpx.AsyncClient, api_app: Any, shop: Enrollment, spelling: str
) -> None:
    before = await request_count(api_app, shop.app_id)

    r = await admin.post(shop.requests, headers=WAIT, json=shop.body(common_name=spelling))

    problem(r, 422, "common_name")
    assert await request_count(api_app, shop.app_id) == before


@pytest.mark.parametrize(
    "spelling", list(_DENIED_SPELLINGS.values()), ids=[f"fail/{k}" for k in _DENIED_SPELLINGS]
)
async def test_a_denied_name_is_refused_as_a_dns_san_in_every_spelling(
    admin: httpx.AsyncClient, shop: Enrollment, spelling: str
) -> None:
    body = shop.body(sans=[{"type": "dns", "value": spelling}])

    r = await admin.post(shop.requests, headers=WAIT, json=body)

    problem(r, 422, "sans.0.value")


@pytest.mark.parametrize(
    "spelling",
    ["\uff41dmin.example.com", "ad\u00admin.example.com", "fa\u00df.example.com"],
    ids=["fail/fullwidth-letter", "fail/soft-hyphen", "fail/sharp-s"],
)
async def test_a_denied_name_is_refused_as_the_common_name_of_a_csr(
    admin: httpx.AsyncClient, shop: Enrollment, spelling: str
) -> None:
    body = shop.body(method="csr", csr=_csr(spelling))

    r = await admin.post(shop.requests, headers=WAIT, json=body)

    problem(r, 422, "csr.common_name")


@pytest.mark.parametrize(
    "name", ["xn--zz.example.com", "xn--abc-.example.com", "xn--ls8h.example.com"]
)
async def test_an_invalid_a_label_is_refused(
    admin: httpx.AsyncClient, shop: Enrollment, name: str
) -> None:
    as_san = await admin.post(
        shop.requests, headers=WAIT, json=shop.body(sans=[{"type": "dns", "value": name}])
    )
    as_cn = await admin.post(shop.requests, headers=WAIT, json=shop.body(common_name=name))
    in_csr = await admin.post(
        shop.requests, headers=WAIT, json=shop.body(method="csr", csr=_csr(None, [name]))
    )

    assert "A-label" in problem(as_san, 422, "sans.0.value")["errors"][0]["message"]
    assert "A-label" in problem(as_cn, 422, "common_name")["errors"][0]["message"]
    problem(in_csr, 422, "csr.sans.0")


async def test_an_idn_has_one_form_in_the_common_name_and_the_san(
    admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    """The CN is a character-for-character copy of the dNSName (CA/B Forum BR 7.1.4.3): the
    lower-case A-label, whichever spelling was asked for, from JSON or from a CSR."""
    a_label = "xn--e1afmkfd.example.com"  # пример.example.com
    by_json = await issue(
        admin,
        shop,
        common_name="\u041f\u0440\u0438\u043c\u0435\u0440.Example.com.",
        sans=[{"type": "dns", "value": "\u043f\u0440\u0438\u043c\u0435\u0440.example.com"}],
    )
    by_csr = await issue(
        admin, shop, method="csr", csr=_csr("\u043f\u0440\u0438\u043c\u0435\u0440.example.com")
    )
    cn_only = await issue(admin, shop, common_name="Stra\u00dfe.example.com")

    for issued in (by_json, by_csr):
        cert = check_issued(issued["certificate"], shop)
        assert _common_name(cert) == a_label
        assert sans_of(cert) == [("dns", a_label)] or issued is by_csr
    cert = check_issued(cn_only["certificate"], shop)
    assert _common_name(cert) == "xn--strae-oqa.example.com"


async def test_a_csr_carries_at_most_the_san_limit_of_json(
    admin: httpx.AsyncClient, api_app: Any, shop: Enrollment
) -> None:
    names = [f"n{i}.example.com" for i in range(101)]
    before = await request_count(api_app, shop.app_id)

    by_csr = await admin.post(
        shop.requests, headers=WAIT, json=shop.body(method="csr", csr=_csr(None, names))
    )
    by_json = await admin.post(
        shop.requests,
        headers=WAIT,
        json=shop.body(sans=[{"type": "dns", "value": n} for n in names]),
    )

    assert "100" in problem(by_csr, 422, "csr.sans")["errors"][0]["message"]
    problem(by_json, 422, "sans")
    assert await request_count(api_app, shop.app_id) == before


async def test_a_csr_larger_than_32_kib_is_refused(
    admin: httpx.AsyncClient, shop: Enrollment
) -> None:
    # 100 SANs of 250 characters: within the SAN limit, over the size limit.
    names = [f"{'a' * 60}.{'b' * 60}.{'c' * 60}.{i:03d}{'d' * 50}.example.com" for i in range(100)]
    pem = _csr(None, names)
    assert len(pem) > 32 * 1024

    r = await admin.post(shop.requests, headers=WAIT, json=shop.body(method="csr", csr=pem))

    problem(r, 422, "csr")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        pytest.param(
            {"subject": {"common_name": "\uff41dmin.example.com"}},
            "U+FF41",
            id="fail/fullwidth-common-name",
        ),
        pytest.param(
            {"subject": {"common_name": "xn--fa-hia.example.com"}},
            "fass.example.com",
            id="fail/sharp-s-common-name",
        ),
        pytest.param(
            {"sans": [{"type": "dns", "value": "xn--zz.example.com"}]},
            "A-label",
            id="fail/invalid-a-label-san",
        ),
    ],
)
async def test_the_issuer_refuses_the_same_names_at_signing(
    admin: httpx.AsyncClient,
    api_app: Any,
    shop: Enrollment,
    params: dict[str, Any],
    reason: str,
) -> None:
    """A request stored without the api's check (before this rule existed) fails at the issuer
    with the reason, rather than staying pending while its batch is retried."""
    request_id = await inject_request(api_app, shop, {"method": "managed", **params})

    done = await poll_until_done(admin, f"{shop.requests}/{request_id}")

    assert done["status"] == "failed", done
    assert reason in done["error"], done


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        pytest.param(
            {"organization": "Evil\u200b Corp"}, "defaults.subject.organization", id="fail/org"
        ),
        pytest.param(
            {"common_name": "\uff41pi.example.com"}, "defaults.subject.common_name", id="fail/cn"
        ),
    ],
)
async def test_a_profile_cannot_default_to_a_name_spelt_to_deceive(
    admin: httpx.AsyncClient, shop: Enrollment, subject: dict[str, str], field: str
) -> None:
    body = profile_body(shop.issuing["id"], shop.policy["id"])
    body["defaults"]["subject"] = subject

    r = await admin.post(f"{API}/profiles", json=body)

    assert "U+" in problem(r, 422, field)["detail"]
