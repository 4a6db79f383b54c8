"""A TCP relay that adds a fixed delay to every reply: a real server behind a slower network path.

Used to give one real replica a higher round-trip time than another, so the latency selector has a
true difference to measure. It runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    try:
        while chunk := await reader.read(65536):
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await writer.wait_closed()


@asynccontextmanager
async def delay_proxy(target_port: int, delay_s: float) -> AsyncIterator[int]:
    """Listen on a free 127.0.0.1 port (yielded) and relay to ``target_port``, replies ``delay_s`` late."""
    tasks: set[asyncio.Task[None]] = set()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        both = [
            asyncio.create_task(_pipe(client_reader, server_writer, 0)),
            asyncio.create_task(_pipe(server_reader, client_writer, delay_s)),
        ]
        tasks.update(both)
        await asyncio.gather(*both)
        tasks.difference_update(both)

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
