"""The MetadataStore port.

Guarantees every implementation gives (the contract suite in tests/contract checks them):
- All rows of one user live on one shard, chosen by the user's placement key through the shard map;
  any user id or photo id therefore reaches its shard with no lookup.
- Each method is one transaction on one shard. ``insert_photo`` writes the photo row and its outbox
  events atomically; so do ``delete_photo`` and ``apply_photo_update``.
- (owner, sha256) is unique among a user's live photos: a second insert of the same bytes returns
  the existing photo and writes nothing.
- ``apply_photo_update`` is idempotent per (consumer, event id): a redelivered event changes nothing.
- ``list_photos`` pages by keyset on the photo id (ids sort by time), newest first.
- Outbox records are returned in per-shard sequence order until marked published.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from photostore.domain import (
    AccessBand,
    ApiKey,
    ApplyResult,
    NewEvent,
    OutboxRecord,
    Photo,
    PhotoChanges,
    ResumableUpload,
    ShardStats,
    User,
    Variant,
)


class MetadataStore(Protocol):
    async def start(self) -> None:
        """Open pools and apply migrations to every shard."""

    async def close(self) -> None: ...

    def shard_ids(self) -> Sequence[int]: ...

    # users and keys
    async def create_user(self, user: User) -> None: ...

    async def get_user(self, user_id: uuid.UUID) -> User | None: ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def get_api_key(self, user_id: uuid.UUID, key_id: str) -> ApiKey | None: ...

    async def list_api_keys(self, user_id: uuid.UUID) -> list[ApiKey]:
        """Every key of the user, revoked ones included, oldest first."""

    async def revoke_api_key(self, user_id: uuid.UUID, key_id: str) -> bool: ...

    # photos
    async def insert_photo(self, photo: Photo, events: Sequence[NewEvent]) -> tuple[Photo, bool]:
        """Insert ``photo`` and ``events``; on a live (owner, sha256) duplicate return the existing
        photo and False, writing nothing. A live photo of the owner with the same idempotency key
        but other bytes raises IdempotencyKeyReused."""

    async def get_photo(self, owner_id: uuid.UUID, photo_id: uuid.UUID) -> Photo | None:
        """The live photo, or None when unknown, deleted, or owned by someone else."""

    async def get_photo_by_sha256(self, owner_id: uuid.UUID, sha256: str) -> Photo | None: ...

    async def get_photo_by_idempotency_key(self, owner_id: uuid.UUID, key: str) -> Photo | None:
        """The live photo whose upload carried this Idempotency-Key."""

    async def list_photos(
        self, owner_id: uuid.UUID, limit: int, before: uuid.UUID | None = None
    ) -> list[Photo]:
        """Live photos of ``owner_id`` with id < ``before``, newest first, at most ``limit``."""

    async def delete_photo(
        self, owner_id: uuid.UUID, photo_id: uuid.UUID, events: Sequence[NewEvent]
    ) -> Photo | None:
        """Mark the photo deleted and write ``events``; None (and nothing written) if not live."""

    async def get_photo_any_state(self, photo_id: uuid.UUID) -> Photo | None:
        """The photo whatever its state (workers and the garbage collector use this)."""

    async def list_variants(self, photo_id: uuid.UUID) -> list[Variant]: ...

    async def variants_of(
        self, owner_id: uuid.UUID, photo_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Variant]]:
        """The variants of several photos of one owner (one query on the owner's shard), by photo;
        photos without variants are absent."""

    async def apply_photo_update(
        self,
        consumer: str,
        event_id: uuid.UUID,
        photo_id: uuid.UUID,
        changes: PhotoChanges,
        variants: Sequence[Variant],
        events: Sequence[NewEvent],
    ) -> ApplyResult:
        """In one transaction: unless (consumer, event_id) was processed or the photo is not live,
        set ``changes``, upsert ``variants``, append ``events`` and record the event as processed."""

    async def stalled_photos(self, shard_id: int, updated_before: datetime, limit: int) -> list[Photo]:
        """Live photos of ``shard_id`` still processing whose row last changed before
        ``updated_before``, oldest change first, at most ``limit`` (read on the primary)."""

    # outbox
    async def pending_outbox(self, shard_id: int, limit: int) -> list[OutboxRecord]: ...

    async def mark_published(self, shard_id: int, seqs: Sequence[int]) -> None: ...

    # operations
    async def shard_stats(self) -> list[ShardStats]: ...

    # --- bucket moves
    async def live_photos_after(
        self, shard_id: int, after: uuid.UUID | None, limit: int
    ) -> list[tuple[Photo, list[Variant]]]:
        """Live photos of ``shard_id`` with id > ``after`` (from the first when None), in id order,
        at most ``limit``, each with its variants by name: a keyset scan, one statement (one
        snapshot), on the primary."""

    async def photo_and_variants(self, photo_id: uuid.UUID) -> tuple[Photo, list[Variant]] | None:
        """The photo in any state with its variants, in one statement on the primary: what a bucket
        move decides by (a replica may still show a bucket the move has switched away from)."""

    async def switch_buckets(
        self, photo: Photo, variants: Sequence[Variant], to_bucket: str, *, move_original: bool = True
    ) -> bool:
        """In one transaction: if the photo is live and ready, and every object of ``photo`` and
        ``variants`` not already in ``to_bucket`` still has the row's bucket and SHA-256 given here,
        point those rows at ``to_bucket``, bump the photo's ``updated_at`` and return True;
        otherwise write nothing and return False. ``move_original=False`` leaves the photo row's
        bucket out of both the check and the switch.
        """

    # --- access tracking and tiering
    async def record_accesses(self, accesses: Mapping[uuid.UUID, datetime]) -> None:
        """Move each photo's ``last_accessed_at`` forward to the time given (never back); unknown
        photos are skipped. A hint: not fenced, ``updated_at`` untouched."""

    async def access_bands(
        self, shard_id: int, edges: Sequence[datetime], cold_buckets: Iterable[str]
    ) -> list[AccessBand]:
        """Live, ready originals of ``shard_id`` counted by band of last access (the upload time
        when never read; ``edges`` newest first) and by whether a cold bucket holds them."""

    # --- resumable uploads (tus); every read here is on the primary
    async def create_upload(self, upload: ResumableUpload) -> None: ...

    async def get_upload(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> ResumableUpload | None:
        """The upload of ``owner_id`` (expired or not); None when unknown or someone else's."""

    async def lease_upload(
        self,
        owner_id: uuid.UUID,
        upload_id: uuid.UUID,
        offset: int,
        token: str,
        now: datetime,
        until: datetime,
    ) -> bool:
        """Give the lease ``token`` until ``until`` if the upload is at ``offset``, has not become a
        photo, has not expired, and holds no lease still running at ``now``; else change nothing."""

    async def save_upload(
        self,
        owner_id: uuid.UUID,
        upload_id: uuid.UUID,
        token: str,
        offset: int,
        storage: Mapping[str, object],
        lease_until: datetime | None,
    ) -> bool:
        """Under the lease ``token``: record ``offset`` and ``storage``, and renew the lease to
        ``lease_until`` (None releases it). False (nothing written) when the lease is not held."""

    async def complete_upload(
        self, owner_id: uuid.UUID, upload_id: uuid.UUID, token: str, photo_id: uuid.UUID
    ) -> bool:
        """Under the lease ``token``: name the photo the upload became, set the offset to the
        length, release the lease. False (nothing written) when the lease is not held."""

    async def delete_upload(self, owner_id: uuid.UUID, upload_id: uuid.UUID) -> ResumableUpload | None:
        """Remove the upload's row and return it; None when there was none."""

    async def expired_uploads(self, shard_id: int, now: datetime, limit: int) -> list[ResumableUpload]:
        """Uploads of ``shard_id`` that expired before ``now``, oldest expiry first, at most ``limit``."""
