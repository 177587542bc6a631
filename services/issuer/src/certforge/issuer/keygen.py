"""Key generation for the key pool, run in separate processes.

RSA generation is CPU-bound Python-visible work (≈ 50 ms for 2048 bits, seconds for 4096): on a
thread of the issuer it competes with the event loop for the GIL and the core, so a refill
delays the certificates being signed meanwhile. In a process of its own it does not. This
module is what those processes import: small, no database, no NATS.
"""

from __future__ import annotations

from certforge.common.crypto.keys import generate_private_key, private_key_to_der
from certforge.common.domain import KeyAlgorithm


def generate_key_der(algorithm: KeyAlgorithm) -> bytes:
    """A new private key of `algorithm`, as the DER the pool encrypts and stores."""
    return private_key_to_der(generate_private_key(algorithm))
