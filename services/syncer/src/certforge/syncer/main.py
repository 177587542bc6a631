"""`certforge-syncer`: pushes certificates to external stores when they change."""

from __future__ import annotations

import asyncio

from certforge.common.logs import configure_logging
from certforge.common.runtime import Worker
from certforge.syncer.settings import SyncerSettings


def build(settings: SyncerSettings) -> Worker:
    return Worker("syncer", settings)


def main() -> None:
    settings = SyncerSettings.load_or_exit("certforge-syncer")
    configure_logging("syncer", settings.log_level)
    asyncio.run(build(settings).run())
