"""The spec's AutoScaler: every ``interval_s``, read the metrics, evaluate the rules, act.

Replicas first come within each service's limits (a local pool starts empty, so its minimum is
started at once); then each rule is judged (see :mod:`.rules`). ``dry_run`` judges and reports
but never acts. Every evaluation's decisions go to ``report``, so the CLI can print them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from photostore.errors import PhotostoreError
from photostore.ops.actuators import Actuator
from photostore.ops.metric_sources import MetricSource
from photostore.ops.rules import Decision, RuleBook

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Evaluation:
    at: float  # wall clock, seconds
    replicas: dict[str, int]  # before this evaluation acted
    decisions: list[Decision]
    applied: dict[str, int]  # service -> replicas it was scaled to (empty on a dry run)

    def as_json(self) -> dict[str, object]:
        return {
            "at": round(self.at, 3),
            "replicas": self.replicas,
            "decisions": [d.as_json() for d in self.decisions if d.outcome != "not_triggered"],
            "applied": self.applied,
        }


class Autoscaler:
    def __init__(
        self, rules: RuleBook, source: MetricSource, actuator: Actuator, *, dry_run: bool = False
    ) -> None:
        self.rules = rules
        self.source = source
        self.actuator = actuator
        self.dry_run = dry_run

    async def evaluate(self) -> Evaluation:
        at = time.time()
        services = self.rules.services
        replicas = {service: await self.actuator.replicas(service) for service in services}
        applied: dict[str, int] = {}
        for service in services:  # limits first: a pool below its minimum is filled before any rule
            limits = self.rules.limits_of(service)
            bounded = min(limits.max_replicas, max(limits.min_replicas, replicas[service]))
            if bounded != replicas[service] and not self.dry_run:
                await self.actuator.scale(service, bounded)
                applied[service] = bounded
        current = {service: applied.get(service, count) for service, count in replicas.items()}
        wanted = {(rule.service, rule.metric) for rule in self.rules.rules}
        values = await self.source.read(wanted)
        decisions = self.rules.evaluate(values, current)
        for decision in decisions:
            if decision.acted and not self.dry_run:
                await self.actuator.scale(decision.rule.service, decision.target)
                applied[decision.rule.service] = decision.target
        return Evaluation(at, replicas, decisions, applied)

    async def run(self, interval_s: float, report: Callable[[Evaluation], None], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report(await self.evaluate())
            except PhotostoreError as exc:  # a source or actuator is down: try again next round
                log.warning("autoscaler round failed: %s", exc.detail)
            with contextlib.suppress(TimeoutError):  # the interval passed without a stop
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
