"""Settings of the renewer (`CERTFORGE_…`)."""

from __future__ import annotations

from certforge.common.settings import CommonSettings


class RenewerSettings(CommonSettings):
    pass
