"""Object keys, as the spec lays them out: ``photos/YYYY/MM/DD/<photo_id>``, derivatives beside.

The date comes from the photo id's timestamp (UTC), so any photo id yields its keys with no lookup.
Derivatives sit beside the original as ``<photo_id>.<variant>.<ext>`` rather than under a
``<photo_id>/`` prefix, because on a local filesystem a path cannot be both a file and a folder.
"""

from __future__ import annotations

import uuid

from photostore.ids import created_at_of

_EXTENSIONS = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif", "PNG": "png"}


def date_prefix(photo_id: uuid.UUID) -> str:
    day = created_at_of(photo_id)
    return f"photos/{day.year:04d}/{day.month:02d}/{day.day:02d}"


def original_key(photo_id: uuid.UUID) -> str:
    return f"{date_prefix(photo_id)}/{photo_id}"


def variant_key(photo_id: uuid.UUID, variant: str, image_format: str) -> str:
    ext = _EXTENSIONS.get(image_format.upper(), image_format.lower())
    return f"{date_prefix(photo_id)}/{photo_id}.{variant}.{ext}"


def storage_url(bucket: str, key: str) -> str:
    """The spec's storage_path form: ``s3://<bucket>/<key>``."""
    return f"s3://{bucket}/{key}"


def parse_object_key(key: str) -> tuple[uuid.UUID, str] | None:
    """The photo id and object name ("original" or the variant's) of a key this module made; None
    for any other key."""
    name = key.rsplit("/", 1)[-1]
    try:
        photo_id = uuid.UUID(name[:36])
    except ValueError:
        return None
    rest = name[36:]
    if not rest:
        return photo_id, "original"
    variant = rest[1:].split(".", 1)[0]
    return (photo_id, variant) if rest.startswith(".") and variant else None
