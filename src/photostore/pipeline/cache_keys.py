"""Names of cache entries, in one place so writers invalidate exactly what readers fill."""

from __future__ import annotations

import uuid


def photo_view(photo_id: uuid.UUID) -> str:
    return f"photo:{photo_id}"


def photo_view_text(photo_id_text: str) -> str:
    """The same key from an id as text; only the canonical lower-case form finds the entry."""
    return f"photo:{photo_id_text}"


def blob(bucket: str, key: str) -> str:
    return f"blob:{bucket}/{key}"
