"""Decrypted CA keys kept in memory for the issuer's lifetime, keyed by CA id and ciphertext.

Decrypting and parsing a CA key costs more than signing with it; the issuer signs thousands of
certificates with a handful of CAs. Keying by the ciphertext too means a re-wrapped or replaced
key is picked up at once.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from cryptography import x509

from certforge.common.crypto.certificates import key_identifier_of, load_certificate_pem
from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import PrivateKey
from certforge.common.db.tables import CertificateAuthority
from certforge.issuer.ca_keys import unseal


class Signer:
    """A CA ready to sign: its key, certificate and the pieces a leaf refers to."""

    def __init__(self, ca: CertificateAuthority, key: PrivateKey) -> None:
        self.key = key
        self.certificate: x509.Certificate = load_certificate_pem(ca.certificate_pem)
        self.name = self.certificate.subject
        self.key_id = key_identifier_of(self.certificate)


class SignerCache:
    def __init__(self, ca_keys: KeyRing, max_entries: int = 256) -> None:
        self._ca_keys = ca_keys
        self._max = max_entries
        self._signers: dict[tuple[UUID, bytes], Signer] = {}

    def signer(self, ca: CertificateAuthority) -> Signer:
        cache_key = (ca.id, hashlib.sha256(ca.encrypted_private_key).digest())
        signer = self._signers.get(cache_key)
        if signer is None:
            if len(self._signers) >= self._max:
                self._signers.pop(next(iter(self._signers)))
            signer = Signer(ca, unseal(self._ca_keys, ca))
            self._signers[cache_key] = signer
        return signer
