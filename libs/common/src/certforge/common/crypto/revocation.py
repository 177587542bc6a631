"""CRLs and delegated OCSP responder certificates (RFC 5280 §5, RFC 6960 §4.2.2.2). Pure.

CRL entries carry a reasonCode extension except for `unspecified`, which RFC 5280 says
SHOULD be absent. The OCSP responder certificate is a short-lived leaf of the CA with only
id-kp-OCSPSigning and id-pkix-ocsp-nocheck, so relying parties need not check its revocation;
its key can live outside the issuer without exposing the CA key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from certforge.common.crypto.certificates import key_identifier, new_serial
from certforge.common.crypto.keys import PrivateKey, PublicKey, hash_algorithm, key_algorithm_of
from certforge.common.domain import RevocationReason, SignatureHash

REASON_FLAGS: dict[RevocationReason, x509.ReasonFlags] = {
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}


@dataclass(frozen=True)
class Revoked:
    serial_number: int
    revoked_at: datetime
    reason: RevocationReason


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    number: int,
    entries: Iterable[Revoked],
    this_update: datetime,
    next_update: datetime,
    signature_hash: SignatureHash | None = None,
) -> x509.CertificateRevocationList:
    """A complete CRL of `issuer`, numbered `number` (monotonic per CA)."""
    # All entries go to the constructor at once: the builder is immutable, and adding them
    # one by one copies the list each time (quadratic: minutes for 100,000 entries).
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=[_entry(e) for e in entries])
        .issuer_name(issuer.subject)
        .last_update(this_update.replace(microsecond=0))
        .next_update(next_update.replace(microsecond=0))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    algorithm = hash_algorithm(signature_hash, key_algorithm_of(issuer_key))
    return builder.sign(issuer_key, algorithm)


def _entry(entry: Revoked) -> x509.RevokedCertificate:
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial_number)
        .revocation_date(entry.revoked_at.replace(microsecond=0))
    )
    if entry.reason is not RevocationReason.UNSPECIFIED:
        revoked = revoked.add_extension(x509.CRLReason(REASON_FLAGS[entry.reason]), False)
    return revoked.build()


def crl_to_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def build_ocsp_responder(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    responder_key: PublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A delegated OCSP signing certificate for `issuer` (CN "<issuer CN> OCSP Responder")."""
    common_name = issuer.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    issuer_cn = str(common_name[0].value) if common_name else "CA"
    cn = f"{issuer_cn} OCSP Responder"[:64]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject)
        .public_key(responder_key)
        .serial_number(new_serial())
        .not_valid_before(not_before.replace(microsecond=0))
        .not_valid_after(not_after.replace(microsecond=0))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier(key_identifier(responder_key)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    algorithm = hash_algorithm(None, key_algorithm_of(issuer_key))
    return builder.sign(issuer_key, algorithm)
