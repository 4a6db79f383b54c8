"""The spec's ScalingRule, evaluated without ever sleeping.

The spec's ``EvaluateRules`` sleeps for a rule's cooldown after acting, which stops every other
rule for that long. Here each rule remembers when it last acted and is skipped until its cooldown
has passed; the loop itself never waits. A service's replicas stay within its limits, and at most
one rule acts on a service per evaluation (the first that fires, in settings order).

The spec's ScaleConsumers (lag above 10,000 and fewer than 50 consumers: add 5; lag below 1,000
and more than 5: remove 2) is the pair of rules :func:`consumer_rules` makes, with those bounds as
the worker service's limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from photostore.settings import AutoscaleSettings, ReplicaLimits, ScalingRuleSettings

CONSUMER_LAG = "consumer_lag"


@dataclass(frozen=True, slots=True)
class Decision:
    """What one rule concluded in one evaluation."""

    rule: ScalingRuleSettings
    value: float | None  # None: the metric could not be read
    replicas: int
    target: int
    outcome: Literal["scaled", "cooling_down", "at_limit", "not_triggered", "no_metric", "service_busy"]

    @property
    def acted(self) -> bool:
        return self.outcome == "scaled"

    def as_json(self) -> dict[str, object]:
        return {
            "service": self.rule.service,
            "metric": self.rule.metric,
            "value": self.value,
            "threshold": self.rule.threshold,
            "action": self.rule.action,
            "replicas": self.replicas,
            "target": self.target,
            "outcome": self.outcome,
        }


def should_scale(rule: ScalingRuleSettings, value: float) -> bool:
    """The spec's shouldScale: up above the threshold, down below it."""
    return value > rule.threshold if rule.action == "scale_up" else value < rule.threshold


def consumer_rules(settings: AutoscaleSettings) -> tuple[list[ScalingRuleSettings], dict[str, ReplicaLimits]]:
    """ScaleConsumers as two rules on the consumer lag, and its consumer bounds as limits."""
    consumers = settings.consumers
    if not consumers.enabled:
        return [], {}
    steps = (
        ("scale_up", consumers.scale_up_lag, consumers.add),
        ("scale_down", consumers.scale_down_lag, consumers.remove),
    )
    rules = [
        ScalingRuleSettings(
            service=consumers.service,
            metric=CONSUMER_LAG,
            threshold=threshold,
            action=action,
            count=count,
            cooldown_s=consumers.cooldown_s,
        )
        for action, threshold, count in steps
    ]
    limits = ReplicaLimits(min_replicas=consumers.min_consumers, max_replicas=consumers.max_consumers)
    return rules, {consumers.service: limits}


@dataclass
class RuleBook:
    rules: Sequence[ScalingRuleSettings]
    limits: Mapping[str, ReplicaLimits]
    clock: Callable[[], float] = time.monotonic
    _last_acted: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: AutoscaleSettings, clock: Callable[[], float] = time.monotonic
    ) -> RuleBook:
        extra_rules, extra_limits = consumer_rules(settings)
        # Explicit limits in settings win over the consumer bounds.
        return cls([*settings.rules, *extra_rules], {**extra_limits, **settings.limits}, clock)

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(rule.service for rule in self.rules))

    def limits_of(self, service: str) -> ReplicaLimits:
        return self.limits.get(service, ReplicaLimits(min_replicas=0, max_replicas=1_000_000))

    def evaluate(
        self, values: Mapping[tuple[str, str], float | None], replicas: Mapping[str, int]
    ) -> list[Decision]:
        """One pass over the rules. ``values`` maps (service, metric) to its reading; ``replicas``
        is each service's current count. Rules that act are stamped with the time."""
        now = self.clock()
        decisions: list[Decision] = []
        busy: set[str] = set()
        for index, rule in enumerate(self.rules):
            current = replicas.get(rule.service, 0)
            value = values.get((rule.service, rule.metric))
            outcome, target = self._judge(index, rule, value, current, now, busy)
            if outcome == "scaled":
                self._last_acted[index] = now
                busy.add(rule.service)
            decisions.append(Decision(rule, value, current, target, outcome))
        return decisions

    def _judge(
        self,
        index: int,
        rule: ScalingRuleSettings,
        value: float | None,
        current: int,
        now: float,
        busy: set[str],
    ) -> tuple[
        Literal["scaled", "cooling_down", "at_limit", "not_triggered", "no_metric", "service_busy"], int
    ]:
        if value is None:
            return "no_metric", current
        if not should_scale(rule, value):
            return "not_triggered", current
        if rule.service in busy:
            return "service_busy", current
        last = self._last_acted.get(index)
        if last is not None and now - last < rule.cooldown_s:
            return "cooling_down", current
        limits = self.limits_of(rule.service)
        step = rule.count if rule.action == "scale_up" else -rule.count
        target = min(limits.max_replicas, max(limits.min_replicas, current + step))
        if target == current:
            return "at_limit", current
        return "scaled", target
