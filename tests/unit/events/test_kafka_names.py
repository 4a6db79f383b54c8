"""Names on the broker under a namespace, and back."""

from __future__ import annotations

from photostore.events._kafka_names import WireNames


def test_without_a_namespace_names_are_unchanged() -> None:
    names = WireNames()
    assert names.topic("photo-upload") == "photo-upload"
    assert names.group("dispatch") == "dispatch"
    assert names.local_group("anything.else") == "anything.else"


def test_a_namespace_prefixes_topics_and_groups_and_only_its_groups_are_ours() -> None:
    names = WireNames("staging")
    assert names.topic("photo-upload") == "staging.photo-upload"
    assert names.group("dispatch") == "staging.dispatch"
    assert names.local_group("staging.dispatch") == "dispatch"
    assert names.local_group("prod.dispatch") is None
    assert names.local_group("dispatch") is None
    assert names.local_group("staging.") is None
    assert names.local_group("stagingx.dispatch") is None
