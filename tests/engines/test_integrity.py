"""``audit`` and ``gc`` on the stores of both modes (SQLite + folders; PostgreSQL + SeaweedFS).

The audit reads every object, finds the ones whose bytes were changed under their rows, moves them
to the quarantine with a report, and remembers them on the next audit. gc deletes exactly the
objects no live row names that are older than the grace period: the leftovers of a crashed upload,
of a crashed variant write and of a delete whose cleanup never ran; it keeps the young ones, the
keys photostore never writes, and every object a live row names.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from photostore.blobs.paths import original_key, variant_key
from photostore.ids import make_id, placement_key_of
from photostore.integrity.audit import audit
from photostore.integrity.gc import collect
from photostore.integrity.quarantine import Quarantine
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import verify_objects
from tests.support.photo_library import Library, library_fixtures, seed_library

# The names of test_bucket_moves_sigkill.py's buckets: the bucket tests' SeaweedFS has a volume
# for 16 buckets in all, and every test empties its buckets after itself.
MAP = BucketMap.create(2, prefix="kills-")
QUARANTINE = "kills-3"

shard_databases, spec, library = library_fixtures(MAP, [*MAP.buckets, QUARANTINE])


async def test_audit_quarantines_changed_bytes_and_remembers_them(library: Library) -> None:
    seeded = await seed_library(library, users=3, photos_per_user=4)
    quarantine = Quarantine(library.blobs, QUARANTINE)
    clean = await audit(library.metadata, library.blobs, quarantine, MAP)
    assert clean.whole
    assert (clean.photos, clean.objects) == (12, 36)

    (photo, _), (other, other_variants) = seeded[0], seeded[5]
    original_bytes = await library.blobs.get(photo.bucket, photo.storage_path)
    rotten = bytearray(original_bytes)
    rotten[len(rotten) // 2] ^= 0x01  # one flipped bit
    await library.blobs.put(photo.bucket, photo.storage_path, bytes(rotten))
    thumb = other_variants[0]
    await library.blobs.put(thumb.bucket, thumb.storage_path, b"short")  # truncated

    found = await audit(library.metadata, library.blobs, quarantine, MAP)
    assert not found.whole
    assert sorted((r.photo_id, r.object) for r in found.quarantined_now) == sorted(
        [(str(photo.id), "original"), (str(other.id), thumb.name)]
    )
    by_object = {r.object: r for r in found.quarantined_now}
    assert by_object["original"].expected_sha256 == photo.sha256
    assert by_object["original"].found_sha256 != photo.sha256
    assert by_object["original"].detected_by == "audit"
    # Out of its place, kept in the quarantine byte for byte, with the report listed.
    assert await library.blobs.get(QUARANTINE, f"{photo.bucket}/{photo.storage_path}") == bytes(rotten)
    assert await quarantine.holds(photo.bucket, photo.storage_path)
    assert len([r async for r in quarantine.records()]) == 2
    report = await verify_objects(library.metadata, library.blobs, MAP, checksums=False)
    assert {(p.photo_id, p.kind.value) for p in report.problems} == {
        (photo.id, "missing"),
        (other.id, "missing"),
    }

    again = await audit(library.metadata, library.blobs, quarantine, MAP)
    assert again.quarantined_now == ()
    assert {(p.photo_id, p.object) for p in again.quarantined_before} == {
        (photo.id, "original"),
        (other.id, thumb.name),
    }
    assert again.missing == ()
    assert not again.whole


async def test_gc_deletes_old_orphans_only(library: Library) -> None:
    seeded = await seed_library(library, users=2, photos_per_user=5)
    rng = random.Random(7)
    owner = seeded[0][0].owner_id
    # A crashed upload: the original put, the row never written.
    lost = make_id(placement_key_of(owner))
    lost_bucket = MAP.bucket_for(lost)
    await library.blobs.put(lost_bucket, original_key(lost), rng.randbytes(300))
    # A crashed variant write of a live photo: a variant object no row names.
    live, _ = seeded[1]
    await library.blobs.put(live.bucket, variant_key(live.id, "huge", "WEBP"), rng.randbytes(200))
    # A delete whose cleanup never ran: the rows say deleted, the objects are still there.
    gone, gone_variants = seeded[2]
    await library.metadata.delete_photo(gone.owner_id, gone.id, [])
    # Not a key photostore writes: never touched.
    await library.blobs.put(MAP.buckets[0], "notes/readme.txt", b"hello")
    expected = {
        (lost_bucket, original_key(lost)),
        (live.bucket, variant_key(live.id, "huge", "WEBP")),
        (gone.bucket, gone.storage_path),
        *((v.bucket, v.storage_path) for v in gone_variants),
    }

    # Within the grace period everything is kept.
    young = await collect(
        library.metadata,
        library.blobs,
        MAP.buckets,
        now=datetime.now(UTC),
        grace=timedelta(hours=1),
        dry_run=False,
    )
    assert (young.orphans, young.young, young.foreign, young.deleted) == (0, len(expected), 1, 0)

    later = datetime.now(UTC) + timedelta(hours=2)
    dry = await collect(
        library.metadata, library.blobs, MAP.buckets, now=later, grace=timedelta(hours=1), dry_run=True
    )
    assert (dry.orphans, dry.deleted) == (len(expected), 0)
    assert {tuple(e.split("/", 1)) for e in dry.examples} == expected
    before = await library.stored_objects()
    assert expected <= before

    done = await collect(
        library.metadata, library.blobs, MAP.buckets, now=later, grace=timedelta(hours=1), dry_run=False
    )
    assert done.deleted == len(expected)
    after = await library.stored_objects()
    assert after == before - expected
    assert after - {(MAP.buckets[0], "notes/readme.txt")} == await library.named_objects()
    assert (await verify_objects(library.metadata, library.blobs, MAP, checksums=True)).clean
