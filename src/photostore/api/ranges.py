"""HTTP Range (RFC 9110): one byte range per request; several ranges get the whole object."""

from __future__ import annotations

from photostore.errors import RangeNotSatisfiable


def _digits(text: str) -> bool:
    return text == "" or (text.isascii() and text.isdigit())


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a satisfiable single range, None to send the whole object.

    Raises RangeNotSatisfiable when the range lies outside the object.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    spec = header[len("bytes=") :].strip()
    first, dash, last = spec.partition("-")
    # RFC 9110: positions are 1*DIGIT; anything else makes the header one to ignore.
    if not dash or not (first or last) or not _digits(first) or not _digits(last):
        return None
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length <= 0:
            raise RangeNotSatisfiable(f"empty suffix range in {header!r}")
        return max(size - length, 0), size
    start = int(first)
    end = int(last) + 1 if last else size
    if start < 0 or start >= size or end <= start:
        raise RangeNotSatisfiable(f"range {header!r} is outside the object of {size} bytes")
    return start, min(end, size)
