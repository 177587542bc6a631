"""A key generator for the key pool's processes that waits for the test's word.

It runs in the pool's spawned process (so it lives in an importable module, not in a test):
it writes its process id beside `gate`, waits until `gate` exists, then generates. A test
thereby holds a refill under way for as long as it likes, without timing anything.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from certforge.common.domain import KeyAlgorithm
from certforge.issuer.keygen import generate_key_der


def gated_key_der(gate: str, algorithm: KeyAlgorithm) -> bytes:
    Path(f"{gate}.pid").write_text(str(os.getpid()))
    while not Path(gate).exists():
        time.sleep(0.02)
    return generate_key_der(algorithm)
