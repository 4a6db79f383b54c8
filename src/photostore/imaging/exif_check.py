"""A strict walk of an EXIF block (a TIFF structure) before anything else reads it.

Refused: a byte order other than II or MM, an IFD or a value outside the block, an entry count
running past the end, an IFD reached twice (a loop), and more IFDs than any camera writes. The
IFDs followed are IFD0 and its chain, and the Exif, GPS and Interoperability sub-IFDs; maker notes
are opaque and left alone, as every reader does.
"""

from __future__ import annotations

from typing import Literal

from photostore.errors import InvalidImage

_SUB_IFDS = {0x8769, 0x8825, 0xA005}  # Exif, GPS, Interoperability
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
MAX_IFDS = 32


def _bad(what: str) -> InvalidImage:
    return InvalidImage(f"the EXIF block is malformed: {what}; remove the metadata and upload again")


class _Tiff:
    def __init__(self, tiff: bytes) -> None:
        if len(tiff) < 8:
            raise _bad("shorter than its header")
        if tiff[:2] not in (b"II", b"MM"):
            raise _bad(f"unknown byte order {tiff[:2]!r}")
        self.data = tiff
        self.endian: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
        if self.number(2, 2) != 42:
            raise _bad("no TIFF magic number")

    def number(self, at: int, size: int) -> int:
        return int.from_bytes(self.data[at : at + size], self.endian)

    def ifd(self, offset: int) -> list[int]:
        """Check the IFD at ``offset``; the offsets of the IFDs it leads to."""
        size = len(self.data)
        if offset + 2 > size:
            raise _bad(f"an IFD at {offset}, past the end ({size} bytes)")
        count = self.number(offset, 2)
        end = offset + 2 + 12 * count
        if end + 4 > size:
            raise _bad(f"the IFD at {offset} has {count} entries, running past the end")
        following = [self.number(end, 4)]
        for entry in range(offset + 2, end, 12):
            tag, kind, items = self.number(entry, 2), self.number(entry + 2, 2), self.number(entry + 4, 4)
            length = _TYPE_SIZES.get(kind, 0) * items
            value = self.number(entry + 8, 4)
            if length > 4 and value + length > size:
                raise _bad(f"tag 0x{tag:04X} points {length} bytes past the end")
            if tag in _SUB_IFDS and kind in (4, 13):
                following.append(value)
        return following


def check_exif(block: bytes) -> None:
    """Raise InvalidImage unless ``block`` (with or without its ``Exif\\0\\0`` header) is well formed."""
    data = block[6:] if block.startswith(b"Exif\x00\x00") else block
    if not data:
        return
    tiff = _Tiff(data)
    pending, seen = [tiff.number(4, 4)], set[int]()
    while pending:
        offset = pending.pop()
        if offset == 0:
            continue
        if offset in seen:
            raise _bad(f"the IFD at {offset} is reached twice (a loop)")
        seen.add(offset)
        if len(seen) > MAX_IFDS:
            raise _bad(f"more than {MAX_IFDS} IFDs")
        pending.extend(tiff.ifd(offset))
