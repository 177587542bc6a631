"""Building, encoding and checking X.509 certificates, for CAs and leaves alike.

`build_certificate` is the one place a certificate is made, so RFC 5280's rules live here and
nowhere else: serial, version 3, key identifiers, critical basic constraints and key usage,
critical SAN for an empty subject, and revocation pointers for issued (never self-signed)
certificates. It refuses templates that would produce a certificate `pkilint` or a relying
party rejects, rather than signing them: a bad signature is forever, a refusal is a 422.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from certforge.common.crypto.keys import (
    PrivateKey,
    PublicKey,
    hash_algorithm,
    key_algorithm_of,
)
from certforge.common.crypto.names import san_to_general_name, subject_to_name
from certforge.common.domain import (
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    SignatureHash,
    SubjectFields,
)
from certforge.common.errors import InvalidInput, Unprocessable
from certforge.common.name_constraints import NameConstraints
from certforge.common.profile_extensions import DEFAULT_EXTENSIONS, ProfileExtensions, SkiMethod
from certforge.common.template import CertificateTemplate

SERIAL_BITS = 159
"""Serial numbers are at most 20 octets (RFC 5280 4.1.2.2); 159 bits keeps them positive."""

_MIN_SERIAL_BITS = 64
"""CA/B Forum asks for at least 64 bits of CSPRNG output; below that a serial looks predictable."""

_EKU_OIDS = {
    ExtendedKeyUsage.SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsage.CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH,
    ExtendedKeyUsage.CODE_SIGNING: ExtendedKeyUsageOID.CODE_SIGNING,
    ExtendedKeyUsage.EMAIL_PROTECTION: ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ExtendedKeyUsage.TIME_STAMPING: ExtendedKeyUsageOID.TIME_STAMPING,
    ExtendedKeyUsage.OCSP_SIGNING: ExtendedKeyUsageOID.OCSP_SIGNING,
}

CA_DEFAULT_KEY_USAGES = (KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN)
"""digitalSignature lets a CA key also sign OCSP responses directly."""

# Key usages a key type can honour (RFC 8017/4055, RFC 5480 section 3, RFC 8410 section 5).
_SIGNING = {
    KeyUsage.DIGITAL_SIGNATURE,
    KeyUsage.CONTENT_COMMITMENT,
    KeyUsage.KEY_CERT_SIGN,
    KeyUsage.CRL_SIGN,
}
_ALLOWED_USAGES = {
    "RSA": _SIGNING | {KeyUsage.KEY_ENCIPHERMENT, KeyUsage.DATA_ENCIPHERMENT},
    "EC": _SIGNING | {KeyUsage.KEY_AGREEMENT, KeyUsage.ENCIPHER_ONLY, KeyUsage.DECIPHER_ONLY},
    "ED25519": _SIGNING,
}


def new_serial(rng: Callable[[int], int] = secrets.randbits) -> int:
    """A positive, non-zero serial of up to 159 random bits (fits RFC 5280's 20 octets)."""
    while True:
        serial = rng(SERIAL_BITS)
        if serial > 0:
            return serial


def key_identifier(
    public_key: CertificatePublicKeyTypes, method: SkiMethod = SkiMethod.SHA1
) -> bytes:
    """The key identifier of `public_key`: RFC 5280 4.2.1.2 method 1 (SHA-1 of the
    subjectPublicKey bits), or RFC 7093 method 1 (the leftmost 160 bits of their SHA-256) for
    profiles that must avoid SHA-1 anywhere."""
    if method is SkiMethod.SHA1:
        return x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    digest = hashes.Hash(hashes.SHA256())
    digest.update(_subject_public_key_bits(public_key))
    return digest.finalize()[:20]


def _subject_public_key_bits(public_key: CertificatePublicKeyTypes) -> bytes:
    """The BIT STRING subjectPublicKey of the key's SubjectPublicKeyInfo, without its tag,
    length and unused-bits octet (what both methods hash)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    at = _skip_header(spki, 0)  # into SEQUENCE
    at = _skip_header(spki, at) + _length(spki, at)  # past AlgorithmIdentifier
    bits = _skip_header(spki, at)
    return spki[bits + 1 : bits + _length(spki, at)]


def _skip_header(der: bytes, at: int) -> int:
    """Offset of the contents of the (low-tag) element at `at`."""
    first = der[at + 1]
    return at + 2 + (first & 0x7F if first & 0x80 else 0)


def _length(der: bytes, at: int) -> int:
    first = der[at + 1]
    if not first & 0x80:
        return first
    return int.from_bytes(der[at + 2 : at + 2 + (first & 0x7F)], "big")


def key_identifier_of(cert: x509.Certificate) -> bytes:
    """The certificate's own SKI when it has one (imported CAs may use another method), else
    the method-1 identifier of its key; this is what certificates it issues must put in AKI."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return key_identifier(cert.public_key())


def default_key_usages(template: CertificateTemplate) -> list[KeyUsage]:
    """The usages a template gets when it names none: CA usages, or a leaf default by key type
    (RSA may encrypt key transport for TLS 1.2 RSA key exchange; EC and Ed25519 only sign)."""
    if template.key_usages:
        return list(template.key_usages)
    if template.is_ca:
        return list(CA_DEFAULT_KEY_USAGES)
    if template.key_algorithm.is_rsa:
        return [KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT]
    return [KeyUsage.DIGITAL_SIGNATURE]


def _key_family(alg: KeyAlgorithm) -> str:
    if alg.is_rsa:
        return "RSA"
    return "EC" if alg.is_ec else "ED25519"


def usages_allowed_for(alg: KeyAlgorithm) -> frozenset[KeyUsage]:
    """Key usages that make sense for a key of `alg` (e.g. no key_encipherment for EC)."""
    return frozenset(_ALLOWED_USAGES[_key_family(alg)])


def check_template(template: CertificateTemplate) -> None:
    """Raise `Unprocessable` for whatever `build_certificate` would refuse about `template`,
    without a key: lets the api answer 422 before anything is queued."""
    _check_template(template, default_key_usages(template))


def _check_template(template: CertificateTemplate, usages: list[KeyUsage]) -> None:
    """Refuse what would make an invalid certificate; each message names the rule."""
    name = subject_to_name(template.subject)
    if template.is_ca and len(name) == 0:
        raise Unprocessable.on_field("subject", "a CA certificate needs a non-empty subject")
    if len(name) == 0 and not template.sans:
        raise Unprocessable.on_field("subject", "a certificate needs a subject or at least one SAN")
    if not template.is_ca and template.path_length is not None:
        raise Unprocessable.on_field("path_length", "only CA certificates take a path length")
    if template.is_ca and KeyUsage.KEY_CERT_SIGN not in usages:
        raise Unprocessable.on_field("key_usages", "a CA certificate needs key_cert_sign")
    if not template.is_ca and KeyUsage.KEY_CERT_SIGN in usages:
        raise Unprocessable.on_field(
            "key_usages", "key_cert_sign is only allowed in CA certificates"
        )
    family = _key_family(template.key_algorithm)
    refused = [usage.value for usage in usages if usage not in _ALLOWED_USAGES[family]]
    if refused:
        raise Unprocessable.on_field(
            "key_usages",
            f"{', '.join(refused)} cannot be used with a {template.key_algorithm.value} key",
        )
    if (
        KeyUsage.ENCIPHER_ONLY in usages or KeyUsage.DECIPHER_ONLY in usages
    ) and KeyUsage.KEY_AGREEMENT not in usages:
        raise Unprocessable.on_field(
            "key_usages", "encipher_only and decipher_only need key_agreement"
        )


def _key_usage_extension(usages: list[KeyUsage]) -> x509.KeyUsage:
    chosen = set(usages)
    return x509.KeyUsage(
        digital_signature=KeyUsage.DIGITAL_SIGNATURE in chosen,
        content_commitment=KeyUsage.CONTENT_COMMITMENT in chosen,
        key_encipherment=KeyUsage.KEY_ENCIPHERMENT in chosen,
        data_encipherment=KeyUsage.DATA_ENCIPHERMENT in chosen,
        key_agreement=KeyUsage.KEY_AGREEMENT in chosen,
        key_cert_sign=KeyUsage.KEY_CERT_SIGN in chosen,
        crl_sign=KeyUsage.CRL_SIGN in chosen,
        encipher_only=KeyUsage.ENCIPHER_ONLY in chosen,
        decipher_only=KeyUsage.DECIPHER_ONLY in chosen,
    )


def same_public_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    """Whether two public keys are the same key (compared by their DER SubjectPublicKeyInfo)."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(*spki) == b.public_bytes(*spki)


def build_certificate(
    template: CertificateTemplate,
    public_key: PublicKey,
    issuer_name: x509.Name,
    issuer_key: PrivateKey,
    issuer_key_id: bytes,
    serial: int,
    *,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    ca_issuers_url: str | None = None,
    name_constraints: NameConstraints | None = None,
    extensions: ProfileExtensions = DEFAULT_EXTENSIONS,
) -> x509.Certificate:
    """Sign `template` for `public_key` with `issuer_key`.

    `issuer_name` must be the issuer certificate's subject as decoded (so its encoding is
    preserved byte for byte) and `issuer_key_id` its SKI (`key_identifier_of(issuer_cert)`); a
    self-signed certificate is recognised by `issuer_key` matching `public_key` and then needs
    `issuer_name == subject`. Self-signed certificates never carry CRL or AIA pointers (they are
    trust anchors, nothing could check their revocation), so the URLs are ignored for them.
    `extensions` are the profile's: what it adds (policies, must-staple, custom extensions) and
    what it leaves out (AIA, CDP) or computes otherwise (the SKI method). They are validated
    when the profile is saved (`certforge.common.profile_extensions`), not here.
    Raises `Unprocessable` for a template that breaks RFC 5280 or does not match the key.
    """
    subject_alg = key_algorithm_of(public_key, field="public_key")
    if subject_alg is not template.key_algorithm:
        raise Unprocessable.on_field(
            "key_algorithm",
            f"template says {template.key_algorithm.value} but the key is {subject_alg.value}",
        )
    signer_alg = key_algorithm_of(issuer_key, field="issuer_key")
    algorithm = hash_algorithm(template.signature_hash, signer_alg)
    if not 0 < serial < 1 << SERIAL_BITS or serial.bit_length() < _MIN_SERIAL_BITS:
        raise ValueError("serial must be positive, at most 159 bits and at least 64 bits long")
    usages = default_key_usages(template)
    _check_template(template, usages)

    subject = subject_to_name(template.subject)
    self_signed = same_public_key(issuer_key.public_key(), public_key)
    if self_signed and issuer_name != subject:
        raise ValueError("a self-signed certificate's issuer name must equal its subject")
    ski = key_identifier(public_key, extensions.subject_key_identifier)

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(template.not_before.replace(microsecond=0))
        .not_valid_after(template.not_after.replace(microsecond=0))
        .add_extension(
            x509.BasicConstraints(
                ca=template.is_ca, path_length=template.path_length if template.is_ca else None
            ),
            critical=True,
        )
        .add_extension(_key_usage_extension(usages), critical=True)
    )
    if template.extended_key_usages:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [_EKU_OIDS[eku] for eku in dict.fromkeys(template.extended_key_usages)]
            ),
            critical=False,
        )
    builder = builder.add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier(
            key_identifier=ski if self_signed else issuer_key_id,
            authority_cert_issuer=None,
            authority_cert_serial_number=None,
        ),
        critical=False,
    )
    if template.sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([san_to_general_name(san) for san in template.sans]),
            # RFC 5280 4.2.1.6: with an empty subject the SAN carries the identity: critical.
            critical=len(subject) == 0,
        )
    if name_constraints is not None:
        if not template.is_ca:
            raise ValueError("only a CA certificate carries name constraints")
        builder = builder.add_extension(
            name_constraints.to_extension(), critical=name_constraints.critical
        )
    builder = _add_profile_extensions(builder, extensions)
    if not self_signed:
        if crl_url and extensions.crl_distribution_points:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        access = [
            x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
            for method, url in (
                (AuthorityInformationAccessOID.OCSP, ocsp_url),
                (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url),
            )
            if url
        ]
        if access and extensions.aia:
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder.sign(issuer_key, algorithm)


def _add_profile_extensions(
    builder: x509.CertificateBuilder, extensions: ProfileExtensions
) -> x509.CertificateBuilder:
    """Certificate policies and must-staple are non-critical (CA/B Forum BR 7.1.2; RFC 7633
    section 4), custom extensions as the profile says."""
    if extensions.certificate_policies:
        policies = [
            x509.PolicyInformation(
                x509.ObjectIdentifier(policy.oid),
                [
                    *([policy.cps_uri] if policy.cps_uri else []),
                    *([x509.UserNotice(None, policy.user_notice)] if policy.user_notice else []),
                ]
                or None,
            )
            for policy in extensions.certificate_policies
        ]
        builder = builder.add_extension(x509.CertificatePolicies(policies), critical=False)
    if extensions.must_staple:
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False
        )
    for custom in extensions.custom:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(custom.oid), custom.value.encode()),
            critical=custom.critical,
        )
    return builder


def extension_summaries(cert: x509.Certificate) -> list[tuple[str, str, bool]]:
    """(dotted OID, name, critical) of each extension, in the certificate's order; the name
    is cryptography's, or `unknown` for an OID it does not know (a profile's custom ones)."""
    return [
        (
            ext.oid.dotted_string,
            ext.oid._name if ext.oid._name != "Unknown OID" else "unknown",
            ext.critical,
        )
        for ext in cert.extensions
    ]


def ca_template(
    subject: SubjectFields,
    key_algorithm: KeyAlgorithm,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
    signature_hash: SignatureHash | None,
) -> CertificateTemplate:
    """The template of a CA certificate with the default CA key usages."""
    return CertificateTemplate(
        subject=subject,
        key_algorithm=key_algorithm,
        signature_hash=signature_hash,
        not_before=not_before,
        not_after=not_after,
        is_ca=True,
        path_length=path_length,
        key_usages=list(CA_DEFAULT_KEY_USAGES),
    )


def build_self_signed_ca(
    subject: SubjectFields,
    key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
    signature_hash: SignatureHash | None,
    *,
    serial: int | None = None,
    name_constraints: NameConstraints | None = None,
) -> x509.Certificate:
    """A root CA certificate; `serial` defaults to `new_serial()`."""
    template = ca_template(
        subject,
        key_algorithm_of(key, field="key"),
        not_before,
        not_after,
        path_length,
        signature_hash,
    )
    return build_certificate(
        template,
        key.public_key(),
        subject_to_name(subject),
        key,
        key_identifier(key.public_key()),
        new_serial() if serial is None else serial,
        name_constraints=name_constraints,
    )


def build_intermediate_ca(
    subject: SubjectFields,
    public_key: PublicKey,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
    signature_hash: SignatureHash | None,
    *,
    serial: int | None = None,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    ca_issuers_url: str | None = None,
    name_constraints: NameConstraints | None = None,
) -> x509.Certificate:
    """A subordinate CA certificate signed by `issuer_cert`'s key; `serial` defaults to new."""
    template = ca_template(
        subject,
        key_algorithm_of(public_key, field="public_key"),
        not_before,
        not_after,
        path_length,
        signature_hash,
    )
    return build_certificate(
        template,
        public_key,
        issuer_cert.subject,
        issuer_key,
        key_identifier_of(issuer_cert),
        new_serial() if serial is None else serial,
        crl_url=crl_url,
        ocsp_url=ocsp_url,
        ca_issuers_url=ca_issuers_url,
        name_constraints=name_constraints,
    )


def certificate_to_pem(cert: x509.Certificate) -> str:
    """PEM text with a trailing newline, as stored and served."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_to_der(cert: x509.Certificate) -> bytes:
    """DER bytes, e.g. for `application/pkix-cert` responses and AIA caIssuers."""
    return cert.public_bytes(serialization.Encoding.DER)


def load_certificate_chain_pem(
    text: str | bytes, *, field: str = "certificate_chain"
) -> list[x509.Certificate]:
    """Every `CERTIFICATE` block of `text`, in order; anything else in the text is refused.

    Refusing stray blocks (a private key pasted into a chain field) is safer than ignoring them.
    Errors never echo the input.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    begins = data.count(b"-----BEGIN ")
    if begins == 0:
        raise InvalidInput.on_field(field, "no PEM certificate found")
    if begins != data.count(b"-----BEGIN CERTIFICATE-----"):
        raise InvalidInput.on_field(field, "only CERTIFICATE PEM blocks are allowed")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput.on_field(field, "malformed or truncated PEM certificate") from None
    if len(certs) != begins:
        raise InvalidInput.on_field(field, "malformed or truncated PEM certificate")
    return certs


def load_certificate_pem(text: str | bytes, *, field: str = "certificate") -> x509.Certificate:
    """Exactly one certificate from PEM; `InvalidInput` on `field` otherwise (no echo)."""
    certs = load_certificate_chain_pem(text, field=field)
    if len(certs) != 1:
        raise InvalidInput.on_field(field, f"expected one certificate, found {len(certs)}")
    return certs[0]


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER, without colons (an index key and a display value)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_issued_by(cert: x509.Certificate, issuer_cert: x509.Certificate) -> bool:
    """Whether `issuer_cert` issued `cert`: issuer name matches and the signature verifies.

    Only the one link: validity, constraints and revocation are the path validator's job.
    """
    try:
        cert.verify_directly_issued_by(issuer_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def usages_of(cert: x509.Certificate) -> tuple[list[KeyUsage], list[ExtendedKeyUsage]]:
    """The key usages and extended key usages a certificate carries, as Certforge names them
    (what a renewal reproduces)."""
    usages: list[KeyUsage] = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        agreement = ku.key_agreement
        for usage in KeyUsage:
            if usage in (KeyUsage.ENCIPHER_ONLY, KeyUsage.DECIPHER_ONLY) and not agreement:
                continue  # cryptography refuses to read these without key_agreement
            if getattr(ku, usage.value):
                usages.append(usage)
    names = {oid: eku for eku, oid in _EKU_OIDS.items()}
    try:
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return usages, []
    return usages, [names[oid] for oid in ekus if oid in names]
