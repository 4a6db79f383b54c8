"""Read-your-writes bookkeeping: which users wrote in this process during the last ``window_s``.

Users are tracked by placement key, the part of every user id and photo id that names the owner's
placement, so a read that only knows a photo id still finds its owner's last write. Users who share
a placement key (rare: 32 bits) share the window, which only sends more reads to the primary.

Memory stays bounded by the writers of the last window: entries are kept in write order and expired
ones are dropped from the front on every call (amortised O(1)).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable

from photostore.ids import placement_key_of


class RecentWrites:
    """Remembers each placement key's last write time for ``window_s`` seconds."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, not {window_s}")
        self._window_s = window_s
        self._clock = clock
        self._last_write: OrderedDict[int, float] = OrderedDict()

    @property
    def window_s(self) -> float:
        return self._window_s

    def wrote(self, ids: Iterable[uuid.UUID]) -> None:
        """Record that the users owning ``ids`` (user or photo ids) just wrote."""
        if self._window_s == 0:
            return
        now = self._clock()
        for any_id in ids:
            key = placement_key_of(any_id)
            self._last_write[key] = now
            self._last_write.move_to_end(key)
        self._expire(now)

    def is_recent(self, any_id: uuid.UUID) -> bool:
        """True while the owner of ``any_id`` wrote less than ``window_s`` ago."""
        if not self._last_write:
            return False
        now = self._clock()
        self._expire(now)
        written = self._last_write.get(placement_key_of(any_id))
        return written is not None and now - written < self._window_s

    def __len__(self) -> int:
        return len(self._last_write)

    def _expire(self, now: float) -> None:
        while self._last_write:
            key, written = next(iter(self._last_write.items()))
            if now - written < self._window_s:
                return
            del self._last_write[key]
