"""The events the pipeline sends, and their wire form (JSON, keyed by photo id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from photostore.domain import NewEvent

TOPIC_UPLOAD = "photo-upload"
TOPIC_PROCESSING = "photo-processing"
TOPIC_THUMBNAILS = "thumbnail-generation"
# The pipeline's consumer groups, each on its topic, in stage order.
PIPELINE_GROUPS = (
    ("dispatch", TOPIC_UPLOAD),
    ("processing", TOPIC_PROCESSING),
    ("thumbnails", TOPIC_THUMBNAILS),
)

PHOTO_UPLOADED = "photo.uploaded"
PHOTO_DELETED = "photo.deleted"
PROCESS_PHOTO = "photo.process"
MAKE_THUMBNAILS = "photo.thumbnails"


@dataclass(frozen=True, slots=True)
class Message:
    event_id: uuid.UUID
    type: str
    photo_id: uuid.UUID
    owner_id: uuid.UUID


def photo_event(topic: str, kind: str, photo_id: uuid.UUID, owner_id: uuid.UUID) -> NewEvent:
    """An event about one photo, keyed by its id so a photo's events keep their order."""
    return NewEvent(
        topic=topic,
        key=str(photo_id),
        payload={"type": kind, "photo_id": str(photo_id), "owner_id": str(owner_id)},
    )


def encode(event: NewEvent) -> bytes:
    return orjson.dumps({"event_id": str(event.event_id), **event.payload})


def decode(value: bytes) -> Message:
    data = orjson.loads(value)
    return Message(
        event_id=uuid.UUID(data["event_id"]),
        type=data["type"],
        photo_id=uuid.UUID(data["photo_id"]),
        owner_id=uuid.UUID(data["owner_id"]),
    )
