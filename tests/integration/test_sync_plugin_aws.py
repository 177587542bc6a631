"""The `aws-acm` and `aws-secrets-manager` destinations against REAL `moto_server` processes.

Two servers are started once for this module: an open one (moto does not check credentials by
default) and one with `INITIAL_NO_AUTH_ACTION_COUNT=0`, where every request is authenticated
against moto's IAM, so made-up credentials are refused as AWS would refuse them
(`InvalidClientTokenId`, HTTP 403). What is stored is read back with plain boto3.

Covers ACM import (certificate, chain, tags), re-import into the same ARN on renewal with the
tags kept, re-import of an ARN deleted out of band, remove (twice); Secrets Manager create,
a new version on renewal, no new version on redelivery, the JSON document with and without
a key, a foreign secret refused or adopted, remove with and without a recovery window and a
later push that restores; `check`; refusals (credentials, a garbage certificate, an invalid
secret name, a missing key, plain http outside development, an untrusted TLS endpoint, no
credentials anywhere); an unreachable and a silent endpoint (transient, within the timeout);
settings validation and the error classifier.

Not covered by moto (it accepts them): a key that does not match the certificate, tags on a
re-import, writing to a secret scheduled for deletion — real AWS refuses all three.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_asyncio
from botocore.exceptions import ClientError, ParamValidationError
from pydantic import ValidationError

from certforge.common.destinations.aws import (
    AwsAcmSettings,
    AwsCredentials,
    AwsSecretsManagerSettings,
    AwsSettings,
)
from certforge.syncer.plugins import aws as aws_plugin
from certforge.syncer.plugins.aws import AwsDestination, to_sync_error
from certforge.syncer.plugins.aws_acm import AwsAcm
from certforge.syncer.plugins.aws_secrets import AwsSecretsManager, secret_document
from certforge.syncer.plugins.base import (
    PermanentSyncError,
    SyncItem,
    TransientSyncError,
)
from sync_plugin_kit import (
    SilentServer,
    closed_port,
    free_port,
    server_certificate,
    sync_ca,
    sync_item,
)

pytestmark = pytest.mark.integration  # async tests run on the session loop (pyproject)

MOTO_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "moto_server"
REGION = "eu-west-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # a made-up test value
USER_TAGS = {"team": "payments", "env": "prod"}


@dataclass(frozen=True)
class Moto:
    url: str
    """Credentials are not checked."""
    auth_url: str
    """Every request is authenticated: made-up credentials are refused."""

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        ).client(service, endpoint_url=self.url)


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    if not MOTO_SERVER.exists():
        pytest.fail(f"moto_server missing at {MOTO_SERVER} (the moto[server] dev dependency)")
    logs = Path(tempfile.mkdtemp(prefix="cf-moto-", dir="/tmp"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    started: list[tuple[subprocess.Popen[bytes], int, Path]] = []
    try:
        for name, extra in (("open", {}), ("auth", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})):
            port = free_port()
            log_path = logs / f"moto-{name}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**base_env, **extra},
                )
            started.append((process, port, log_path))
        deadline = time.monotonic() + 30
        for process, port, log_path in started:
            while not _answers(port):
                if process.poll() is not None:
                    pytest.fail(f"moto_server exited: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not answer within 30 s")
                time.sleep(0.05)
        (_, open_port, _), (_, auth_port, _) = started
        yield Moto(url=f"http://127.0.0.1:{open_port}", auth_url=f"http://127.0.0.1:{auth_port}")
    finally:
        for process, _, _ in started:
            process.terminate()
        for process, _, _ in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(logs, ignore_errors=True)


def _answers(port: int) -> bool:
    """Werkzeug listens only once moto's app is built."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _credentials() -> AwsCredentials:
    return AwsCredentials.model_validate(
        {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
    )


def _acm(moto: Moto, *, url: str | None = None, development: bool = True, **extra: Any) -> AwsAcm:
    settings = AwsAcmSettings.model_validate(
        {"region": REGION, "endpoint_url": url or moto.url, "tags": USER_TAGS, **extra}
    )
    return AwsAcm(settings, _credentials(), development=development)


def _secrets(
    moto: Moto, *, url: str | None = None, development: bool = True, **extra: Any
) -> AwsSecretsManager:
    settings = AwsSecretsManagerSettings.model_validate(
        {"region": REGION, "endpoint_url": url or moto.url, **extra}
    )
    return AwsSecretsManager(settings, _credentials(), development=development)


@pytest_asyncio.fixture(loop_scope="session")
async def acm(moto: Moto) -> AsyncIterator[AwsAcm]:
    dest = _acm(moto)
    yield dest
    await dest.close()


@pytest_asyncio.fixture(loop_scope="session")
async def secrets(moto: Moto) -> AsyncIterator[AwsSecretsManager]:
    dest = _secrets(moto)
    yield dest
    await dest.close()


def _name() -> str:
    return f"app-{uuid.uuid4().hex[:10]}.example.com"


def _renewal(first: SyncItem, external_id: str, **kw: Any) -> SyncItem:
    """The next certificate of `first`'s lineage, as the syncer hands it over."""
    return sync_item(first.name, lineage_id=first.lineage_id, external_id=external_id, **kw)


def _error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def _tags(acm_client: Any, arn: str) -> dict[str, str]:
    answer = acm_client.list_tags_for_certificate(CertificateArn=arn)
    return {t["Key"]: t.get("Value", "") for t in answer["Tags"]}


def _serial(text: str) -> int:
    """ACM's serial (colon-separated hex in AWS, decimal in moto) as a number."""
    return int(text.replace(":", ""), 16) if ":" in text else int(text)


def _arns(acm_client: Any) -> set[str]:
    pages = acm_client.get_paginator("list_certificates").paginate()
    return {c["CertificateArn"] for page in pages for c in page["CertificateSummaryList"]}


# --- ACM ------------------------------------------------------------------------------------


async def test_acm_push_imports_certificate_chain_and_tags(acm: AwsAcm, moto: Moto) -> None:
    item = sync_item(_name())
    arn = await acm.push(item)

    client = moto.client("acm")
    assert arn.startswith(f"arn:aws:acm:{REGION}:")
    stored = client.get_certificate(CertificateArn=arn)
    assert stored["Certificate"] == item.certificate_pem
    assert sync_ca().issuing_pem in stored["CertificateChain"]
    described = client.describe_certificate(CertificateArn=arn)["Certificate"]
    assert described["Type"] == "IMPORTED"
    assert _serial(described["Serial"]) == int(item.serial_number, 16)
    assert _tags(client, arn) == {
        **USER_TAGS,
        "certforge:lineage-id": str(item.lineage_id),
        "certforge:certificate-id": str(item.certificate_id),
    }


async def test_acm_renewal_reimports_into_the_same_arn_and_keeps_tags(
    acm: AwsAcm, moto: Moto
) -> None:
    client = moto.client("acm")
    first = sync_item(_name())
    arn = await acm.push(first)
    before = _arns(client)

    second = _renewal(first, arn)
    assert await acm.push(second) == arn
    assert client.get_certificate(CertificateArn=arn)["Certificate"] == second.certificate_pem
    assert second.certificate_pem != first.certificate_pem
    assert _tags(client, arn) == {
        **USER_TAGS,
        "certforge:lineage-id": str(first.lineage_id),
        "certforge:certificate-id": str(second.certificate_id),
    }
    assert _arns(client) == before  # replaced in place, nothing added

    # A redelivered renewal event: the same certificate again, still in place.
    assert await acm.push(second) == arn
    assert _arns(client) == before


async def test_acm_certificate_deleted_out_of_band_is_imported_anew(
    acm: AwsAcm, moto: Moto
) -> None:
    client = moto.client("acm")
    first = sync_item(_name())
    arn = await acm.push(first)
    client.delete_certificate(CertificateArn=arn)

    second = _renewal(first, arn)
    new_arn = await acm.push(second)
    assert new_arn != arn
    assert client.get_certificate(CertificateArn=new_arn)["Certificate"] == second.certificate_pem
    assert _tags(client, new_arn)["team"] == "payments"


async def test_acm_arn_of_another_region_is_imported_anew_here(acm: AwsAcm, moto: Moto) -> None:
    item = sync_item(_name())
    elsewhere = "arn:aws:acm:us-east-1:123456789012:certificate/" + str(uuid.uuid4())
    arn = await acm.push(dataclasses.replace(item, external_id=elsewhere))
    assert arn.startswith(f"arn:aws:acm:{REGION}:")
    assert moto.client("acm").get_certificate(CertificateArn=arn)["Certificate"] == (
        item.certificate_pem
    )


async def test_acm_remove_deletes_and_is_idempotent(acm: AwsAcm, moto: Moto) -> None:
    client = moto.client("acm")
    item = sync_item(_name())
    arn = await acm.push(item)

    await acm.remove(item, arn)
    with pytest.raises(ClientError) as gone:
        client.get_certificate(CertificateArn=arn)
    assert _error_code(gone.value) == "ResourceNotFoundException"

    await acm.remove(item, arn)  # already gone: fine
    await acm.remove(item, "not-an-arn")  # never ours: nothing to delete


async def test_acm_check(acm: AwsAcm) -> None:
    await acm.check()


async def test_acm_without_private_key_is_permanent(acm: AwsAcm) -> None:
    assert AwsAcm.needs_private_key is True
    with pytest.raises(PermanentSyncError, match="private key"):
        await acm.push(sync_item(_name(), with_key=False))


async def test_acm_garbage_certificate_is_permanent_and_leaks_no_key(acm: AwsAcm) -> None:
    item = sync_item(_name())
    garbage = dataclasses.replace(item, certificate_pem="not a certificate")
    with pytest.raises(PermanentSyncError) as refused:
        await acm.push(garbage)
    message = str(refused.value)
    assert "ValidationException" in message
    assert "ImportCertificate" in message
    assert "PRIVATE KEY" not in message


async def test_acm_leaf_only_item_imports_without_chain(acm: AwsAcm, moto: Moto) -> None:
    item = sync_item(_name(), include_chain=False)
    arn = await acm.push(item)
    stored = moto.client("acm").get_certificate(CertificateArn=arn)
    assert stored["Certificate"] == item.certificate_pem
    # moto fills in a chain of its own when none is imported; ours must not be in it.
    assert sync_ca().issuing_pem not in stored.get("CertificateChain", "")


# --- Secrets Manager ------------------------------------------------------------------------


def _secret_json(client: Any, secret_id: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
    answer = client.get_secret_value(SecretId=secret_id, VersionStage=stage)
    document: dict[str, Any] = json.loads(answer["SecretString"])
    return document


def _versions(client: Any, secret_id: str) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = client.list_secret_version_ids(SecretId=secret_id)["Versions"]
    return versions


async def test_secret_push_creates_one_json_secret(secrets: AwsSecretsManager, moto: Moto) -> None:
    client = moto.client("secretsmanager")
    item = sync_item(f"certforge/{_name()}")
    arn = await secrets.push(item)

    described = client.describe_secret(SecretId=arn)
    assert described["Name"] == item.name
    assert described["ARN"] == arn
    assert {"Key": "certforge:lineage-id", "Value": str(item.lineage_id)} in described["Tags"]
    assert _secret_json(client, item.name) == {
        "certificate": item.certificate_pem,
        "chain": item.chain_pem,
        "private_key": item.private_key_pem,
        "serial_number": item.serial_number,
        "not_after": item.not_after.isoformat(),
        "certificate_id": str(item.certificate_id),
        "lineage_id": str(item.lineage_id),
    }
    assert len(_versions(client, arn)) == 1


async def test_secret_renewal_writes_a_new_version_of_the_same_secret(
    secrets: AwsSecretsManager, moto: Moto
) -> None:
    client = moto.client("secretsmanager")
    first = sync_item(_name())
    arn = await secrets.push(first)

    second = _renewal(first, arn)
    assert await secrets.push(second) == arn
    versions = _versions(client, arn)
    assert len(versions) == 2
    assert _secret_json(client, arn)["certificate"] == second.certificate_pem
    assert _secret_json(client, arn, "AWSPREVIOUS")["certificate"] == first.certificate_pem

    # Redelivered: the same certificate again adds no version (content-derived version id).
    assert await secrets.push(second) == arn
    assert len(_versions(client, arn)) == 2


async def test_secret_lost_answer_then_retry_does_not_duplicate(
    secrets: AwsSecretsManager, moto: Moto
) -> None:
    """Created, but the ARN never reached the syncer: the retry (no external id) finds it."""
    client = moto.client("secretsmanager")
    item = sync_item(_name())
    arn = await secrets.push(item)
    assert await secrets.push(item) == arn
    assert len(_versions(client, arn)) == 1
    names = [s["Name"] for s in client.list_secrets()["SecretList"]]
    assert names.count(item.name) == 1


async def test_secret_without_key_omits_private_key(secrets: AwsSecretsManager, moto: Moto) -> None:
    assert AwsSecretsManager.needs_private_key is False
    item = sync_item(_name(), with_key=False)
    arn = await secrets.push(item)
    document = _secret_json(moto.client("secretsmanager"), arn)
    assert "private_key" not in document
    assert document == secret_document(item)


async def test_secret_recorded_arn_deleted_out_of_band_is_created_again(
    secrets: AwsSecretsManager, moto: Moto
) -> None:
    client = moto.client("secretsmanager")
    first = sync_item(_name())
    arn = await secrets.push(first)
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    second = _renewal(first, arn)
    new_arn = await secrets.push(second)
    assert _secret_json(client, new_arn)["certificate"] == second.certificate_pem


async def test_secret_not_created_by_certforge_is_refused_unless_adopted(
    secrets: AwsSecretsManager, moto: Moto
) -> None:
    client = moto.client("secretsmanager")
    item = sync_item(_name())
    foreign = client.create_secret(Name=item.name, SecretString='{"password": "hunter2"}')

    with pytest.raises(PermanentSyncError, match="not created by Certforge"):
        await secrets.push(item)
    assert json.loads(client.get_secret_value(SecretId=item.name)["SecretString"]) == {
        "password": "hunter2"
    }

    adopting = _secrets(moto, adopt_existing=True)
    try:
        assert await adopting.push(item) == foreign["ARN"]
    finally:
        await adopting.close()
    assert _secret_json(client, item.name)["certificate"] == item.certificate_pem
    tags = client.describe_secret(SecretId=item.name)["Tags"]
    assert {"Key": "certforge:lineage-id", "Value": str(item.lineage_id)} in tags


async def test_secret_remove_without_recovery_is_immediate_and_idempotent(
    secrets: AwsSecretsManager, moto: Moto
) -> None:
    client = moto.client("secretsmanager")
    item = sync_item(_name())
    arn = await secrets.push(item)

    await secrets.remove(item, arn)
    with pytest.raises(ClientError) as gone:
        client.describe_secret(SecretId=arn)
    assert _error_code(gone.value) == "ResourceNotFoundException"
    await secrets.remove(item, arn)


async def test_secret_remove_with_recovery_window_then_push_restores(moto: Moto) -> None:
    client = moto.client("secretsmanager")
    dest = _secrets(moto, recovery_window_days=7)
    try:
        item = sync_item(_name())
        arn = await dest.push(item)
        await dest.remove(item, arn)
        assert client.describe_secret(SecretId=arn).get("DeletedDate")
        await dest.remove(item, arn)  # already scheduled: fine

        # The lineage is synced again later (no external id: the syncer forgot it on remove).
        again = sync_item(item.name, lineage_id=item.lineage_id)
        assert await dest.push(again) == arn
        assert not client.describe_secret(SecretId=arn).get("DeletedDate")
        assert _secret_json(client, arn)["certificate"] == again.certificate_pem
    finally:
        await dest.close()


async def test_secret_invalid_name_is_permanent(secrets: AwsSecretsManager) -> None:
    with pytest.raises(PermanentSyncError, match="secret name"):
        await secrets.push(sync_item("no spaces or * allowed"))


async def test_secret_check(secrets: AwsSecretsManager) -> None:
    await secrets.check()


# --- refusals and failures, both kinds ------------------------------------------------------

KINDS = [
    pytest.param(_acm, id="aws-acm"),
    pytest.param(_secrets, id="aws-secrets-manager"),
]


@pytest.mark.parametrize("make", KINDS)
async def test_refused_credentials_are_permanent_and_not_echoed(make: Any, moto: Moto) -> None:
    dest: AwsDestination[Any] = make(moto, url=moto.auth_url)
    try:
        for attempt in (dest.check(), dest.push(sync_item(_name()))):
            with pytest.raises(PermanentSyncError, match="credentials or permissions refused"):
                await attempt
    finally:
        await dest.close()


async def test_refused_credentials_message_is_clean(moto: Moto) -> None:
    dest = _secrets(moto, url=moto.auth_url)
    try:
        with pytest.raises(PermanentSyncError) as refused:
            await dest.check()
    finally:
        await dest.close()
    message = str(refused.value)
    assert "InvalidClientTokenId" in message
    assert "<" not in message  # moto's XML error body was digested
    assert SECRET_KEY not in message


@pytest.mark.parametrize("make", KINDS)
async def test_unreachable_endpoint_is_transient_and_quick(make: Any, moto: Moto) -> None:
    dest: AwsDestination[Any] = make(
        moto, url=f"http://127.0.0.1:{closed_port()}", timeout_seconds=2
    )
    started = time.monotonic()
    try:
        with pytest.raises(TransientSyncError, match="unreachable"):
            await dest.push(sync_item(_name()))
    finally:
        await dest.close()
    assert time.monotonic() - started < 3  # refused at once; one retry after < 1 s backoff


@pytest.mark.parametrize("make", KINDS)
async def test_silent_endpoint_times_out_transient(make: Any, moto: Moto) -> None:
    silent = await SilentServer().start()
    dest: AwsDestination[Any] = make(
        moto, url=f"http://127.0.0.1:{silent.port}", timeout_seconds=0.5
    )
    try:
        started = time.monotonic()
        with pytest.raises(TransientSyncError, match="timed out"):
            await dest.push(sync_item(_name()))
        elapsed = time.monotonic() - started
    finally:
        await dest.close()
        await silent.stop()
    # Two attempts of a 0.5 s read timeout, with a jittered backoff below 1 s between them.
    assert 1.0 <= elapsed < 3, elapsed


@pytest.mark.parametrize("make", KINDS)
async def test_plain_http_endpoint_is_refused_outside_development(make: Any, moto: Moto) -> None:
    # The rule is checked when the destination is built (as when a sync is created), before
    # any request could carry a key over plain http.
    with pytest.raises(PermanentSyncError, match=r"^endpoint_url: https is required"):
        make(moto, development=False)


async def test_untrusted_tls_endpoint_is_permanent(moto: Moto, tmp_path: Path) -> None:
    """An https endpoint whose certificate the syncer does not trust: no retry will help."""
    cert_pem, key_pem = server_certificate()
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "key.pem").write_text(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    dest = _secrets(moto, url=f"https://127.0.0.1:{port}", development=False, timeout_seconds=2)
    try:
        with pytest.raises(PermanentSyncError, match="TLS certificate is not trusted"):
            await dest.check()
    finally:
        await dest.close()
        server.close()
        await server.wait_closed()


async def test_default_chain_without_any_credentials_is_permanent(
    moto: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(aws_plugin, "_SESSION", None)  # resolve the chain in this environment
    settings = AwsAcmSettings.model_validate({"region": REGION, "endpoint_url": moto.url})
    credentials = AwsCredentials.model_validate({"access_key_id": "", "secret_access_key": ""})
    assert credentials.uses_default_chain
    dest = AwsAcm(settings, credentials, development=True)
    try:
        with pytest.raises(PermanentSyncError, match="default AWS credential chain"):
            await dest.check()
    finally:
        await dest.close()


# --- settings and the classifier (no server) ------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"region": "Europe"},
        {"region": "eu-west-1", "unknown": 1},
        {"region": "eu-west-1", "endpoint_url": "ftp://example.com"},
        {"region": "eu-west-1", "endpoint_url": "https://user:pw@example.com"},
        {"region": "eu-west-1", "timeout_seconds": 0},
        {"region": "eu-west-1", "tags": {"aws:reserved": "x"}},
        {"region": "eu-west-1", "tags": {"certforge:lineage-id": "x"}},
        {"region": "eu-west-1", "tags": {"k": "v" * 257}},
        {"region": "eu-west-1", "tags": {"k" * 129: "v"}},
        {"region": "eu-west-1", "tags": {"": "v"}},
        {"region": "eu-west-1", "tags": {"bad*char": "v"}},
        {"region": "eu-west-1", "tags": {f"k{i}": "v" for i in range(49)}},
    ],
)
def test_acm_settings_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AwsAcmSettings.model_validate(settings)


def test_acm_settings_accepted() -> None:
    settings = AwsAcmSettings.model_validate(
        {
            "region": "us-gov-west-1",
            "endpoint_url": "https://acm.us-gov-west-1.amazonaws.com",
            "tags": {"Name": "web server", "cost-center": "4711", "path": "a/b=c+d@e.f:g"},
        }
    )
    assert settings.timeout_seconds == 10
    assert AwsSettings.model_validate({"region": "cn-north-1"}).endpoint_url is None


@pytest.mark.parametrize(
    "settings",
    [
        {"region": "eu-west-1", "recovery_window_days": 6},
        {"region": "eu-west-1", "recovery_window_days": 31},
        {"region": "eu-west-1", "kms_key_id": ""},
        {"region": "eu-west-1", "tags": {}},
    ],
)
def test_secrets_settings_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AwsSecretsManagerSettings.model_validate(settings)


@pytest.mark.parametrize(
    "credentials",
    [
        {"access_key_id": ACCESS_KEY},
        {"secret_access_key": SECRET_KEY},
        {"session_token": "token"},
        {"access_key_id": "short", "secret_access_key": SECRET_KEY},
        {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "region": "x"},
    ],
)
def test_credentials_refused(credentials: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AwsCredentials.model_validate(credentials)


def test_credentials_accepted_and_never_shown() -> None:
    assert AwsCredentials.model_validate({}).uses_default_chain
    given = AwsCredentials.model_validate(
        {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "session_token": "tok"}
    )
    assert not given.uses_default_chain
    assert SECRET_KEY not in repr(given)
    assert SECRET_KEY not in given.model_dump_json()


def _client_error(code: str, status: int, message: str = "boom") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "ImportCertificate",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, TransientSyncError),
        ("TooManyRequestsException", 429, TransientSyncError),
        ("InternalFailure", 500, TransientSyncError),
        ("SomethingNew", 503, TransientSyncError),
        ("ConflictException", 409, TransientSyncError),
        ("AccessDeniedException", 400, PermanentSyncError),
        ("UnrecognizedClientException", 400, PermanentSyncError),
        ("InvalidClientTokenId", 403, PermanentSyncError),
        ("ExpiredTokenException", 400, PermanentSyncError),
        ("ValidationException", 400, PermanentSyncError),
        ("InvalidParameterException", 400, PermanentSyncError),
        ("LimitExceededException", 400, PermanentSyncError),
        ("ResourceInUseException", 400, PermanentSyncError),
        ("SomethingNew", 400, PermanentSyncError),
    ],
)
def test_client_errors_classified(code: str, status: int, expected: type[Exception]) -> None:
    error = to_sync_error(_client_error(code, status), "AWS ACM")
    assert type(error) is expected
    assert code in str(error)


def test_messages_carry_no_key_or_secret() -> None:
    key_pem = sync_item(_name()).private_key_pem
    assert key_pem is not None
    leaky = _client_error("ValidationException", 400, f"bad {key_pem} with {SECRET_KEY}")
    message = str(to_sync_error(leaky, "AWS ACM", [SECRET_KEY]))
    assert "PRIVATE KEY" not in message
    assert SECRET_KEY not in message
    assert "[PEM redacted]" in message

    quoted = ParamValidationError(
        report=f"Invalid type for parameter PrivateKey, value: {key_pem}, type: <class 'int'>"
    )
    message = str(to_sync_error(quoted, "AWS ACM"))
    assert "PrivateKey" in message
    assert "PRIVATE KEY" not in message
    assert isinstance(to_sync_error(quoted, "AWS ACM"), PermanentSyncError)


def test_non_aws_exceptions_are_not_classified() -> None:
    assert to_sync_error(KeyError("x"), "AWS ACM") is None
    assert isinstance(to_sync_error(ConnectionResetError(), "AWS ACM"), TransientSyncError)


async def test_calls_do_not_block_the_event_loop(moto: Moto) -> None:
    """While a push waits on a silent endpoint, the loop keeps running other work."""
    silent = await SilentServer().start()
    dest = _acm(moto, url=f"http://127.0.0.1:{silent.port}", timeout_seconds=0.5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(TransientSyncError):
            await dest.push(sync_item(_name()))
    finally:
        ticker.cancel()
        await dest.close()
        await silent.stop()
    assert ticks >= 10  # ~20 expected: the loop ran throughout
