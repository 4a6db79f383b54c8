"""The serving benchmark's floor: a bare Starlette route returning the same bytes from memory."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_BODY = Path(os.environ["BENCH_BARE_FILE"]).read_bytes()


async def thumb(request: Request) -> Response:
    return Response(_BODY, media_type="image/webp")


app = Starlette(routes=[Route("/thumb.webp", thumb)])
