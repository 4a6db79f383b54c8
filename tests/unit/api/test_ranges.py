"""parse_range: one byte range per RFC 9110 section 14; anything else gets the whole object."""

from __future__ import annotations

import pytest

from photostore.api.ranges import parse_range
from photostore.errors import RangeNotSatisfiable

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-499", (0, 500)),  # RFC 9110 14.1.2: the first 500 bytes
        ("bytes=500-999", (500, 1000)),  # the second 500 bytes
        ("bytes=0-0", (0, 1)),  # the first byte
        ("bytes=999-999", (999, 1000)),  # the last byte, by position
        ("bytes=0-", (0, SIZE)),  # open-ended: from 0 to the end
        ("bytes=900-", (900, SIZE)),  # open-ended: the remainder
        ("bytes=999-", (999, SIZE)),
        ("bytes=-1", (999, SIZE)),  # suffix: the last byte
        ("bytes=-500", (500, SIZE)),  # suffix: the last 500 bytes
        ("bytes=-1000", (0, SIZE)),  # suffix as long as the object
        ("bytes=-5000", (0, SIZE)),  # suffix longer than the object: the whole object
        ("bytes=0-1000", (0, SIZE)),  # last-pos at the length: clamped
        ("bytes=500-99999", (500, SIZE)),  # last-pos far past the end: clamped
        ("bytes= 10-19", (10, 20)),  # optional whitespace after '='
    ],
)
def test_satisfiable_ranges(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # first-pos at the length
        "bytes=1000-1000",
        "bytes=5000-6000",  # wholly beyond the end
        "bytes=-0",  # suffix of zero bytes (14.1.3: only a non-zero suffix is satisfiable)
        "bytes=500-400",  # last-pos before first-pos: invalid, which 14.2 lets a server reject
    ],
)
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, SIZE)
    assert caught.value.status == 416


def test_any_range_of_an_empty_object_starting_at_zero_is_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-10", 0)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=0-1,5-9",  # several ranges: the whole object instead of multipart/byteranges
        "bytes=0-1, 5-9",
        "bytes=-5,0-1",
        "items=0-9",  # a range unit we do not support must be ignored (14.2)
        "bytes 0-9",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=a-b",
        "bytes=0-x",
        "bytes=x-9",
        "bytes=-x",
        "bytes=1.5-9",
        "bytes=0-9-",
        "0-9",
    ],
)
def test_headers_that_are_not_one_byte_range_get_the_whole_object(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=1_0-19", "bytes=+1-2", "bytes=0-1_9", "bytes=-1_0"])
def test_positions_must_be_plain_digits(header: str) -> None:
    try:
        result = parse_range(header, SIZE)
    except RangeNotSatisfiable:
        return  # rejecting an invalid ranges-specifier is allowed (RFC 9110 14.2)
    assert result is None
