"""The one error of a check: an ACME problem type, a detail for the requester, and whether
trying again may help.

Only connection-level failures are `transient` (refused, reset, timed out, a DNS server that
failed or did not answer): they are retried a few times before the verdict. A wrong answer is
final at once: asking again would get the same answer.
"""

from __future__ import annotations

from typing import Any

from certforge.common.acme import ErrorType, problem

SHOWN = 120
"""How much of a peer's answer a detail quotes: enough to recognise it, never a whole page."""


class ValidationFailure(Exception):
    def __init__(self, error: ErrorType, detail: str, *, transient: bool = False) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.transient = transient

    def problem(self, identifier: dict[str, str]) -> dict[str, Any]:
        """The ACME problem document stored on the challenge and the order."""
        status = {ErrorType.UNAUTHORIZED: 403, ErrorType.SERVER_INTERNAL: 500}.get(self.error, 400)
        return problem(self.error, self.detail, status=status, identifier=identifier)


def quoted(text: str | bytes, limit: int = SHOWN) -> str:
    """`text` in double quotes, non-printable characters escaped, cut after `limit`
    characters with a note of the full length: a peer's answer quoted safely in a detail."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    shown = text[:limit].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    more = f"… ({len(text)} characters)" if len(text) > limit else ""
    return f'"{shown}"{more}'
