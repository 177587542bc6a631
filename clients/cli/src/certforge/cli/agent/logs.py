"""The agent's log lines on stderr: text for a terminal, JSON (one object a line) for journald,
Loki and friends. Fields passed as `extra` (certificate, certificate_id, serial, failures)
become JSON keys. Nothing secret is ever logged: tokens and keys never reach a log call."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_FIELDS = ("certificate", "certificate_id", "serial", "failures")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            if hasattr(record, name):
                document[name] = getattr(record, name)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document)


def setup(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("certforge.agent")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
