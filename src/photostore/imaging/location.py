"""Removing the location from an original's bytes, losslessly, for anyone but its owner.

The EXIF block is rewritten without its GPS IFD and put back where it was; the image data is not
touched. Done for the formats whose EXIF sits in one block of the container: JPEG (the APP1
``Exif`` segment), PNG (the ``eXIf`` chunk) and WebP (the ``EXIF`` chunk). For the others (HEIF,
AVIF, TIFF, where EXIF is an item or the file's own IFDs) ``without_location`` says it cannot, so
the caller can refuse rather than leak.
"""

from __future__ import annotations

import struct
import zlib

from PIL import Image

from photostore.imaging.exif_check import check_exif

_GPS_IFD = 0x8825
_EXIF_HEADER = b"Exif\x00\x00"


class CannotStrip(Exception):
    """This format's location cannot be removed without re-encoding the image."""


def _without_gps(tiff: bytes) -> bytes | None:
    """The TIFF-structured EXIF without its GPS IFD; None when it has none."""
    check_exif(tiff)
    exif = Image.Exif()
    exif.load(_EXIF_HEADER + tiff)
    if _GPS_IFD not in exif:
        return None
    del exif[_GPS_IFD]
    return exif.tobytes()[len(_EXIF_HEADER) :]


def without_location(data: bytes, fmt: str) -> bytes:
    """``data`` with no GPS data (the same bytes when there was none); CannotStrip for formats whose
    EXIF cannot be rewritten in place."""
    if fmt == "JPEG":
        return _jpeg(data)
    if fmt == "PNG":
        return _png(data)
    if fmt == "WEBP":
        return _webp(data)
    if fmt in ("GIF",):
        return data  # no EXIF in GIF
    raise CannotStrip(fmt)


def _jpeg(data: bytes) -> bytes:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xDA, 0xD9):  # scan or end: the metadata segments are behind us
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(_EXIF_HEADER):
            stripped = _without_gps(segment[len(_EXIF_HEADER) :])
            if stripped is None:
                return data
            body = _EXIF_HEADER + stripped
            return (
                data[:pos] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[pos + 2 + length :]
            )
        pos += 2 + length
    return data


def _png(data: bytes) -> bytes:
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind == b"eXIf":
            stripped = _without_gps(data[pos + 8 : pos + 8 + length])
            if stripped is None:
                return data
            chunk = struct.pack(">I", len(stripped)) + b"eXIf" + stripped
            chunk += struct.pack(">I", zlib.crc32(b"eXIf" + stripped))
            return data[:pos] + chunk + data[end:]
        if kind == b"IEND":
            break
        pos = end
    return data


def _webp(data: bytes) -> bytes:
    pos, riff_end = 12, 8 + int.from_bytes(data[4:8], "little")
    while pos + 8 <= riff_end:
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        if kind == b"EXIF":
            payload = data[pos + 8 : pos + 8 + size]
            tiff = payload[len(_EXIF_HEADER) :] if payload.startswith(_EXIF_HEADER) else payload
            stripped = _without_gps(tiff)
            if stripped is None:
                return data
            chunk = (
                b"EXIF"
                + struct.pack("<I", len(stripped))
                + stripped
                + (b"\x00" if len(stripped) & 1 else b"")
            )
            body = data[12:pos] + chunk + data[end:riff_end]
            return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body + data[riff_end:]
        pos = end
    return data
