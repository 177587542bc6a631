"""Certificate authorities: create (root, intermediate), read, public PEM, disable/enable, import.

Every CA certificate is judged by outside tools (`openssl verify`, pkilint), not by our code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlmodel import select

from admin_kit import (
    API,
    ClientFor,
    create_identity,
    create_intermediate,
    create_root,
    every,
    intermediate_body,
    ok,
    problem,
    root_body,
    uid,
)
from certforge.common.db.tables import CertificateAuthority
from pki_tools import certificate_pem, external_certificate, openssl_verify, pkilint_errors

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PEM_TYPE = "application/x-pem-file"


async def _ca_names(admin: httpx.AsyncClient) -> set[str]:
    return {ca["name"] for ca in await every(admin, f"{API}/cas")}


# --- creating roots and intermediates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("root_alg", "intermediate_alg", "signature"),
    [
        pytest.param("EC_P256", "EC_P256", None, id="ok/ec-p256"),
        pytest.param("EC_P384", "EC_P384", None, id="ok/ec-p384"),
        pytest.param("EC_P521", "EC_P256", None, id="ok/ec-p521-root"),
        pytest.param("RSA_2048", "RSA_2048", None, id="ok/rsa-2048"),
        pytest.param("RSA_3072", "EC_P256", "SHA384", id="ok/rsa-3072-sha384"),
        pytest.param("ED25519", "EC_P256", None, id="ok/ed25519-root"),
        pytest.param("EC_P256", "ED25519", "SHA512", id="ok/ed25519-intermediate"),
        pytest.param("RSA_4096", "RSA_2048", None, id="ok/rsa-4096-root"),
    ],
)
async def test_root_and_intermediate_verify_and_lint(
    admin: httpx.AsyncClient, root_alg: str, intermediate_alg: str, signature: str | None
) -> None:
    extra: dict[str, Any] = {"signature_algorithm": signature} if signature else {}
    root = await create_root(
        admin, key_algorithm=root_alg, **(extra if root_alg != "ED25519" else {})
    )
    issuing = await create_intermediate(
        admin,
        root["id"],
        key_algorithm=intermediate_alg,
        **(extra if root_alg != "ED25519" else {}),
    )
    assert root["key_algorithm"] == root_alg
    assert issuing["key_algorithm"] == intermediate_alg
    if root_alg == "ED25519":
        assert root["signature_algorithm"] is None
        assert issuing["signature_algorithm"] is None
    elif signature:
        assert root["signature_algorithm"] == signature == issuing["signature_algorithm"]
    openssl_verify(root["certificate"], [], root["certificate"])
    openssl_verify(root["certificate"], [], issuing["certificate"])
    assert pkilint_errors(root["certificate"]) == ""
    assert pkilint_errors(issuing["certificate"]) == ""

    cert = x509.load_pem_x509_certificate(issuing["certificate"].encode())
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert constraints.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    root_cert = x509.load_pem_x509_certificate(root["certificate"].encode())
    assert cert.issuer == root_cert.subject
    assert cert.not_valid_after_utc <= root_cert.not_valid_after_utc


async def test_three_levels_chain_and_public_pem(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    root = await create_root(admin, max_path_length=2)
    middle = await create_intermediate(admin, root["id"], max_path_length=None, validity="8y")
    assert middle["max_path_length"] == 1  # inherited: one less than the parent's
    leaf_ca = await create_intermediate(admin, middle["id"], max_path_length=0, validity="4y")
    assert leaf_ca["chain"] == middle["certificate"] + root["certificate"]
    openssl_verify(root["certificate"], [middle["certificate"]], leaf_ca["certificate"])
    assert pkilint_errors(leaf_ca["certificate"]) == ""

    # Public: no token needed, PEM content type.
    r = await anonymous.get(f"{API}/cas/{leaf_ca['id']}/certificate")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(PEM_TYPE)
    assert r.text == leaf_ca["certificate"]
    r = await anonymous.get(f"{API}/cas/{leaf_ca['id']}/chain")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(PEM_TYPE)
    assert r.text == leaf_ca["certificate"] + middle["certificate"] + root["certificate"]
    chain = x509.load_pem_x509_certificates(r.text.encode())
    assert [c.subject for c in chain[1:]] == [c.issuer for c in chain[:-1]]
    r = await anonymous.get(f"{API}/cas/{root['id']}/chain")
    assert r.text == root["certificate"]

    # The rest of the CA API is not public.
    problem(await anonymous.get(f"{API}/cas"), 401)
    problem(await anonymous.get(f"{API}/cas/{root['id']}"), 401)

    got = ok(await admin.get(f"{API}/cas/{middle['id']}"))
    assert got == middle
    listed = {ca["id"] for ca in await every(admin, f"{API}/cas")}
    assert {root["id"], middle["id"], leaf_ca["id"]} <= listed


async def test_unknown_ca_is_404(admin: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    missing = uuid4()
    problem(await admin.get(f"{API}/cas/{missing}"), 404, "ca_id")
    problem(await anonymous.get(f"{API}/cas/{missing}/certificate"), 404, "ca_id")
    problem(await anonymous.get(f"{API}/cas/{missing}/chain"), 404, "ca_id")
    problem(await admin.post(f"{API}/cas/{missing}/disable"), 404, "ca_id")
    problem(await admin.get(f"{API}/cas/not-a-uuid"), 422, "ca_id")


async def test_disable_and_enable(admin: httpx.AsyncClient) -> None:
    root = await create_root(admin)
    disabled = ok(await admin.post(f"{API}/cas/{root['id']}/disable"))
    assert disabled["status"] == "disabled"
    assert ok(await admin.get(f"{API}/cas/{root['id']}"))["status"] == "disabled"
    ok(await admin.post(f"{API}/cas/{root['id']}/disable"))  # idempotent

    # A disabled CA signs nothing and backs no new profile.
    body = intermediate_body(root["id"])
    problem(await admin.post(f"{API}/cas", json=body), 422, "parent_ca_id")
    assert body["name"] not in await _ca_names(admin)
    policy = ok(await admin.post(f"{API}/policies", json={"name": uid("p")}), 201)
    r = await admin.post(
        f"{API}/profiles", json={"slug": uid("p"), "ca_id": root["id"], "policy_id": policy["id"]}
    )
    problem(r, 422, "ca_id")

    enabled = ok(await admin.post(f"{API}/cas/{root['id']}/enable"))
    assert enabled["status"] == "active"
    await create_intermediate(admin, root["id"])


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "field"),
    [
        pytest.param({"key_algorithm": "RSA_1024"}, 422, "key_algorithm", id="fail/rsa-1024"),
        pytest.param({"key_algorithm": "DSA_2048"}, 422, "key_algorithm", id="fail/dsa"),
        pytest.param({"key_algorithm": "ec_p256"}, 422, "key_algorithm", id="fail/lower-case"),
        pytest.param({"signature_algorithm": "MD5"}, 422, "signature_algorithm", id="fail/md5"),
        pytest.param({"validity": "10 years"}, 422, "validity", id="fail/validity-words"),
        pytest.param({"validity": "0d"}, 422, "validity", id="fail/validity-zero"),
        pytest.param({"validity": ""}, 422, "validity", id="fail/validity-empty"),
        pytest.param({"validity": -86400}, 422, "validity", id="fail/validity-negative"),
        pytest.param({"validity": "999999y"}, 422, "validity", id="fail/validity-overflow"),
        pytest.param({"max_path_length": -1}, 422, "max_path_length", id="fail/path-negative"),
        pytest.param({"max_path_length": "one"}, 422, "max_path_length", id="fail/path-type"),
        pytest.param({"type": "leaf"}, 422, "type", id="fail/type"),
        pytest.param({"subject": {}}, 422, "subject.common_name", id="fail/no-common-name"),
        pytest.param({"subject": {"common_name": ""}}, 422, "subject.common_name", id="fail/cn"),
        pytest.param({"subject": {"country": "usa"}}, 422, "subject.country", id="fail/country"),
        pytest.param({"subject": {"cn": "x"}}, 422, "subject.cn", id="fail/subject-unknown"),
        pytest.param({"name": ""}, 422, "name", id="fail/name-empty"),
        pytest.param({"colour": "red"}, 422, "colour", id="fail/unknown-field"),
        pytest.param({"parent_ca_id": str(uuid4())}, 422, "body", id="fail/root-with-parent"),
        pytest.param({"not_before": "2030-01-01T00:00:00"}, 422, "body", id="fail/naive-time"),
        pytest.param(
            {"not_before": "9999-12-01T00:00:00Z"}, 422, "validity", id="fail/not-before-overflow"
        ),
        pytest.param(
            {"not_before": "1900-01-01T00:00:00Z"}, 422, "not_before", id="fail/not-before-1900"
        ),
    ],
)
async def test_bad_root_is_refused_and_changes_nothing(
    admin: httpx.AsyncClient, overrides: dict[str, Any], status: int, field: str
) -> None:
    body = root_body(**overrides)
    problem(await admin.post(f"{API}/cas", json=body), status, field)
    if isinstance(body.get("name"), str):
        assert body["name"] not in await _ca_names(admin)


async def test_intermediate_rules(admin: httpx.AsyncClient) -> None:
    root = await create_root(admin, max_path_length=1, validity="2y")
    issuing = await create_intermediate(admin, root["id"], validity="1y", max_path_length=0)
    before = await _ca_names(admin)

    cases: list[tuple[dict[str, Any], int, str]] = [
        # The parent has path length 0: it may sign no CA.
        (intermediate_body(issuing["id"], validity="30d"), 422, "parent_ca_id"),
        # Deeper than the parent allows.
        (intermediate_body(root["id"], validity="1y", max_path_length=1), 422, "max_path_length"),
        # Beyond the parent's expiry.
        (intermediate_body(root["id"], validity="3y"), 422, "validity"),
        # Unknown parent.
        (intermediate_body(str(uuid4())), 404, "parent_ca_id"),
        # An intermediate needs a parent.
        ({**intermediate_body(root["id"]), "parent_ca_id": None}, 422, "body"),
        # Starts before its parent.
        (
            intermediate_body(root["id"], validity="30d", not_before="2001-01-01T00:00:00Z"),
            422,
            "not_before",
        ),
        # A parent id that is no UUID.
        (intermediate_body(root["id"], validity="30d", parent_ca_id="nope"), 422, "parent_ca_id"),
    ]
    for body, status, field in cases:
        problem(await admin.post(f"{API}/cas", json=body), status, field)
    assert await _ca_names(admin) == before

    ed_root = await create_root(admin, key_algorithm="ED25519")
    r = await admin.post(
        f"{API}/cas", json=intermediate_body(ed_root["id"], signature_algorithm="SHA256")
    )
    problem(r, 422, "signature_algorithm")


async def test_duplicate_name_is_409(admin: httpx.AsyncClient) -> None:
    root = await create_root(admin)
    r = await admin.post(f"{API}/cas", json=root_body(name=root["name"]))
    problem(r, 409, "name")
    assert [c["name"] for c in await every(admin, f"{API}/cas")].count(root["name"]) == 1


async def test_only_product_admins_manage_cas(
    admin: httpx.AsyncClient, client_for: ClientFor
) -> None:
    root = await create_root(admin)
    someone = client_for((await create_identity(admin))["token"])
    body = root_body()
    problem(await someone.post(f"{API}/cas", json=body), 403)
    problem(await someone.get(f"{API}/cas"), 403)
    problem(await someone.get(f"{API}/cas/{root['id']}"), 403)
    problem(await someone.post(f"{API}/cas/{root['id']}/disable"), 403)
    assert ok(await admin.get(f"{API}/cas/{root['id']}"))["status"] == "active"
    assert body["name"] not in await _ca_names(admin)
    # The public PEM stays public for everyone.
    assert (await someone.get(f"{API}/cas/{root['id']}/certificate")).status_code == 200


# --- import ------------------------------------------------------------------------------------


def _external_ca(
    cn: str = "External Root",
    *,
    ca: bool = True,
    issuer: tuple[x509.Certificate, Any] | None = None,
    not_after: datetime | None = None,
    key: Any = None,
) -> tuple[x509.Certificate, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    not_after = not_after or datetime.now(UTC) + timedelta(days=3650)
    return external_certificate(cn, key, issuer, ca=ca, not_after=not_after), key


def _key_pem(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


async def test_import_external_root_then_sign_an_intermediate(
    admin: httpx.AsyncClient, api_app: Any
) -> None:
    cert, key = _external_ca()
    name = uid("ext")
    r = await admin.post(
        f"{API}/cas/import",
        json={"name": name, "certificate": certificate_pem(cert), "private_key": _key_pem(key)},
    )
    imported = ok(r, 201)
    assert imported["type"] == "external"
    assert imported["status"] == "active"
    assert imported["certificate"] == certificate_pem(cert)
    assert imported["key_algorithm"] == "EC_P256"
    assert "PRIVATE KEY" not in r.text

    issuing = await create_intermediate(admin, imported["id"], validity="2y")
    openssl_verify(certificate_pem(cert), [], issuing["certificate"])
    assert pkilint_errors(issuing["certificate"]) == ""

    # The key is stored encrypted: neither its PEM nor its DER appears in the row.
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    secret = key.private_numbers().private_value.to_bytes(32, "big")
    async with api_app.state.certforge.sessions() as session:
        row = (
            await session.exec(
                select(CertificateAuthority).where(CertificateAuthority.id == UUID(imported["id"]))
            )
        ).one()
    assert row.key_kek_id
    assert der not in row.encrypted_private_key
    assert secret not in row.encrypted_private_key


async def test_import_intermediate_with_chain(admin: httpx.AsyncClient) -> None:
    root, root_key = _external_ca("External Root 2")
    sub, sub_key = _external_ca("External Sub", issuer=(root, root_key))
    base = {"certificate": certificate_pem(sub), "private_key": _key_pem(sub_key)}
    problem(await admin.post(f"{API}/cas/import", json={"name": uid("x"), **base}), 422, "chain")
    r = await admin.post(
        f"{API}/cas/import", json={"name": uid("x"), **base, "chain": certificate_pem(sub)}
    )
    problem(r, 422, "chain")
    r = await admin.post(
        f"{API}/cas/import", json={"name": uid("x"), **base, "chain": certificate_pem(root)}
    )
    imported = ok(r, 201)
    assert imported["chain"] == certificate_pem(root)
    r = await admin.get(f"{API}/cas/{imported['id']}/chain")
    assert r.text == certificate_pem(sub) + certificate_pem(root)


async def test_import_refusals_change_nothing(admin: httpx.AsyncClient) -> None:
    cert, key = _external_ca()
    _, other_key = _external_ca()
    leaf, leaf_key = _external_ca("not a ca", ca=False)
    expired, expired_key = _external_ca(
        "expired", not_after=datetime.now(UTC) - timedelta(minutes=1)
    )
    weak, weak_key = _external_ca("weak", key=rsa.generate_private_key(65537, 1024))
    taken = (await create_root(admin))["name"]
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (
            "wrong-key",
            {"certificate": certificate_pem(cert), "private_key": _key_pem(other_key)},
            422,
            "private_key",
        ),
        (
            "not-a-ca",
            {"certificate": certificate_pem(leaf), "private_key": _key_pem(leaf_key)},
            422,
            "certificate",
        ),
        (
            "expired",
            {"certificate": certificate_pem(expired), "private_key": _key_pem(expired_key)},
            422,
            "certificate",
        ),
        (
            "rsa-1024",
            {"certificate": certificate_pem(weak), "private_key": _key_pem(weak_key)},
            422,
            "private_key",
        ),
        ("garbage-pem", {"certificate": garbage, "private_key": _key_pem(key)}, 400, "certificate"),
        ("not-pem", {"certificate": "hello", "private_key": _key_pem(key)}, 400, "certificate"),
        (
            "two-certs",
            {"certificate": certificate_pem(cert) * 2, "private_key": _key_pem(key)},
            400,
            "certificate",
        ),
        (
            "garbage-key",
            {"certificate": certificate_pem(cert), "private_key": "nope"},
            400,
            "private_key",
        ),
        (
            "key-as-cert",
            {"certificate": _key_pem(key), "private_key": _key_pem(key)},
            400,
            "certificate",
        ),
        ("missing-key", {"certificate": certificate_pem(cert)}, 422, "private_key"),
        ("key-type", {"certificate": certificate_pem(cert), "private_key": 42}, 422, "private_key"),
        (
            "garbage-chain",
            {"certificate": certificate_pem(cert), "private_key": _key_pem(key), "chain": "junk"},
            400,
            "chain",
        ),
    ]
    before = await _ca_names(admin)
    for case, body, status, field in cases:
        r = await admin.post(f"{API}/cas/import", json={"name": uid(case), **body})
        problem(r, status, field)
        assert "PRIVATE KEY" not in r.text, case
    r = await admin.post(
        f"{API}/cas/import",
        json={"name": taken, "certificate": certificate_pem(cert), "private_key": _key_pem(key)},
    )
    problem(r, 409, "name")
    assert await _ca_names(admin) == before
