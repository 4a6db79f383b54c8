"""Active users: distinct users over the last window, counted from minute buckets."""

from __future__ import annotations

import uuid

from photostore.api.scaling_metrics import ActiveUsers


def test_active_users_counts_each_user_once_and_forgets_them_after_the_window() -> None:
    now = [0.0]
    active = ActiveUsers(window_s=300, clock=lambda: now[0])
    first, second = uuid.uuid4(), uuid.uuid4()
    active.seen(first)
    active.seen(first)
    active.seen(second)
    assert active.count() == 2
    now[0] = 200.0
    active.seen(first)  # first is back; second was last seen at 0
    assert active.count() == 2
    now[0] = 330.0  # the minute second was seen in has left the five-minute window
    assert active.count() == 1
    now[0] = 10_000.0
    assert active.count() == 0
