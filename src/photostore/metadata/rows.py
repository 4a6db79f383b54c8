"""Conversions between domain records and table rows (the only place that knows both shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from photostore.domain import (
    ApiKey,
    NewEvent,
    OutboxRecord,
    Photo,
    PhotoChanges,
    PhotoStatus,
    ResumableUpload,
    Scope,
    User,
    Variant,
)
from photostore.ids import placement_key_of

Row = dict[str, Any]


def user_row(user: User) -> Row:
    return {
        "id": user.id,
        "name": user.name,
        "created_at": user.created_at,
        "placement_key": placement_key_of(user.id),
    }


def to_user(row: RowMapping) -> User:
    return User(id=row["id"], name=row["name"], created_at=row["created_at"])


def api_key_row(key: ApiKey) -> Row:
    return {
        "key_id": key.key_id,
        "user_id": key.user_id,
        "secret_sha256": key.secret_sha256,
        "scopes": " ".join(sorted(scope.value for scope in key.scopes)),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def to_api_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        user_id=row["user_id"],
        secret_sha256=bytes(row["secret_sha256"]),
        scopes=frozenset(Scope(name) for name in row["scopes"].split()),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def photo_row(photo: Photo) -> Row:
    return {
        "id": photo.id,
        "user_id": photo.owner_id,
        "filename": photo.filename,
        "bucket": photo.bucket,
        "storage_path": photo.storage_path,
        "sha256": photo.sha256,
        "bytes": photo.bytes,
        "format": photo.format,
        "content_type": photo.content_type,
        "width": photo.width,
        "height": photo.height,
        "taken_at": photo.taken_at,
        "exif": photo.exif,
        "placeholder": photo.placeholder,
        "status": photo.status.value,
        "created_at": photo.created_at,
        "updated_at": photo.updated_at,
        "deleted_at": photo.deleted_at,
        "idempotency_key": photo.idempotency_key,
        "last_accessed_at": photo.last_accessed_at,
    }


def to_photo(row: RowMapping) -> Photo:
    return Photo(
        id=row["id"],
        owner_id=row["user_id"],
        filename=row["filename"],
        bucket=row["bucket"],
        storage_path=row["storage_path"],
        sha256=row["sha256"],
        bytes=row["bytes"],
        format=row["format"],
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        status=PhotoStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        taken_at=row["taken_at"],
        exif=row["exif"],
        placeholder=row["placeholder"],
        deleted_at=row["deleted_at"],
        idempotency_key=row["idempotency_key"],
        last_accessed_at=row["last_accessed_at"],
    )


def changes_row(changes: PhotoChanges) -> Row:
    """Only the columns the worker set: ``None`` leaves a column as it is."""
    values: Row = {
        "width": changes.width,
        "height": changes.height,
        "taken_at": changes.taken_at,
        "exif": changes.exif,
        "placeholder": changes.placeholder,
        "status": None if changes.status is None else changes.status.value,
    }
    return {name: value for name, value in values.items() if value is not None}


def variant_row(variant: Variant) -> Row:
    return {
        "photo_id": variant.photo_id,
        "name": variant.name,
        "bucket": variant.bucket,
        "storage_path": variant.storage_path,
        "format": variant.format,
        "content_type": variant.content_type,
        "width": variant.width,
        "height": variant.height,
        "bytes": variant.bytes,
        "sha256": variant.sha256,
        "created_at": variant.created_at,
    }


def to_variant(row: RowMapping) -> Variant:
    return Variant(
        photo_id=row["photo_id"],
        name=row["name"],
        bucket=row["bucket"],
        storage_path=row["storage_path"],
        format=row["format"],
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        bytes=row["bytes"],
        sha256=row["sha256"],
        created_at=row["created_at"],
    )


def outbox_row(event: NewEvent, created_at: datetime) -> Row:
    return {
        "event_id": event.event_id,
        "topic": event.topic,
        "key": event.key,
        "payload": event.payload,
        "created_at": created_at,
    }


def to_outbox_record(shard_id: int, row: RowMapping) -> OutboxRecord:
    event = NewEvent(topic=row["topic"], key=row["key"], payload=row["payload"], event_id=row["event_id"])
    return OutboxRecord(seq=row["seq"], shard_id=shard_id, event=event, created_at=row["created_at"])


def upload_row(upload: ResumableUpload) -> Row:
    return {
        "id": upload.id,
        "user_id": upload.owner_id,
        "upload_length": upload.length,
        "upload_offset": upload.offset,
        "upload_metadata": upload.metadata,
        "filename": upload.filename,
        "storage": upload.storage,
        "photo_id": upload.photo_id,
        "lease_token": upload.lease_token,
        "lease_until": upload.lease_until,
        "created_at": upload.created_at,
        "expires_at": upload.expires_at,
    }


def to_upload(row: RowMapping) -> ResumableUpload:
    return ResumableUpload(
        id=row["id"],
        owner_id=row["user_id"],
        length=row["upload_length"],
        offset=row["upload_offset"],
        metadata=row["upload_metadata"],
        filename=row["filename"],
        storage=dict(row["storage"]),
        photo_id=row["photo_id"],
        lease_token=row["lease_token"],
        lease_until=row["lease_until"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
