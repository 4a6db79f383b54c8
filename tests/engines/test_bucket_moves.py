"""Bucket moves in both modes, the same scenarios on each: the embedded store (SQLite shards, bucket
folders) and the cluster's engines (PostgreSQL shard databases, SeaweedFS buckets).

Adding a bucket moves about 1/(N+1) of the objects, all to it; removing one empties it; a delete
racing a move leaves no orphan; a reader holding a row from before the switch still gets its bytes.
A missing engine skips the cluster cases, or fails them under CI=true.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path

import pytest

from photostore.blobs.s3 import S3BlobStore
from photostore.cache.memory import MemoryCache
from photostore.cache.tiered import TieredCache
from photostore.domain import Photo, Variant
from photostore.errors import BlobNotFound, ConfigError
from photostore.pipeline.reads import PhotoReader
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import BucketMover, MoveOutcome, verify_objects
from tests.support.photo_library import Library, bucket_moves_seaweedfs, library_fixtures, seed_library

GRACE_S = 0.2
# The same names in every test (their objects deleted after each): a SeaweedFS holds few buckets,
# and fixed names make the maps' split of the seeded library the same at every run.
OLD = BucketMap.create(3, prefix="moves-")
NEW_BUCKET = "moves-3"
ADDED = OLD.with_bucket_added(NEW_BUCKET)
Seeded = list[tuple[Photo, list[Variant]]]

shard_databases, spec, library = library_fixtures(OLD, ADDED.buckets)


def mover_of(library: Library, target: BucketMap, folder: Path, grace_s: float = GRACE_S) -> BucketMover:
    return BucketMover(library.metadata, library.blobs, target, folder / "journal", grace_s=grace_s)


def objects_of(photo: Photo, variants: list[Variant]) -> set[tuple[str, str]]:
    return {(photo.bucket, photo.storage_path)} | {(v.bucket, v.storage_path) for v in variants}


def keys_of(seeded: Seeded) -> set[str]:
    return {key for photo, variants in seeded for _, key in objects_of(photo, variants)}


def moving(seeded: Seeded, target: BucketMap) -> Seeded:
    return [(photo, variants) for photo, variants in seeded if target.bucket_for(photo.id) != photo.bucket]


async def assert_clean(library: Library, bucket_map: BucketMap) -> None:
    """Every object where its row says, checksums and all; no object that no live row names."""
    report = await verify_objects(library.metadata, library.blobs, bucket_map, checksums=True)
    assert report.problems == ()
    assert await library.stored_objects() == await library.named_objects()


async def test_adding_a_bucket_moves_about_one_in_n_plus_one_of_the_objects_all_to_it(
    library: Library, tmp_path: Path
) -> None:
    old, added, new_bucket = OLD, ADDED, NEW_BUCKET
    seeded = await seed_library(library, users=8, photos_per_user=6)
    mover = mover_of(library, added, tmp_path)

    plan = await mover.plan(previous=old)
    assert plan.ideal_share == pytest.approx(0.25, abs=0.001)
    assert plan.moved_share == pytest.approx(0.25, abs=0.15)  # 48 photos: sd 0.06 (ids and names fixed)
    assert {pair.target for pair in plan.pairs} == {new_bucket}
    result = await mover.run(plan=plan)

    assert result.complete
    assert result.objects_moved == plan.objects_to_move == 3 * len(moving(seeded, added))
    assert new_bucket in library.blobs.buckets()  # opened (S3: created) while running
    in_new = {key for bucket, key in await library.stored_objects() if bucket == new_bucket}
    assert in_new == keys_of(moving(seeded, added))
    await assert_clean(library, added)


async def test_removing_a_bucket_empties_it(library: Library, tmp_path: Path) -> None:
    old = OLD
    removed = old.with_bucket_removed(old.buckets[0])
    seeded = await seed_library(library, users=6, photos_per_user=4)
    assert [o async for o in library.blobs.list(old.buckets[0])]

    result = await mover_of(library, removed, tmp_path).run()

    assert result.complete
    assert result.objects_moved == 3 * len(moving(seeded, removed))
    assert [o async for o in library.blobs.list(old.buckets[0])] == []
    await assert_clean(library, removed)


async def test_a_delete_at_any_point_of_a_move_leaves_no_orphan(library: Library, tmp_path: Path) -> None:
    added = ADDED
    seeded = await seed_library(library, users=2, photos_per_user=10)
    gone_first, deleted_while_copying, deleted_after_switch = moving(seeded, added)[:3]
    mover = mover_of(library, added, tmp_path)

    async with mover.session() as session:
        # Deleted and its objects removed before the mover copies (it read the row just before).
        await library.delete(gone_first[0])
        assert await session.move_photo(*gone_first) is MoveOutcome.GONE
        # Deleted after the copy, before the switch; the photo.deleted handler runs later (events).
        await library.metadata.delete_photo(
            deleted_while_copying[0].owner_id, deleted_while_copying[0].id, []
        )
        assert await session.move_photo(*deleted_while_copying) is MoveOutcome.GONE
        # The switch was refused: the copies went, the sources wait for the handler.
        target = added.bucket_for(deleted_while_copying[0].id)
        stored = await library.stored_objects()
        assert objects_of(*deleted_while_copying) <= stored
        assert not {(target, key) for _, key in objects_of(*deleted_while_copying)} & stored
        await library.handlers().remove_objects(deleted_while_copying[0].id)
        # Deleted right after the switch: the handler removes the new copies, the mover the old.
        assert await session.move_photo(*deleted_after_switch) is MoveOutcome.MOVED
        await library.delete(deleted_after_switch[0])

    left = {key for _, key in await library.stored_objects()}
    assert not left & keys_of([gone_first, deleted_while_copying, deleted_after_switch])
    assert await library.stored_objects() == await library.named_objects()


async def test_deletes_racing_a_whole_run_leave_no_orphan(library: Library, tmp_path: Path) -> None:
    added = ADDED
    seeded = await seed_library(library, users=6, photos_per_user=5)
    doomed = moving(seeded, added)[::2] + [s for s in seeded if s not in moving(seeded, added)][:5]
    random.Random(4).shuffle(doomed)

    async def delete_while_moving() -> None:
        for photo, _ in doomed:
            await library.delete(photo)
            await asyncio.sleep(0.005)

    result, _ = await asyncio.gather(mover_of(library, added, tmp_path).run(), delete_while_moving())

    assert result.complete
    assert not {key for _, key in await library.stored_objects()} & keys_of(doomed)
    await assert_clean(library, added)


async def test_a_row_read_before_the_switch_still_finds_its_objects_after_it(
    library: Library, tmp_path: Path
) -> None:
    added = ADDED
    seeded = await seed_library(library, users=1, photos_per_user=12)
    photo, variants = moving(seeded, added)[0]
    original = await library.blobs.get(photo.bucket, photo.storage_path)
    reader = PhotoReader(
        library.metadata, library.blobs, TieredCache(MemoryCache(1 << 20, 10, 1 << 16)), False
    )
    before = await reader.view(photo.owner_id, photo.id)  # the row as read (and cached) before

    async with mover_of(library, added, tmp_path, grace_s=1.0).session() as session:
        assert await session.move_photo(photo, variants) is MoveOutcome.MOVED
        switched = await library.metadata.photo_and_variants(photo.id)
        assert switched is not None
        assert switched[0].bucket == added.bucket_for(photo.id) != photo.bucket
        # The cached view still names the old bucket: within the grace period its bytes are there.
        assert (await reader.view(photo.owner_id, photo.id)).blobs == before.blobs
        assert await reader.read_bytes(before.blobs["original"], cacheable=False) == original
        assert await reader.read_range(before.blobs["original"], 0, 10) == original[:10]
        thumb = before.blobs["thumb"]
        assert len(await reader.read_bytes(thumb, cacheable=True)) == thumb.size

    with pytest.raises(BlobNotFound):  # the grace period is over: the old copy is gone
        await library.blobs.get(photo.bucket, photo.storage_path)
    await reader.forget(photo.id)
    after = await reader.view(photo.owner_id, photo.id)
    assert after.blobs["original"].bucket == added.bucket_for(photo.id)
    assert await reader.read_bytes(after.blobs["original"], cacheable=False) == original


# --- S3: a bucket added while running ---------------------------------------------------------------


async def test_an_s3_bucket_added_while_running_is_created_and_usable() -> None:
    server = bucket_moves_seaweedfs()
    first, added = "added-0", "added-1"
    store = S3BlobStore.from_settings(server.s3_settings(), [first])
    await store.start()
    try:
        await store.add_bucket(added)
        await store.add_bucket(added)  # idempotent
        assert store.buckets() == [first, added]
        await store.put(added, "photos/2026/05/28/a", b"new bucket")
        assert await store.get(added, "photos/2026/05/28/a") == b"new bucket"
        with pytest.raises(ConfigError):
            await store.add_bucket("Not_A_Bucket")
        with pytest.raises(ConfigError):
            await store.add_bucket(added + "x", endpoint="elsewhere")
    finally:
        await store.close()
    # It exists on the server now: a store configured with it starts without creating anything.
    settings = server.s3_settings().model_copy(update={"create_buckets": False})
    again = S3BlobStore.from_settings(settings, [added])
    await again.start()
    assert await again.get(added, "photos/2026/05/28/a") == b"new bucket"
    await again.close()


async def test_an_s3_listing_shows_no_folder_emptied_by_deletes() -> None:
    # SeaweedFS lists such a folder as a zero-byte entry: an orphan check would count it.
    store = S3BlobStore.from_settings(bucket_moves_seaweedfs().s3_settings(), ["emptied-0"])
    await store.start()
    try:
        await store.put("emptied-0", "photos/2026/05/28/a", b"a")
        await store.put("emptied-0", "photos/2026/05/28/empty", b"")
        await store.delete("emptied-0", "photos/2026/05/28/a")
        assert [info.key async for info in store.list("emptied-0")] == ["photos/2026/05/28/empty"]
        await store.delete("emptied-0", "photos/2026/05/28/empty")
        assert [info.key async for info in store.list("emptied-0")] == []
    finally:
        await store.close()


# --- the MetadataStore methods the mover stands on ------------------------------------------------


async def test_live_photos_after_pages_by_id_with_variants_and_skips_deleted(library: Library) -> None:
    seeded = await seed_library(library, users=3, photos_per_user=4)
    await library.delete(seeded[0][0])
    expected = sorted((p.id, [v.name for v in vs]) for p, vs in seeded[1:])

    pages = []
    for shard_id in library.metadata.shard_ids():
        after = None
        while page := await library.metadata.live_photos_after(shard_id, after, 5):
            assert len(page) <= 5
            assert [p.id for p, _ in page] == sorted(p.id for p, _ in page)
            pages += [(p.id, [v.name for v in vs]) for p, vs in page]
            after = page[-1][0].id
    assert sorted(pages) == expected
    assert await library.metadata.live_photos_after(0, None, 0) == []


async def test_switch_buckets_moves_the_rows_only_while_they_are_as_read(library: Library) -> None:
    metadata = library.metadata
    seeded = await seed_library(library, users=1, photos_per_user=4)
    (photo, variants), (deleted, deleted_variants), (stale, stale_variants) = seeded[:3]
    target = next(b for b in ADDED.buckets if b != photo.bucket)

    # A variant read with another SHA-256 than its row has now: nothing is written.
    changed = [replace(v, sha256="0" * 64) if v.name == "thumb" else v for v in stale_variants]
    assert not await metadata.switch_buckets(stale, changed, target)
    assert await metadata.photo_and_variants(stale.id) == (stale, stale_variants)

    await library.delete(deleted)
    assert not await metadata.switch_buckets(deleted, deleted_variants, target)

    assert await metadata.switch_buckets(photo, variants, target)
    switched = await metadata.photo_and_variants(photo.id)
    assert switched is not None
    assert {o.bucket for o in [switched[0], *switched[1]]} == {target}
    assert switched[0].updated_at > photo.updated_at  # a shard move's catch-up sees the change
    # Read before the switch, so now stale: refused.
    other = next(b for b in ADDED.buckets if b not in (photo.bucket, target))
    assert not await metadata.switch_buckets(photo, variants, other)
    found = await metadata.photo_and_variants(deleted.id)
    assert found is not None
    assert found[0].deleted_at is not None  # any state
