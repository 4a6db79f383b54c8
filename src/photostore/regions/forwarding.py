"""Passing one request on to a region: headers in and out, a body streamed once, and what may be retried.

A request may go to another region only while nothing of its body was sent: a refused connection
leaves the body unread, so even an upload fails over safely. Once bytes went out, only requests that
change nothing (GET, HEAD, OPTIONS) are tried again elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request

from photostore.regions.geo import forwarded_for

# RFC 9110 section 7.6.1: these describe one connection, not the message, so a proxy drops them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OnceBody:
    """The request body as an async iterator that remembers whether any of it was sent."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        async for chunk in self._request.stream():
            if chunk:
                yield chunk


def has_body(request: Request) -> bool:
    headers = request.headers
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


def upstream_headers(request: Request, client_host: str | None) -> list[tuple[str, str]]:
    """The request's headers for the region: hop-by-hop ones dropped, X-Forwarded-* appended."""
    named_by_connection = {
        token.strip().lower() for token in request.headers.get("connection", "").split(",") if token.strip()
    }
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in HOP_BY_HOP and name not in named_by_connection and name != "host"
    ]
    chain = forwarded_for(request.headers)
    if client_host:
        chain = f"{chain}, {client_host}" if chain else client_host
    headers = [(name, value) for name, value in headers if not name.startswith("x-forwarded-")]
    if chain:
        headers.append(("x-forwarded-for", chain))
    headers.append(("x-forwarded-proto", request.url.scheme))
    if "host" in request.headers:
        headers.append(("x-forwarded-host", request.headers["host"]))
    return headers


def downstream_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    named_by_connection = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in HOP_BY_HOP and name.lower() not in named_by_connection
    ]


def counts_as_failure(status: int, retry_after: str | None) -> bool:
    """A region's answer that says the region is failing (a 503 with Retry-After is a planned pause)."""
    if status == 503:
        return retry_after is None
    return status >= 500
