"""Active health checks: every region endpoint's ``/readyz``, all at once, every ``probe_interval_s``."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from photostore.regions.health import EndpointHealth
from photostore.regions.router import RegionRouter
from photostore.settings import HealthSettings

log = logging.getLogger(__name__)


class HealthProber:
    def __init__(
        self, router: RegionRouter, settings: HealthSettings, session: aiohttp.ClientSession
    ) -> None:
        self._endpoints = [endpoint for region in router.regions for endpoint in region.health.endpoints]
        self._settings = settings
        self._session = session

    async def probe_once(self) -> None:
        await asyncio.gather(*(self._probe(endpoint) for endpoint in self._endpoints))

    async def run(self) -> None:
        while True:
            try:
                await self.probe_once()
            except Exception:  # a bug here must not stop every later probe (regions would never return)
                log.exception("probing the regions failed")
            await asyncio.sleep(self._settings.probe_interval_s)

    async def _probe(self, endpoint: EndpointHealth) -> None:
        was_healthy = endpoint.healthy
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=self._settings.probe_timeout_s)
        try:
            async with self._session.get(f"{endpoint.url}/readyz", timeout=timeout) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            endpoint.probe_failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            if status == 200:
                endpoint.probe_ok(time.perf_counter() - started)
            else:
                endpoint.probe_failed(f"/readyz answered {status}")
        if endpoint.healthy != was_healthy:
            state = "up" if endpoint.healthy else "down"
            log.warning("region endpoint %s is %s: %s", endpoint.url, state, endpoint.status().reason)
