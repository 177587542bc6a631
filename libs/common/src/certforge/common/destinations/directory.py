"""Settings of `directory`: an absolute directory of the syncer's host (no credentials)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

from certforge.common.destinations.spec import DestinationSpec


class DirectorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="absolute directory the syncer can write")

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not os.path.isabs(path) or "\x00" in path:
            raise ValueError("must be an absolute path")
        return os.path.normpath(path)


DIRECTORY = DestinationSpec("directory", DirectorySettings)
