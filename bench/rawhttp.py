"""A minimal HTTP/1.1 load client on asyncio streams, so the client costs little CPU beside the
server on a 2-core machine (httpx would spend more CPU than the server measured)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class KeepAliveConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one complete request (headers + body); return (status, body)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(raw)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        body = await self._reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._writer = None


def post_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_concurrently(
    count: int, concurrency: int, make_request: Callable[[int], bytes], host: str, port: int
) -> list[int]:
    """Send ``count`` requests over ``concurrency`` keep-alive connections; return the statuses."""
    statuses: list[int] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        conn = KeepAliveConnection(host, port)
        try:
            while next_index < count:
                index = next_index
                next_index += 1
                status, _ = await conn.request(make_request(index))
                statuses.append(status)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses
