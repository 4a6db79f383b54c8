"""The JSON schema of ``GET /v1/admin/stats`` (the operator dashboard's data), for the OpenAPI document."""

from __future__ import annotations

from typing import Any

_COUNT = {"type": "integer", "minimum": 0}
_COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
_MS_OR_NULL = {"type": ["number", "null"], "minimum": 0}
_ERROR = {
    "type": ["string", "null"],
    "description": "null when the section was read; else why not (engine down, no answer in time)",
}
_AGE = {"type": ["number", "null"], "minimum": 0, "description": "seconds since the figures were read"}
_LATENCY: dict[str, Any] = {
    "type": "object",
    "required": ["count", "p50_ms", "p95_ms", "p99_ms"],
    "properties": {"count": _COUNT, "p50_ms": _MS_OR_NULL, "p95_ms": _MS_OR_NULL, "p99_ms": _MS_OR_NULL},
}
_RATIO = {"type": ["number", "null"], "minimum": 0, "maximum": 1}


def _section(item: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    items: dict[str, Any] = {"type": "array", "items": item}
    if description:
        items["description"] = description
    return {
        "type": "object",
        "required": ["items", "age_s", "error"],
        "properties": {"items": items, "age_s": _AGE, "error": _ERROR},
    }


def _record(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


_SHARDS = _section(
    _record(
        shard=_COUNT,
        users=_COUNT,
        photos={**_COUNT, "description": "live photos"},
        bytes={**_COUNT, "description": "bytes of the live originals"},
        pending_outbox=_COUNT,
    )
)
_SHARDS["required"] += ["totals", "shard_map_version", "routing_version", "bucket_map_version"]
_SHARDS["properties"] |= {
    "totals": {**_record(users=_COUNT, photos=_COUNT, bytes=_COUNT), "type": ["object", "null"]},
    "shard_map_version": _COUNT,
    "routing_version": _COUNT,
    "bucket_map_version": _COUNT,
}
_GROUP = _record(
    group={"type": "string"},
    total=_COUNT,
    max=_COUNT,
    lag={"type": "array", "items": _COUNT, "description": "records not yet committed, by partition"},
)
_TOPIC = _record(
    topic={"type": "string"},
    partitions=_COUNT,
    retention_ms=_COUNT,
    records={**_COUNT, "description": "end offsets summed over partitions"},
    groups={"type": "array", "items": _GROUP},
)
_ENDPOINT = _record(
    url={"type": "string"}, healthy={"type": "boolean"}, reason={"type": "string"}, latency_ms=_MS_OR_NULL
)
_REGION = _record(
    name={"type": "string"},
    role={"enum": ["primary", "secondary"]},
    local={"type": "boolean"},
    healthy={"type": "boolean"},
    endpoints={"type": "array", "items": _ENDPOINT},
)
_BUCKETS_OF_PAIRS = {
    "type": "array",
    "description": "cumulative [upper bound ('+Inf' last), count] pairs",
    "items": {"type": "array", "prefixItems": [{"type": "string"}, _COUNT], "minItems": 2, "maxItems": 2},
}
_REQUESTS = _record(
    total=_COUNT,
    by_status_class={"type": "object", "additionalProperties": _COUNT},
    by_route={
        "type": "object",
        "description": "route template -> status class (2xx...) -> requests",
        "additionalProperties": {"type": "object", "additionalProperties": _COUNT},
    },
    latency={
        **_LATENCY,
        "required": [*_LATENCY["required"], "buckets"],
        "properties": {**_LATENCY["properties"], "buckets": _BUCKETS_OF_PAIRS},
    },
    latency_by_route={"type": "object", "additionalProperties": _LATENCY},
)
_CACHE_RATIO = _record(hits=_COUNT, misses=_COUNT, hit_ratio=_RATIO)

ADMIN_STATS: dict[str, Any] = {
    **_record(
        generated_at={"type": "string", "format": "date-time"},
        process=_record(service={"type": "string"}, region={"type": "string"}),
        shards=_SHARDS,
        buckets=_section(
            _record(
                bucket={"type": "string"},
                tier={"enum": ["hot", "cold"]},
                objects=_COUNT_OR_NULL,
                bytes=_COUNT_OR_NULL,
                error=_ERROR,
            )
        ),
        topics=_section(_TOPIC),
        cache={
            **_record(hits=_COUNT, misses=_COUNT, hit_ratio=_RATIO, shared=_CACHE_RATIO),
            "properties": {
                "hits": _COUNT,
                "misses": _COUNT,
                "hit_ratio": _RATIO,
                "shared": {**_CACHE_RATIO, "type": ["object", "null"]},
            },
        },
        regions=_section(_REGION, "empty when no regions are configured"),
        requests=_REQUESTS,
        uploads=_record(created=_COUNT, deduplicated=_COUNT),
        elapsed_ms={"type": "number", "minimum": 0},
    ),
    "description": "The operator dashboard's figures. requests, uploads and cache are this process's since "
    "it started; shards, buckets, topics and regions come from the engines, each read at most every few "
    "seconds (buckets every 30 s) and replaced by an error entry when an engine fails.",
}
