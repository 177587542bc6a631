"""The one error of the dev stack's own making."""

from __future__ import annotations

__all__ = ["DevStackError"]


class DevStackError(RuntimeError):
    """A problem the developer must fix; printed without a traceback."""
