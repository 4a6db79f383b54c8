"""Topic and group names on the broker: the logical names under an optional namespace.

Several deployments (staging beside production, or test tenants) can share one Kafka cluster: with
``events.kafka.namespace = "staging"`` topic ``photo-upload`` is ``staging.photo-upload`` on the
broker and group ``dispatch`` is ``staging.dispatch``. Everything above the event log keeps the
logical names; only the broker sees these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WireNames:
    namespace: str = ""

    def _wire(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def topic(self, name: str) -> str:
        return self._wire(name)

    def group(self, name: str) -> str:
        return self._wire(name)

    def local_group(self, wire: str) -> str | None:
        """The logical name of a group the broker lists, or None when it is another namespace's."""
        if not self.namespace:
            return wire
        prefix = self.namespace + "."
        return wire[len(prefix) :] if wire.startswith(prefix) and len(wire) > len(prefix) else None
