"""Active health checks: every region endpoint's ``/readyz``, all at once, every ``probe_interval_s``."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from photostore.regions.health import EndpointHealth
from photostore.regions.router import RegionRouter
from photostore.settings import HealthSettings

log = logging.getLogger(__name__)


class HealthProber:
    def __init__(self, router: RegionRouter, settings: HealthSettings, client: httpx.AsyncClient) -> None:
        self._endpoints = [endpoint for region in router.regions for endpoint in region.health.endpoints]
        self._settings = settings
        self._client = client

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
        try:
            response = await self._client.get(
                f"{endpoint.url}/readyz", timeout=self._settings.probe_timeout_s
            )
        except httpx.HTTPError as exc:
            endpoint.probe_failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            if response.status_code == 200:
                endpoint.probe_ok(time.perf_counter() - started)
            else:
                endpoint.probe_failed(f"/readyz answered {response.status_code}")
        if endpoint.healthy != was_healthy:
            state = "up" if endpoint.healthy else "down"
            log.warning("region endpoint %s is %s: %s", endpoint.url, state, endpoint.status().reason)
