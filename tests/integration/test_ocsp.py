"""Issue 4, OCSP (RFC 6960): `openssl ocsp` against the API on a real TCP port says `good`
before and `revoked` after revocation, with a response that verifies; the GET form; nonces;
`unknown` for serials and issuers that are not ours; `malformedRequest` and `unauthorized`
as OCSP responses (never a problem document or a 500).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlmodel import col, select

from admin_kit import API, ClientFor, ok
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import generate_private_key, private_key_to_der
from certforge.common.crypto.revocation import build_ocsp_responder
from certforge.common.db.tables import CertificateAuthority, OcspResponder
from certforge.common.domain import KeyAlgorithm
from certforge.issuer.ca_cache import SignerCache
from certforge.issuer.revocation import RevocationPublisher, RevocationSettings
from harness import Backends
from issuance_kit import Enrollment, enroll, issue, member

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"


@dataclass
class World:
    pki: Enrollment
    operator: httpx.AsyncClient
    leaves: dict[str, x509.Certificate]  # name -> a fresh certificate of `pki`
    ids: dict[str, str]  # name -> certificate id
    issuing: x509.Certificate
    root: x509.Certificate
    api_app: Any
    backends: Backends

    @property
    def ca_id(self) -> str:
        return str(self.pki.issuing["id"])


def _publisher(api_app: Any, backends: Backends) -> RevocationPublisher:
    """The issuer's CRL/responder upkeep, run on demand instead of waiting for its poll."""
    context = api_app.state.certforge
    return RevocationPublisher(
        context.sessions,
        SignerCache(KeyRing.parse(backends.ca_keks)),
        context.leaf_keys,
        RevocationSettings(),
    )


async def _responders(api_app: Any, ca_id: str) -> list[OcspResponder]:
    async with api_app.state.certforge.sessions() as session:
        rows = await session.exec(
            select(OcspResponder)
            .where(OcspResponder.ca_id == UUID(ca_id))
            .order_by(col(OcspResponder.not_after))
        )
        return list(rows)


async def _ensure_responder(api_app: Any, backends: Backends, ca_id: str) -> None:
    now = datetime.now(UTC)
    if not any(r.not_before <= now < r.not_after for r in await _responders(api_app, ca_id)):
        await _publisher(api_app, backends).refresh()
    assert await _responders(api_app, ca_id), "the issuer made no OCSP responder"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    admin: httpx.AsyncClient, client_for: ClientFor, api_app: Any, backends: Backends
) -> World:
    pki = await enroll(admin)
    operator = await member(admin, client_for, pki.app, "operator")
    leaves: dict[str, x509.Certificate] = {}
    ids: dict[str, str] = {}
    for name in ("openssl", "get", "unspecified", "rotation"):
        body = await issue(operator, pki, common_name=f"{name}.example.com")
        leaves[name] = x509.load_pem_x509_certificate(body["certificate"]["certificate"].encode())
        ids[name] = body["certificate"]["id"]
    await _ensure_responder(api_app, backends, str(pki.issuing["id"]))
    await _ensure_responder(api_app, backends, str(pki.root["id"]))
    return World(
        pki=pki,
        operator=operator,
        leaves=leaves,
        ids=ids,
        issuing=x509.load_pem_x509_certificate(pki.issuing["certificate"].encode()),
        root=x509.load_pem_x509_certificate(pki.root["certificate"].encode()),
        api_app=api_app,
        backends=backends,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def base_url(api_app: Any) -> AsyncIterator[str]:
    """The running API served over TCP on a free loopback port (openssl needs a real URL)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(api_app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert not task.done(), task
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)
    sock.close()


async def _run(*args: str) -> tuple[int, str, str]:
    """A subprocess that does not block the event loop (uvicorn serves in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


async def _post(client: httpx.AsyncClient, ca_id: str, body: bytes) -> ocsp.OCSPResponse:
    r = await client.post(f"/ocsp/{ca_id}", content=body, headers={"Content-Type": OCSP_REQUEST})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == OCSP_RESPONSE
    return ocsp.load_der_ocsp_response(r.content)


def _check_signed(response: ocsp.OCSPResponse, world: World) -> x509.Certificate:
    """The response is signed by a delegated responder of the issuing CA; return it."""
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert len(response.certificates) == 1
    responder = response.certificates[0]
    responder.verify_directly_issued_by(world.issuing)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert response.responder_key_hash == (
        x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    )
    assert response.responder_name is None
    public_key: Any = responder.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert response.signature_hash_algorithm is not None
    public_key.verify(
        response.signature,
        response.tbs_response_bytes,
        ec.ECDSA(response.signature_hash_algorithm),
    )
    return responder


async def _revoke(world: World, name: str, reason: str) -> None:
    url = f"{world.pki.certificates}/{world.ids[name]}/revoke"
    ok(await world.operator.post(url, json={"reason": reason}))


# --- openssl, over TCP ---------------------------------------------------------------------------


async def test_openssl_good_then_revoked(world: World, base_url: str, tmp_path: Path) -> None:
    leaf = world.leaves["openssl"]
    (tmp_path / "issuer.pem").write_text(_pem(world.issuing))
    (tmp_path / "leaf.pem").write_text(_pem(leaf))
    (tmp_path / "root.pem").write_text(_pem(world.root))
    args = [
        "openssl", "ocsp",
        "-issuer", str(tmp_path / "issuer.pem"),
        "-cert", str(tmp_path / "leaf.pem"),
        "-url", f"{base_url}/ocsp/{world.ca_id}",
        "-CAfile", str(tmp_path / "root.pem"),
        "-verify_other", str(tmp_path / "issuer.pem"),
        "-respout", str(tmp_path / "resp.der"),
    ]  # fmt: skip
    code, out, err = await _run(*args)
    assert code == 0, (out, err)
    assert "Response verify OK" in err, (out, err)
    assert f"{tmp_path / 'leaf.pem'}: good" in out, out
    assert "This Update:" in out, out
    assert "Next Update:" in out, out
    assert "WARNING" not in out + err, (out, err)  # e.g. a nonce that was not echoed

    await _revoke(world, "openssl", "keyCompromise")
    code, out, err = await _run(*args)
    assert code == 0, (out, err)
    assert "Response verify OK" in err, (out, err)
    assert f"{tmp_path / 'leaf.pem'}: revoked" in out, out
    assert "Reason: keyCompromise" in out, out
    assert "Revocation Time:" in out, out

    # pkilint's RFC 6960 validators find no error in what we signed.
    code, out, err = await _run(
        str(Path(sys.executable).parent / "lint_ocsp_response"),
        "lint",
        "-s",
        "ERROR",
        str(tmp_path / "resp.der"),
    )
    assert code == 0, (out, err)


async def test_openssl_issuer_sub_ca_is_good_at_the_root(
    world: World, base_url: str, tmp_path: Path
) -> None:
    """The intermediate's own AIA points at the root's responder: it knows its sub-CAs."""
    (tmp_path / "root.pem").write_text(_pem(world.root))
    (tmp_path / "issuing.pem").write_text(_pem(world.issuing))
    code, out, err = await _run(
        "openssl", "ocsp",
        "-issuer", str(tmp_path / "root.pem"),
        "-cert", str(tmp_path / "issuing.pem"),
        "-url", f"{base_url}/ocsp/{world.pki.root['id']}",
        "-CAfile", str(tmp_path / "root.pem"),
    )  # fmt: skip
    assert code == 0, (out, err)
    assert "Response verify OK" in err, (out, err)
    assert f"{tmp_path / 'issuing.pem'}: good" in out, out


# --- responses, parsed ---------------------------------------------------------------------------


async def test_get_form_with_nonce_and_caching(world: World, anonymous: httpx.AsyncClient) -> None:
    nonce = b"\x00+/=" + bytes(range(28))  # base64 with '+' and '/', to exercise URL encoding
    der = _request(world.leaves["get"], world.issuing, hashes.SHA256(), nonce)
    encoded = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    before = datetime.now(UTC).replace(microsecond=0)
    r = await anonymous.get(f"/ocsp/{world.ca_id}/{encoded}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == OCSP_RESPONSE
    response = ocsp.load_der_ocsp_response(r.content)
    _check_signed(response, world)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == world.leaves["get"].serial_number
    assert isinstance(response.hash_algorithm, hashes.SHA256)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert response.this_update_utc >= before
    assert response.next_update_utc is not None
    assert response.next_update_utc - response.this_update_utc == timedelta(hours=1)
    cache_control = r.headers["cache-control"]
    assert cache_control.startswith("public"), cache_control
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    assert 3500 <= max_age <= 3600, cache_control

    # Also unencoded base64 (many clients do not URL-encode), and POST without a nonce.
    plain = base64.b64encode(_request(world.leaves["get"], world.issuing)).decode()
    r = await anonymous.get(f"/ocsp/{world.ca_id}/{plain}")
    assert ocsp.load_der_ocsp_response(r.content).certificate_status is ocsp.OCSPCertStatus.GOOD
    posted = await _post(anonymous, world.ca_id, _request(world.leaves["get"], world.issuing))
    assert posted.certificate_status is ocsp.OCSPCertStatus.GOOD
    with pytest.raises(x509.ExtensionNotFound):
        posted.extensions.get_extension_for_class(x509.OCSPNonce)


async def test_revoked_unspecified_has_no_reason(
    world: World, anonymous: httpx.AsyncClient
) -> None:
    await _revoke(world, "unspecified", "unspecified")
    response = await _post(
        anonymous, world.ca_id, _request(world.leaves["unspecified"], world.issuing)
    )
    _check_signed(response, world)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None
    assert response.revocation_time_utc is not None
    assert response.revocation_time_utc <= datetime.now(UTC)


async def test_unknown_serial_and_foreign_issuer(
    world: World, anonymous: httpx.AsyncClient
) -> None:
    leaf = world.leaves["get"]
    by_hash = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            _request_hashes(leaf, world.issuing)[0],
            _request_hashes(leaf, world.issuing)[1],
            leaf.serial_number + 1,
            hashes.SHA1(),
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = await _post(anonymous, world.ca_id, by_hash)
    _check_signed(response, world)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert response.serial_number == leaf.serial_number + 1

    # A real serial of ours, but the CertID names another issuer (the root): unknown.
    response = await _post(anonymous, world.ca_id, _request(leaf, world.root))
    _check_signed(response, world)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert response.issuer_key_hash == _request_hashes(leaf, world.root)[1]

    # The right issuer hashes, asked of another CA's responder (the root's): unknown there.
    response = await _post(anonymous, str(world.pki.root["id"]), _request(leaf, world.issuing))
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def _request_hashes(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    request = ocsp.load_der_ocsp_request(_request(cert, issuer))
    return request.issuer_name_hash, request.issuer_key_hash


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="fail/empty"),
        pytest.param(b"garbage", id="fail/garbage"),
        pytest.param(b"\x30\x03\x02\x01\x01", id="fail/other-der"),
        pytest.param(b'{"json": true}', id="fail/json"),
    ],
)
async def test_malformed_post(world: World, anonymous: httpx.AsyncClient, body: bytes) -> None:
    response = await _post(anonymous, world.ca_id, body)
    assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


async def test_malformed_other_forms(
    world: World, anonymous: httpx.AsyncClient, tmp_path: Path
) -> None:
    good = _request(world.leaves["get"], world.issuing)
    # Truncated DER, and a nonce longer than RFC 9654 allows.
    for body in (good[:-3], _request(world.leaves["get"], world.issuing, nonce=b"n" * 129)):
        response = await _post(anonymous, world.ca_id, body)
        assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # Two certificates in one request: cryptography reads one only (see api/ocsp.py).
    (tmp_path / "issuer.pem").write_text(_pem(world.issuing))
    code, out, err = await _run(
        "openssl", "ocsp", "-issuer", str(tmp_path / "issuer.pem"),
        "-serial", "0x1234", "-serial", "0x5678", "-reqout", str(tmp_path / "multi.der"),
    )  # fmt: skip
    assert code == 0, (out, err)
    response = await _post(anonymous, world.ca_id, (tmp_path / "multi.der").read_bytes())
    assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # GET with something that is not base64, or nothing at all.
    for path in ("not*base64!!", "", "QUJD"):
        r = await anonymous.get(f"/ocsp/{world.ca_id}/{path}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == OCSP_RESPONSE
        assert r.headers["cache-control"] == "no-store"
        status = ocsp.load_der_ocsp_response(r.content).response_status
        assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.parametrize(
    "ca_id",
    [
        pytest.param(str(uuid4()), id="fail/unknown-ca"),
        pytest.param("not-a-uuid", id="fail/not-a-uuid"),
        pytest.param("%00", id="fail/nul"),
    ],
)
async def test_unauthorized_ca(world: World, anonymous: httpx.AsyncClient, ca_id: str) -> None:
    body = _request(world.leaves["get"], world.issuing)
    response = await _post(anonymous, ca_id, body)
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    encoded = urllib.parse.quote(base64.b64encode(body).decode(), safe="")
    r = await anonymous.get(f"/ocsp/{ca_id}/{encoded}")
    assert r.status_code == 200
    status = ocsp.load_der_ocsp_response(r.content).response_status
    assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_newer_responder_takes_over(world: World, anonymous: httpx.AsyncClient) -> None:
    """What the api signs after the issuer made a newer responder is signed by it; an answer
    signed ahead by the older one (still valid for weeks) is served until it is re-signed."""
    body = _request(world.leaves["rotation"], world.issuing)
    first = _check_signed(await _post(anonymous, world.ca_id, body), world)
    newer = await _add_responder(world, timedelta(days=60))
    assert _check_signed(await _post(anonymous, world.ca_id, body), world) == first
    live = _request(world.leaves["rotation"], world.issuing, nonce=b"rotation-nonce")
    second = _check_signed(await _post(anonymous, world.ca_id, live), world)
    assert second != first
    assert second == newer


async def _add_responder(world: World, lifetime: timedelta) -> x509.Certificate:
    """What the issuer does when a responder reaches 2/3 of its life, for this CA only."""
    context = world.api_app.state.certforge
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    async with context.sessions() as session:
        ca = await session.get(CertificateAuthority, UUID(world.ca_id))
        assert ca is not None
        signer = SignerCache(KeyRing.parse(world.backends.ca_keks)).signer(ca)
        key = generate_private_key(KeyAlgorithm.EC_P256)
        cert = build_ocsp_responder(
            signer.certificate, signer.key, key.public_key(), now, now + lifetime
        )
        responder_id = uuid4()
        session.add(
            OcspResponder(
                id=responder_id,
                ca_id=ca.id,
                certificate_pem=_pem(cert),
                encrypted_private_key=context.leaf_keys.encrypt(
                    private_key_to_der(key), responder_id.bytes
                ),
                key_kek_id=context.leaf_keys.active_kid,
                not_before=now,
                not_after=now + lifetime,
            )
        )
        await session.commit()
    return cert


async def test_ca_certificate_der_is_the_aia_ca_issuers_target(
    world: World, anonymous: httpx.AsyncClient
) -> None:
    aia = (
        world.leaves["get"]
        .extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        .value
    )
    urls = {d.access_method: str(d.access_location.value) for d in aia}
    ca_issuers = urllib.parse.urlsplit(urls[x509.oid.AuthorityInformationAccessOID.CA_ISSUERS])
    ocsp_url = urllib.parse.urlsplit(urls[x509.oid.AuthorityInformationAccessOID.OCSP])
    assert ocsp_url.path == f"/ocsp/{world.ca_id}"
    r = await anonymous.get(ca_issuers.path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(r.content) == world.issuing
    assert ok(await anonymous.get(f"{API}/cas/{uuid4()}/certificate.cer"), 404) is not None
