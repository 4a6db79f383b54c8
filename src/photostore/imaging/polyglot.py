"""Polyglots: an image followed by something a browser, an archiver or a shell would run or open.

Bytes after an image's end are normal (an MPO's second picture, a phone's motion-photo video,
vendor trailers), so they are not refused as such. What is refused is a trailer that carries an
archive, a document, an executable or active markup, anywhere in it: such a file is an image to
photostore and something else to another program (a GIFAR, a JPEG that is also a ZIP or a page).
"""

from __future__ import annotations

import re

from photostore.errors import InvalidImage

_SIGNATURES = re.compile(
    rb"PK\x03\x04|PK\x05\x06|PK\x01\x02|%PDF-|\x7fELF|Rar!\x1a\x07|7z\xbc\xaf\x27\x1c"
    rb"|<\s*(?:html|script|body|iframe|svg|object|embed)\b|<\?php|<!doctype\s+html",
    re.IGNORECASE,
)


def check_trailer(fmt: str, trailer: bytes) -> None:
    """Refuse ``trailer`` (the bytes after the image's end) when it carries another format."""
    if not trailer:
        return
    found = _SIGNATURES.search(trailer)
    if found is not None or trailer[:2] == b"MZ":
        what = found.group(0)[:12] if found is not None else b"MZ"
        raise InvalidImage(
            f"the {fmt} image is followed by {len(trailer)} bytes holding {what!r}: a file that is also an "
            "archive, a document, a program or a page is refused; upload the image alone"
        )
