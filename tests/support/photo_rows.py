"""A photo's metadata row for tests that need one without uploading a file."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from photostore.domain import Photo, PhotoStatus


def jpeg_row(
    photo_id: uuid.UUID,
    owner_id: uuid.UUID,
    created_at: datetime,
    *,
    sha256: str | None = None,
    **fields: Any,
) -> Photo:
    """A JPEG's row, created (and last updated) at ``created_at``, still processing; ``fields``
    replace any other default. ``sha256`` None: a random one, so rows never deduplicate."""
    defaults: dict[str, Any] = {
        "filename": "a.jpg",
        "bucket": "photos-0",
        "storage_path": f"photos/{photo_id}",
        "bytes": 1000,
        "format": "JPEG",
        "content_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "status": PhotoStatus.PROCESSING,
        "updated_at": created_at,
    }
    return Photo(
        id=photo_id,
        owner_id=owner_id,
        created_at=created_at,
        sha256=sha256 or secrets.token_hex(32),
        **{**defaults, **fields},
    )
