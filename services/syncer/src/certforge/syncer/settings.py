"""Settings of the syncer (`CERTFORGE_…`)."""

from __future__ import annotations

from certforge.common.settings import CommonSettings


class SyncerSettings(CommonSettings):
    pass
