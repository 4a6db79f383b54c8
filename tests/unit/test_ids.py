"""Ids: valid UUIDv7, carrying the placement key, sorting by time."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photostore import ids

KEYS = st.integers(min_value=0, max_value=2**32 - 1)
MAX_MS = 253_402_300_799_999  # the end of the year 9999, the last that datetime can represent
MILLIS = st.integers(min_value=0, max_value=MAX_MS)
RANDS = st.integers(min_value=0, max_value=2**42 - 1)


@settings(max_examples=300, deadline=None, database=None)
@given(key=KEYS, unix_ms=MILLIS, rand=RANDS)
def test_parts_round_trip(key: int, unix_ms: int, rand: int) -> None:
    made = ids.make_id(key, unix_ms=unix_ms, rand=rand)
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert ids.is_photostore_id(made)
    assert ids.placement_key_of(made) == key
    assert ids.unix_ms_of(made) == unix_ms
    assert made.int & (2**42 - 1) == rand
    assert ids.created_at_of(made) == datetime.fromtimestamp(unix_ms / 1000, tz=UTC)
    assert ids.parse_id(str(made)) == made


@settings(max_examples=200, deadline=None, database=None)
@given(key=KEYS)
def test_ids_made_now_carry_the_key_and_the_time(key: int) -> None:
    before = time.time_ns() // 1_000_000
    made = ids.make_id(key)
    after = time.time_ns() // 1_000_000
    assert ids.placement_key_of(made) == key
    assert before <= ids.unix_ms_of(made) <= after
    assert ids.is_photostore_id(made)


@settings(max_examples=200, deadline=None, database=None)
@given(
    unix_ms=st.integers(min_value=0, max_value=MAX_MS - 10**9),
    gap=st.integers(min_value=1, max_value=10**9),
    keys=st.tuples(KEYS, KEYS),
    rands=st.tuples(RANDS, RANDS),
)
def test_ids_sort_by_time_whatever_their_keys(
    unix_ms: int, gap: int, keys: tuple[int, int], rands: tuple[int, int]
) -> None:
    earlier = ids.make_id(keys[0], unix_ms=unix_ms, rand=rands[0])
    later = ids.make_id(keys[1], unix_ms=unix_ms + gap, rand=rands[1])
    assert earlier < later
    assert str(earlier) < str(later)
    assert earlier.hex < later.hex


@settings(max_examples=50, deadline=None, database=None)
@given(millis=st.lists(MILLIS, min_size=2, max_size=30, unique=True), key=KEYS)
def test_a_list_of_ids_sorts_in_time_order(millis: list[int], key: int) -> None:
    made = [ids.make_id(key, unix_ms=ms) for ms in millis]
    by_time = [m for _, m in sorted(zip(millis, made, strict=True))]
    assert sorted(made) == by_time
    assert sorted(str(m) for m in made) == [str(m) for m in by_time]


def test_ids_made_one_after_another_sort_in_order() -> None:
    made = []
    for _ in range(3):
        made.append(ids.new_user_id())
        time.sleep(0.002)  # a later millisecond
    assert made == sorted(made)
    assert [str(m) for m in made] == sorted(str(m) for m in made)


def test_ids_in_the_same_millisecond_differ() -> None:
    made = {ids.make_id(42, unix_ms=1_700_000_000_000) for _ in range(1000)}
    assert len(made) == 1000


def test_photo_ids_carry_their_owners_key() -> None:
    owner = ids.new_user_id()
    photos = [ids.new_photo_id(owner) for _ in range(20)]
    assert {ids.placement_key_of(p) for p in photos} == {ids.placement_key_of(owner)}
    assert len(set(photos)) == 20
    assert all(ids.is_photostore_id(p) for p in photos)


def test_users_get_different_placement_keys() -> None:
    keys = {ids.placement_key_of(ids.new_user_id()) for _ in range(200)}
    assert len(keys) > 190  # 32 random bits: a repeat among 200 is a one-in-200,000 event


@pytest.mark.parametrize("key", [-1, 2**32, 2**40])
def test_make_id_refuses_keys_outside_32_bits(key: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        ids.make_id(key)


def test_parse_id_accepts_ours_in_its_usual_spellings() -> None:
    made = ids.make_id(7, unix_ms=1_700_000_000_000)
    assert ids.parse_id(str(made)) == made
    assert ids.parse_id(str(made).upper()) == made
    assert ids.parse_id(made.hex) == made


@pytest.mark.parametrize(
    "text",
    [
        str(uuid.uuid4()),  # random, version 4
        str(uuid.uuid1()),  # time-based, version 1
        "00000000-0000-0000-0000-000000000000",  # nil
        "ffffffff-ffff-ffff-ffff-ffffffffffff",  # max
        "018c2b5e-8f3a-7abc-0def-0123456789ab",  # version 7 with the NCS variant (0b0...)
        "018c2b5e-8f3a-7abc-cdef-0123456789ab",  # version 7 with the Microsoft variant (0b110)
        "",
        "garbage",
        "018c2b5e-8f3a-7abc-8def-0123456789a",  # one digit short
        "018c2b5e-8f3a-7abc-8def-0123456789abc",  # one digit long
        "018c2b5e-8f3a-7abc-8def-0123456789ag",  # not hex
        "../../etc/passwd",
    ],
)
def test_parse_id_refuses_what_is_not_ours(text: str) -> None:
    assert ids.parse_id(text) is None


def test_parse_id_of_our_layout_from_elsewhere() -> None:
    # Any UUIDv7 with the RFC variant has our layout (its bits are read as time, key and random).
    text = "018c2b5e-8f3a-7abc-8def-0123456789ab"
    parsed = ids.parse_id(text)
    assert parsed is not None
    assert parsed == uuid.UUID(text)
    assert ids.unix_ms_of(parsed) == 0x018C2B5E8F3A
