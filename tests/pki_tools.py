"""Outside judges for what Certforge builds: `openssl verify` and the `pkilint` RFC 5280 linter.

Tests assert with these rather than with our own code, so a bug in the builder cannot hide behind
the same bug in the check. pkilint runs in-process (same validators as `lint_pkix_cert lint`,
~5 ms a certificate once built); openssl runs as a subprocess.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkilint import loader, pkix, report
from pkilint.pkix import certificate, crl, extension, name
from pkilint.validation import ValidationFindingSeverity


def openssl_verify(
    root_pem: str,
    chain_pems: list[str],
    leaf_pem: str,
    *,
    at: datetime | None = None,
    crl_pems: list[str] | None = None,
    purpose: str | None = None,
) -> None:
    """Assert that `openssl verify -x509_strict` accepts `leaf_pem` up to `root_pem`.

    `chain_pems` are the untrusted intermediates; `at` checks validity at that instant
    (`-attime`), for certificates built on a fixed test clock; `crl_pems` turns on
    `-crl_check_all`; `purpose` is e.g. `sslserver`.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = folder / "root.pem"
        root.write_text(root_pem)
        leaf = folder / "leaf.pem"
        leaf.write_text(leaf_pem)
        args = ["openssl", "verify", "-x509_strict", "-CAfile", str(root)]
        if chain_pems:
            untrusted = folder / "untrusted.pem"
            untrusted.write_text("".join(chain_pems))
            args += ["-untrusted", str(untrusted)]
        if crl_pems:
            crls = folder / "crls.pem"
            crls.write_text("".join(crl_pems))
            args += ["-CRLfile", str(crls), "-crl_check_all"]
        if at is not None:
            args += ["-attime", str(int(at.timestamp()))]
        if purpose is not None:
            args += ["-purpose", purpose]
        args.append(str(leaf))
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, (
        f"openssl verify failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )


@functools.cache
def _certificate_validator() -> Any:
    # The same container `lint_pkix_cert lint` builds.
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


@functools.cache
def _crl_validator() -> Any:
    # The same container `lint_crl lint -p PKIX` builds (the -t type only matters for -p BR).
    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )


def _severity(level: str) -> ValidationFindingSeverity:
    return ValidationFindingSeverity[level.upper()]


def pkilint_findings(cert_pem: str, severity: str = "ERROR") -> str:
    """pkilint's plain-text report of findings at `severity` or worse; '' when there are none."""
    document = loader.RFC5280CertificateDocumentLoader().load_pem_document(cert_pem, "cert")
    results = _certificate_validator().validate(document.root)
    if report.get_findings_count(results, _severity(severity)) == 0:
        return ""
    text: str = report.ReportGeneratorPlaintext(results, _severity(severity)).generate()
    return text


def pkilint_errors(cert_pem: str) -> str:
    """What `lint_pkix_cert lint -s ERROR` reports for `cert_pem`; '' when it is clean."""
    return pkilint_findings(cert_pem, "ERROR")


def pkilint_crl_errors(crl_pem: str) -> str:
    """What `lint_crl lint -p PKIX -t CRL -s ERROR` reports; '' when the CRL is clean."""
    document = loader.RFC5280CertificateListDocumentLoader().load_pem_document(crl_pem, "crl")
    results = _crl_validator().validate(document.root)
    threshold = ValidationFindingSeverity.ERROR
    if report.get_findings_count(results, threshold) == 0:
        return ""
    text: str = report.ReportGeneratorPlaintext(results, threshold).generate()
    return text


def pkilint_cli_errors(cert_pem: str) -> str:
    """The real `lint_pkix_cert` command, to cross-check the in-process linter now and then."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(cert_pem)
        handle.flush()
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "lint_pkix_cert"),
                "lint",
                "-s",
                "ERROR",
                handle.name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return "" if result.returncode == 0 else (result.stdout + result.stderr)


def external_certificate(
    subject: str,
    key: Any,
    issuer: tuple[x509.Certificate, Any] | None,
    *,
    ca: bool,
    not_after: datetime | None = None,
    constraints: x509.NameConstraints | None = None,
    san: str | None = None,
) -> x509.Certificate:
    """A certificate made outside Certforge (an external CA to import, a leaf a key holder signs
    on its own): self-signed when `issuer` is None, else signed by `(issuer_cert, issuer_key)`."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=3650 if ca else 365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
