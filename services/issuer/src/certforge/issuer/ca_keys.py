"""CA private keys at rest: PKCS#8 DER encrypted under the CA key ring, bound to the CA's id.

Binding the ciphertext to the row (AES-GCM associated data = CA id) means a key blob copied
onto another CA's row does not decrypt.
"""

from __future__ import annotations

from uuid import UUID

from certforge.common.crypto.envelope import KeyRing
from certforge.common.crypto.keys import PrivateKey, load_stored_private_key, private_key_to_der
from certforge.common.db.tables import CertificateAuthority


def seal(ring: KeyRing, ca_id: UUID, key: PrivateKey) -> tuple[bytes, str]:
    return ring.encrypt(private_key_to_der(key), ca_id.bytes), ring.active_kid


def unseal(ring: KeyRing, ca: CertificateAuthority) -> PrivateKey:
    return load_stored_private_key(ring.decrypt(ca.encrypted_private_key, ca.id.bytes))
