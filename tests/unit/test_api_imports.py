"""The api validates sync destinations with the pure models of `certforge.common.destinations`:
building its app must not load any cloud SDK (each costs memory, start-up time and attack
surface in a process that never talks to a destination)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SDKS = ("boto3", "botocore", "azure", "kubernetes", "hvac")

PROBE = textwrap.dedent(
    """
    import json, sys
    from pydantic import SecretStr
    import certforge.api.main
    from certforge.api.app import create_app
    from certforge.api.settings import ApiSettings

    settings = ApiSettings(leaf_keks=SecretStr("probe:" + "A" * 43 + "="))
    create_app(settings).openapi()
    roots = sorted({name.split(".")[0] for name in sys.modules})
    print(json.dumps(roots))
    """
)


def test_building_the_api_app_loads_no_destination_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "certforge" in loaded  # the probe really imported the api
    assert loaded.isdisjoint(SDKS), sorted(loaded & set(SDKS))
