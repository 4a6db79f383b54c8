"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from photostore.errors import PhotostoreError

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


def problem(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = {
        "type": f"https://photostore.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def from_error(error: PhotostoreError, headers: dict[str, str] | None = None) -> Response:
    if error.retry_after_s is not None:
        headers = {**(headers or {}), "retry-after": str(error.retry_after_s)}
    return problem(error.status, error.code, error.title, error.detail, headers)


def answer_error(request: Request, exc: PhotostoreError, headers: dict[str, str] | None = None) -> Response:
    """The problem response for ``exc``: counted in the error metrics, logged when it is a 5xx."""
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is not None:
        ctx.metrics.error(exc.code)
    if exc.status >= 500:
        log.error("request failed: %s", exc.detail)
    return from_error(exc, headers)
