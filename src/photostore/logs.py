"""Logging: plain lines for a terminal, or one JSON object per line for a log pipeline.

``log_format = "json"`` gives ``{"ts", "level", "logger", "message", "service", "region",
"request_id"}`` (plus ``exc`` with the traceback when there is one). The request id is the one
the API answers in ``X-Request-ID``, so a client's complaint leads to its log lines; it is carried
in a context variable for the request's duration, through every await.
"""

from __future__ import annotations

import contextvars
import logging
import time

import orjson

from photostore.settings import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, region: str) -> None:
        super().__init__()
        self._service = service
        self._region = region

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self._service,
            "region": self._region,
            "request_id": request_id.get(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(settings: Settings, service: str) -> None:
    """Set the root logger's level and format for this process (again in each server worker)."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(service, settings.regions.local or "local"))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
