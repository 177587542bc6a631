"""`certforge-renewer`: finds certificates due for renewal and emits renew commands."""

from __future__ import annotations

import asyncio

from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker
from certforge.renewer.settings import RenewerSettings


def build(settings: RenewerSettings) -> Worker:
    return Worker("renewer", settings)


def main() -> None:
    settings = RenewerSettings.load()
    configure_logging("renewer", settings.log_level)
    asyncio.run(build(settings).run())
