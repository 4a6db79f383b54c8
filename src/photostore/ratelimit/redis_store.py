"""GCRA in Redis: one key per API key holding its TAT, updated by one Lua script (atomic, and on a
single key, so it runs unchanged on Redis Cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from photostore.errors import BackendUnavailable
from photostore.ratelimit.gcra import Policy, Verdict

# KEYS[1]: the key; ARGV: now_ms, interval_ms, tolerance_ms, cost. Returns {allowed, retry_after_ms}.
GCRA_SCRIPT = """
local tat = tonumber(redis.call('GET', KEYS[1]))
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
if tat == nil or tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, 0}
"""


class RedisGcra:
    def __init__(
        self, client: Redis | RedisCluster, policy: Policy, *, key_prefix: str, call_timeout_s: float
    ) -> None:
        self.policy = policy
        self._client = client
        self._prefix = key_prefix
        self._timeout_s = call_timeout_s
        self._script: Any = client.register_script(GCRA_SCRIPT)

    async def take(self, key: str, cost: int, now_ms: float) -> Verdict:
        args = [now_ms, self.policy.interval_ms, self.policy.tolerance_ms, cost]
        try:
            allowed, retry_after = await asyncio.wait_for(
                self._script(keys=[self._prefix + key], args=args), self._timeout_s
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"rate limit store: {type(exc).__name__}: {exc}") from exc
        return Verdict(bool(allowed), int(retry_after))

    async def close(self) -> None:
        await self._client.aclose()
