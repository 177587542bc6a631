"""Key generation for the key pool, run in separate processes.

RSA generation is CPU-bound Python-visible work (≈ 50 ms for 2048 bits, seconds for 4096): on a
thread of the issuer it competes with the event loop for the GIL and the core, so a refill
delays the certificates being signed meanwhile. In a process of its own it does not. This
module is what those processes import: small, no database, no NATS.
"""

from __future__ import annotations

import os
import threading
import time

from certforge.common.crypto.keys import generate_private_key, private_key_to_der
from certforge.common.domain import KeyAlgorithm

PARENT_CHECK_SECONDS = 1.0


def generate_key_der(algorithm: KeyAlgorithm) -> bytes:
    """A new private key of `algorithm`, as the DER the pool encrypts and stores."""
    return private_key_to_der(generate_private_key(algorithm))


def exit_with_parent(parent: int) -> None:
    """Initializer of a key process: leave as soon as the issuer that started it is gone.

    A key process waits on a queue whose writing end it holds itself, so the death of a
    SIGKILLed issuer never reaches it: found by the fault suite, which left one orphaned key
    process (about 120 MB) per issuer it killed. `PR_SET_PDEATHSIG` would tie the process to
    the thread that started it, which for a process pool is not the issuer's main thread; a
    thread watching the parent's pid has no such catch."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
