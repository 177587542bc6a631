"""A managed key is handed out as its stored PKCS#8 DER in PEM armour (issue 17: no parsing on
the issuance path): byte for byte what parsing and serialising it gives, for every key type
Certforge issues."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from certforge.api.domain.certificates import pkcs8_pem
from certforge.common.crypto.keys import (
    generate_private_key,
    load_stored_private_key,
    private_key_to_der,
    private_key_to_pkcs8_pem,
)
from certforge.common.domain import KeyAlgorithm


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=lambda a: f"ok/{a.value}")
def test_ok_the_armoured_der_is_what_serialising_the_key_gives(algorithm: KeyAlgorithm) -> None:
    der = private_key_to_der(generate_private_key(algorithm))
    pem = pkcs8_pem(der)
    assert pem == private_key_to_pkcs8_pem(load_stored_private_key(der))
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    assert private_key_to_der(loaded) == der  # type: ignore[arg-type]
