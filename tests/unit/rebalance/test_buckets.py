"""The bucket mover on the embedded stores (SQLite shards, bucket folders): the plan, photos still
processing, corrupt sources, recovery from each step a crash can stop at, and verify_objects.

The races with deletes and reads, and the SIGKILL loop, run on both modes in tests/engines.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from photostore.domain import Photo, Variant
from photostore.errors import Conflict
from photostore.placement.bucket_map import BucketMap
from photostore.rebalance.buckets import (
    BucketMoveJournal,
    BucketMover,
    MoveOutcome,
    ProblemKind,
    verify_objects,
)
from tests.support.photo_library import (
    Library,
    add_photo,
    embedded_spec,
    make_ready,
    open_library,
    seed_library,
)

OLD = BucketMap.create(3, prefix="bkt-")
ADDED = OLD.with_bucket_added("bkt-3")
GRACE_S = 0.1


@pytest.fixture
async def library(tmp_path: Path) -> AsyncIterator[Library]:
    async with open_library(embedded_spec(tmp_path, OLD.buckets), OLD) as opened:
        yield opened


def mover_of(
    library: Library,
    target: BucketMap,
    folder: Path,
    *,
    grace_s: float = GRACE_S,
    processing_passes: int = 3,
    processing_wait_s: float = 0.05,
) -> BucketMover:
    return BucketMover(
        library.metadata,
        library.blobs,
        target,
        folder / "journal",
        grace_s=grace_s,
        processing_passes=processing_passes,
        processing_wait_s=processing_wait_s,
    )


def moving(seeded: list[tuple[Photo, list[Variant]]], target: BucketMap) -> list[tuple[Photo, list[Variant]]]:
    return [(photo, variants) for photo, variants in seeded if target.bucket_for(photo.id) != photo.bucket]


# --- the plan -------------------------------------------------------------------------------------


async def test_the_plan_of_an_added_bucket_moves_about_one_in_n_plus_one_and_only_to_it(
    library: Library, tmp_path: Path
) -> None:
    seeded = await seed_library(library, users=4, photos_per_user=15)
    before = await library.stored_objects()
    plan = await mover_of(library, ADDED, tmp_path).plan(previous=OLD)

    expected = moving(seeded, ADDED)
    assert plan.photos == 60
    assert plan.objects == 180
    assert plan.objects_to_move == 3 * len(expected)
    assert plan.bytes_to_move == sum(p.bytes + sum(v.bytes for v in vs) for p, vs in expected)
    assert {pair.target for pair in plan.pairs} == {"bkt-3"}
    assert {pair.source for pair in plan.pairs} <= set(OLD.buckets)
    assert plan.ideal_share == pytest.approx(0.25, abs=0.001)
    assert plan.moved_share == pytest.approx(
        plan.ideal_share, abs=0.12
    )  # 60 photos: sd 0.056 (the ids are fixed, so is the share)
    json.dumps(plan.to_dict())
    assert await library.stored_objects() == before  # a dry run


async def test_a_run_moves_what_the_plan_said_and_reports_progress(library: Library, tmp_path: Path) -> None:
    seeded = await seed_library(library, users=2, photos_per_user=8)
    mover = mover_of(library, ADDED, tmp_path)
    plan = await mover.plan()
    calls: list[tuple[int, int]] = []
    result = await mover.run(progress=lambda done, total: calls.append((done, total)), plan=plan)

    assert result.complete
    assert result.objects_moved == mover.counters.objects_moved == plan.objects_to_move > 0
    assert result.bytes_moved == mover.counters.bytes_moved == plan.bytes_to_move
    assert mover.counters.sources_deleted == plan.objects_to_move
    assert calls[-1] == (plan.objects_to_move, plan.objects_to_move)
    moved_keys = {p.storage_path for p, _ in moving(seeded, ADDED)}
    assert {key for bucket, key in await library.stored_objects() if bucket == "bkt-3"} >= moved_keys
    assert await library.stored_objects() == await library.named_objects()
    assert (await verify_objects(library.metadata, library.blobs, ADDED, checksums=True)).clean
    assert await (await _journal(tmp_path)).entries() == []


# --- photos still processing ---------------------------------------------------------------------


async def test_a_photo_still_processing_is_left_and_reported_then_moved_once_ready(
    library: Library, tmp_path: Path
) -> None:
    await seed_library(library, users=2, photos_per_user=5)
    photo = await _processing_photo_that_moves(library)
    mover = mover_of(library, ADDED, tmp_path, processing_passes=2)

    result = await mover.run()
    assert result.left_behind == {photo.id: MoveOutcome.PROCESSING}
    assert not result.complete
    row = await library.metadata.photo_and_variants(photo.id)
    assert row is not None
    assert row[0].bucket == photo.bucket  # untouched: its variants could be on their way there

    await make_ready(library, photo, random.Random(1))
    assert (await mover.run()).complete
    assert await library.stored_objects() == await library.named_objects()
    assert (await verify_objects(library.metadata, library.blobs, ADDED, checksums=True)).clean


async def test_a_photo_that_becomes_ready_during_the_run_is_moved_in_a_later_pass(
    library: Library, tmp_path: Path
) -> None:
    await seed_library(library, users=2, photos_per_user=10)
    photo = await _processing_photo_that_moves(library)
    started = asyncio.Event()
    mover = mover_of(library, ADDED, tmp_path, processing_passes=3, processing_wait_s=0.2)

    async def finish_processing() -> None:
        await started.wait()
        await make_ready(library, photo, random.Random(2))

    finisher = asyncio.create_task(finish_processing())
    result = await mover.run(progress=lambda done, total: started.set())
    await finisher

    assert result.complete
    row = await library.metadata.photo_and_variants(photo.id)
    assert row is not None
    assert {o.bucket for o in [row[0], *row[1]]} == {ADDED.bucket_for(photo.id)}
    assert await library.stored_objects() == await library.named_objects()


async def _processing_photo_that_moves(library: Library) -> Photo:
    """A photo still processing (original only) that ADDED places in bkt-3."""
    rng = random.Random(3)
    owner = (await seed_library(library, users=1, photos_per_user=1, seed=11))[0][0].owner_id
    while True:
        photo, _ = await add_photo(library, owner, rng, ready=False)
        if ADDED.bucket_for(photo.id) != photo.bucket:
            return photo
        await library.delete(photo)


# --- corrupt sources --------------------------------------------------------------------------------


async def test_a_source_that_fails_its_checksum_is_not_moved_and_is_reported(
    library: Library, tmp_path: Path
) -> None:
    seeded = await seed_library(library, users=2, photos_per_user=6)
    photo, _ = moving(seeded, ADDED)[0]
    await library.blobs.put(photo.bucket, photo.storage_path, b"rotten bytes")
    mover = mover_of(library, ADDED, tmp_path)

    result = await mover.run()

    assert [(f.photo_id, f.object, f.bucket) for f in result.failures] == [
        (photo.id, "original", photo.bucket)
    ]
    assert "SHA-256" in result.failures[0].reason
    assert mover.counters.checksum_failures == 1
    row = await library.metadata.photo_and_variants(photo.id)
    assert row is not None
    assert row[0].bucket == photo.bucket
    assert await library.stored_objects() == await library.named_objects()  # no copy left over
    report = await verify_objects(library.metadata, library.blobs, ADDED, checksums=True)
    kinds = sorted(p.kind for p in report.problems if p.photo_id == photo.id)
    assert kinds == sorted([ProblemKind.MISPLACED] * 3 + [ProblemKind.SIZE])
    assert {p.photo_id for p in report.problems} == {photo.id}


# --- recovery from every step a crash can stop at -----------------------------------------------


async def _journal(tmp_path: Path) -> BucketMoveJournal:
    journal = BucketMoveJournal(tmp_path / "journal")
    journal.open()
    return journal


STEPS = ["journaled", "partly_copied", "copied", "switched", "switch_recorded", "source_deleted"]


@pytest.mark.parametrize("step", STEPS)
async def test_a_move_stopped_at_any_step_is_settled_by_the_next_run(
    library: Library, tmp_path: Path, step: str
) -> None:
    seeded = await seed_library(library, users=2, photos_per_user=3)
    photo, variants = moving(seeded, ADDED)[0]
    target = ADDED.bucket_for(photo.id)
    objects = [(photo.storage_path, photo.bucket)] + [(v.storage_path, v.bucket) for v in variants]
    await library.blobs.add_bucket(target)

    # Leave the state a mover killed right after `step` leaves.
    journal = await _journal(tmp_path)
    await journal.record_copies(photo.id, [(key, source, target) for key, source in objects])
    copied = {"journaled": 0, "partly_copied": 1}.get(step, len(objects))
    for key, source in objects[:copied]:
        await library.blobs.put(target, key, await library.blobs.get(source, key))
    if STEPS.index(step) >= STEPS.index("switched"):
        assert await library.metadata.switch_buckets(photo, variants, target)
    if STEPS.index(step) >= STEPS.index("switch_recorded"):
        await journal.record_switch(photo.id, time.time() + 0.6)  # grace not over at the restart
    if step == "source_deleted":
        for key, source in objects:
            await library.blobs.delete(source, key)
    journal.close()

    async with mover_of(library, ADDED, tmp_path, grace_s=0.6).session():
        sources_left = {(source, key) for key, source in objects} & await library.stored_objects()
        if step in ("switched", "switch_recorded"):
            # The rows name the target: readers may hold the old rows, so the sources stay a while.
            assert sources_left == {(source, key) for key, source in objects}
    result = await mover_of(library, ADDED, tmp_path).run()

    assert result.complete
    assert await library.stored_objects() == await library.named_objects()
    assert (await verify_objects(library.metadata, library.blobs, ADDED, checksums=True)).clean
    assert await (await _journal(tmp_path)).entries() == []


async def test_a_second_mover_on_the_same_journal_is_refused(library: Library, tmp_path: Path) -> None:
    first, second = mover_of(library, ADDED, tmp_path), mover_of(library, ADDED, tmp_path)
    async with first.session():
        with pytest.raises(Conflict):
            async with second.session():
                pass
    async with second.session():  # free again once the first is done
        pass


# --- verify_objects ------------------------------------------------------------------------------


async def test_verify_reports_each_kind_of_problem_as_data(library: Library) -> None:
    seeded = await seed_library(library, users=1, photos_per_user=6)
    (gone, _), (resized, _), (rotten, _), (unknown, unknown_variants) = seeded[:4]
    await library.blobs.delete(gone.bucket, gone.storage_path)
    await library.blobs.put(resized.bucket, resized.storage_path, b"short")
    same_size = bytes(b ^ 0xFF for b in await library.blobs.get(rotten.bucket, rotten.storage_path))
    await library.blobs.put(rotten.bucket, rotten.storage_path, same_size)
    assert await library.metadata.switch_buckets(unknown, unknown_variants, "bkt-9")

    report = await verify_objects(library.metadata, library.blobs, OLD, checksums=True)
    found = {(p.photo_id, p.object, p.kind) for p in report.problems}
    assert found == {
        (gone.id, "original", ProblemKind.MISSING),
        (resized.id, "original", ProblemKind.SIZE),
        (rotten.id, "original", ProblemKind.SHA256),
        *(
            (unknown.id, name, kind)
            for name in ("original", "preview", "thumb")
            for kind in (ProblemKind.UNKNOWN_BUCKET, ProblemKind.MISPLACED)
        ),
    }
    assert report.photos == 6
    assert report.objects == 18
    assert json.loads(json.dumps(report.to_dict()))["clean"] is False

    quick = await verify_objects(library.metadata, library.blobs, OLD, checksums=False)
    assert (rotten.id, "original", ProblemKind.SHA256) not in {
        (p.photo_id, p.object, p.kind) for p in quick.problems
    }
    assert quick.bytes_read == 0


async def test_verify_counts_progress_in_photos(library: Library) -> None:
    await seed_library(library, users=2, photos_per_user=3)
    calls: list[tuple[int, int]] = []
    report = await verify_objects(
        library.metadata, library.blobs, OLD, checksums=False, progress=lambda d, t: calls.append((d, t))
    )
    assert report.clean
    assert calls[-1] == (6, 6)
