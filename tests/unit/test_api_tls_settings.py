"""The api's own TLS settings (`CERTFORGE_TLS_CERT_FILE` / `CERTFORGE_TLS_KEY_FILE`): both or
neither, and a pair that loads, checked when the settings are built so a wrong file stops the
api at start-up with one line naming the variables (never the key), instead of an api that
serves plain HTTP where clients expect HTTPS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr, ValidationError

from certforge.api.settings import ApiSettings
from certforge.common.settings import settings_errors

LEAF_KEKS = SecretStr("unit:" + "A" * 43 + "=")


def _write_pair(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_no_tls_files_means_plain_http() -> None:
    settings = ApiSettings(leaf_keks=LEAF_KEKS, api_port=8080)
    assert not settings.tls_enabled
    assert settings.base_url == "http://127.0.0.1:8080"


def test_a_pair_that_loads_turns_https_on(tmp_path: Path) -> None:
    cert, key = _write_pair(tmp_path, "server")
    settings = ApiSettings(leaf_keks=LEAF_KEKS, api_port=8443, tls_cert_file=cert, tls_key_file=key)
    assert settings.tls_enabled
    assert settings.base_url == "https://127.0.0.1:8443"
    public = ApiSettings(
        leaf_keks=LEAF_KEKS, tls_cert_file=cert, tls_key_file=key, public_url="https://ca.example/"
    )
    assert public.base_url == "https://ca.example"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("fail/cert-only", "must be set together"),
        ("fail/key-only", "must be set together"),
        ("fail/missing-file", "cannot be used: No such file or directory"),
        ("fail/key-of-another-certificate", "cannot be used"),
        ("fail/not-pem", "cannot be used"),
    ],
)
def test_a_bad_tls_configuration_is_one_line_without_the_key(
    tmp_path: Path, case: str, expected: str
) -> None:
    cert, key = _write_pair(tmp_path, "server")
    _, other_key = _write_pair(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    files: dict[str, dict[str, Path]] = {
        "fail/cert-only": {"tls_cert_file": cert},
        "fail/key-only": {"tls_key_file": key},
        "fail/missing-file": {"tls_cert_file": tmp_path / "absent.pem", "tls_key_file": key},
        "fail/key-of-another-certificate": {"tls_cert_file": cert, "tls_key_file": other_key},
        "fail/not-pem": {"tls_cert_file": garbage, "tls_key_file": key},
    }
    with pytest.raises(ValidationError) as raised:
        ApiSettings(leaf_keks=LEAF_KEKS, **files[case])  # type: ignore[arg-type]
    lines = settings_errors(raised.value)
    assert len(lines) == 1, lines
    assert expected in lines[0]
    assert "CERTFORGE_TLS_CERT_FILE" in lines[0]
    assert "PRIVATE KEY" not in lines[0]
    assert key.read_text().splitlines()[1] not in lines[0]
