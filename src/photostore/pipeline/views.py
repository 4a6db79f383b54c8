"""The JSON shape of a photo, as the API returns it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from photostore.domain import Photo, Variant
from photostore.imaging.exif import strip_location


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def photo_json(photo: Photo, variants: Iterable[Variant], *, include_location: bool) -> dict[str, Any]:
    exif = photo.exif
    if exif is not None and not include_location:
        exif = strip_location(exif)
    base = f"/v1/photos/{photo.id}"
    return {
        "id": str(photo.id),
        "filename": photo.filename,
        "sha256": photo.sha256,
        "bytes": photo.bytes,
        "width": photo.width,
        "height": photo.height,
        "format": photo.format,
        "content_type": photo.content_type,
        "status": photo.status.value,
        "taken_at": _iso(photo.taken_at),
        "created_at": _iso(photo.created_at),
        "updated_at": _iso(photo.updated_at),
        "exif": exif,
        "placeholder": photo.placeholder,
        "original_url": f"{base}/original",
        "variants": {
            v.name: {
                "format": v.format,
                "content_type": v.content_type,
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "sha256": v.sha256,
                "url": f"{base}/variants/{v.name}",
            }
            for v in variants
        },
    }
