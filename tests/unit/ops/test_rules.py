"""Scaling rules and cooldowns: the spec's shouldScale, limits, and a cooldown that never sleeps."""

from __future__ import annotations

import pytest

from photostore.ops.rules import RuleBook, consumer_rules, should_scale
from photostore.settings import AutoscaleSettings, ConsumerScalingSettings, ReplicaLimits, ScalingRuleSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rule(
    action: str = "scale_up", threshold: float = 10, count: int = 2, cooldown_s: float = 30
) -> ScalingRuleSettings:
    return ScalingRuleSettings(
        service="worker",
        metric="consumer_lag",
        threshold=threshold,
        action=action,
        count=count,
        cooldown_s=cooldown_s,
    )


def book(*rules: ScalingRuleSettings, low: int = 1, high: int = 10) -> tuple[RuleBook, Clock]:
    clock = Clock()
    return RuleBook(list(rules), {"worker": ReplicaLimits(min_replicas=low, max_replicas=high)}, clock), clock


def test_should_scale_is_the_specs() -> None:
    assert should_scale(rule("scale_up", 10), 10.5)
    assert not should_scale(rule("scale_up", 10), 10)
    assert should_scale(rule("scale_down", 10), 9.5)
    assert not should_scale(rule("scale_down", 10), 10)


def test_a_rule_acts_then_waits_out_its_cooldown_without_blocking() -> None:
    rules, clock = book(rule(cooldown_s=30))
    first = rules.evaluate({("worker", "consumer_lag"): 50}, {"worker": 2})
    assert [(d.outcome, d.target) for d in first] == [("scaled", 4)]
    clock.now += 29.9
    assert [d.outcome for d in rules.evaluate({("worker", "consumer_lag"): 50}, {"worker": 4})] == [
        "cooling_down"
    ]
    clock.now += 0.1
    assert [
        (d.outcome, d.target) for d in rules.evaluate({("worker", "consumer_lag"): 50}, {"worker": 4})
    ] == [("scaled", 6)]


def test_each_rule_has_its_own_cooldown() -> None:
    up, down = rule("scale_up", 100, cooldown_s=60), rule("scale_down", 10, count=1, cooldown_s=5)
    rules, clock = book(up, down)
    assert [d.outcome for d in rules.evaluate({("worker", "consumer_lag"): 500}, {"worker": 2})] == [
        "scaled",
        "not_triggered",
    ]
    clock.now += 1  # the up rule cools down; the down rule has never acted and may act at once
    assert [d.outcome for d in rules.evaluate({("worker", "consumer_lag"): 0}, {"worker": 4})] == [
        "not_triggered",
        "scaled",
    ]


def test_limits_bound_the_target_and_stop_a_rule_at_the_edge() -> None:
    rules, _ = book(rule(count=5), high=7)
    assert [
        (d.outcome, d.target) for d in rules.evaluate({("worker", "consumer_lag"): 50}, {"worker": 4})
    ] == [("scaled", 7)]
    rules, _ = book(rule(count=5), high=7)
    assert [d.outcome for d in rules.evaluate({("worker", "consumer_lag"): 50}, {"worker": 7})] == [
        "at_limit"
    ]
    rules, _ = book(rule("scale_down", 10, count=3), low=2)
    assert [
        (d.outcome, d.target) for d in rules.evaluate({("worker", "consumer_lag"): 0}, {"worker": 3})
    ] == [("scaled", 2)]


def test_one_action_per_service_per_round_and_unknown_metrics_do_nothing() -> None:
    rules, _ = book(rule("scale_up", 10), rule("scale_up", 20, count=5))
    outcomes = [d.outcome for d in rules.evaluate({("worker", "consumer_lag"): 50}, {"worker": 2})]
    assert outcomes == ["scaled", "service_busy"]
    rules, _ = book(rule())
    assert [d.outcome for d in rules.evaluate({("worker", "consumer_lag"): None}, {"worker": 2})] == [
        "no_metric"
    ]


def test_scale_consumers_is_the_specs_rule() -> None:
    rules, limits = consumer_rules(AutoscaleSettings())
    assert [(r.action, r.threshold, r.count) for r in rules] == [
        ("scale_up", 10_000, 5),
        ("scale_down", 1_000, 2),
    ]
    assert limits["worker"] == ReplicaLimits(min_replicas=5, max_replicas=50)
    consumer_book = RuleBook.from_settings(AutoscaleSettings(), Clock())

    def target(lag: float, consumers: int) -> int:
        decisions = consumer_book.evaluate({("worker", "consumer_lag"): lag}, {"worker": consumers})
        consumer_book._last_acted.clear()  # each case on its own, without the cooldown between them
        return next((d.target for d in decisions if d.acted), consumers)

    assert target(10_001, 10) == 15  # lag > 10000 and consumers < 50: add 5
    assert target(10_001, 48) == 50  # ... up to 50
    assert target(10_001, 50) == 50
    assert target(999, 10) == 8  # lag < 1000 and consumers > 5: remove 2
    assert target(999, 6) == 5  # ... down to 5
    assert target(5_000, 10) == 10  # in between: nothing
    assert consumer_rules(AutoscaleSettings(consumers=ConsumerScalingSettings(enabled=False))) == ([], {})


def test_limits_refuse_a_minimum_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="above max_replicas"):
        ReplicaLimits(min_replicas=5, max_replicas=2)
