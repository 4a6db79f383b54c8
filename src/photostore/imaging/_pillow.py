"""Pillow set-up and the one guarded way this package opens untrusted bytes.

Importing this module, once per process:

* registers the HEIF opener of pillow-heif (HEIC/HEIF read through libheif);
* loads every Pillow plugin, so the format sniffing below sees them all;
* sets ``PIL.Image.MAX_IMAGE_PIXELS`` to the pixel limit of the settings (raised later if a caller's
  limits allow more), so Pillow itself refuses anything over twice that as a decompression bomb: our
  own, exact check on the header size comes first, Pillow's is the backstop on every code path.

``open_image`` only lets Pillow try the plugins of the allowed formats, so the parsers of formats we
do not accept never see the bytes. ``parse_guard`` turns whatever a parser raises into our errors.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from photostore.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from photostore.settings import LimitSettings

pillow_heif.register_heif_opener()
Image.init()
# A short file is an error, never silently grey-filled pixels (the default, stated because it matters).
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that. Set to our default limit here, and
# only ever raised (to a larger configured limit, in open_image), so Pillow never refuses what the
# settings allow, and still refuses bombs on any path that skips our own check.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, LimitSettings().max_pixels)
_limit_lock = threading.Lock()

# Pillow names a JPEG carrying a multi-picture index (most phone photos) "MPO": it is a JPEG file.
ALIASES = {"MPO": "JPEG"}

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
    "TIFF": "image/tiff",
}

# Everything a parser of hostile bytes is known to raise. A warning counts too: under
# ``python -W error`` Pillow's "possibly corrupt" warnings arrive as exceptions.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and Pillow's "truncated" errors
    SyntaxError,  # Pillow's plugins signal a malformed header this way
    ValueError,  # includes pillow-heif's libheif errors
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    OverflowError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
    RuntimeError,
    Warning,
)

# Formats Pillow cannot read or this package never accepts, recognised only to answer 415 instead of
# 422. Magic bytes only: nothing here parses.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript"),
)


def content_type_of(fmt: str, data: bytes) -> str:
    """The media type of ``data`` in Pillow format ``fmt``; HEVC-coded HEIF is ``image/heic``."""
    if fmt == "HEIF" and data[8:12] in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"):
        return "image/heic"
    return CONTENT_TYPES.get(fmt) or Image.MIME.get(fmt, "application/octet-stream")


def format_name(im: Image.Image) -> str:
    fmt = im.format or ""
    return ALIASES.get(fmt, fmt)


@contextmanager
def parse_guard(what: str) -> Iterator[None]:
    """Run a parse or decode of untrusted bytes; every failure becomes a photostore error.

    A decompression bomb (Pillow's own size check) becomes ``ImageTooLarge``; anything else a parser
    raises becomes ``InvalidImage`` naming ``what`` was being done and the parser's message.
    """
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"the header declares a decompression bomb: {exc}") from exc
    except PARSE_ERRORS as exc:
        raise InvalidImage(f"{what}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    message = str(exc)
    if isinstance(exc, UnidentifiedImageError) or message.startswith("cannot identify image file"):
        return "the bytes are not an image in an accepted format"
    return message or type(exc).__name__


def pillow_formats(allowed: tuple[str, ...]) -> list[str]:
    """Pillow plugin names to try for the allowed formats (MPO is reached through JPEG)."""
    return [fmt for fmt in allowed if fmt in Image.OPEN]


def open_image(data: bytes, limits: LimitSettings, what: str = "cannot read the image header") -> Image.Image:
    """Open the header of ``data`` with the plugins of the allowed formats only. No pixels are decoded.

    Raises ``UnsupportedFormat`` for a recognisable image or document of a refused format,
    ``InvalidImage`` for anything else Pillow cannot read, ``ImageTooLarge`` for a decompression bomb.
    """
    _allow_pixels(limits.max_pixels)
    try:
        with parse_guard(what):
            return Image.open(io.BytesIO(data), formats=pillow_formats(limits.formats))
    except InvalidImage as exc:
        refused = refused_format(data, limits)
        if refused is not None:
            raise UnsupportedFormat(
                f"{refused} is not an accepted format; accepted: {', '.join(limits.formats)}"
            ) from exc
        raise


def _allow_pixels(max_pixels: int) -> None:
    if (Image.MAX_IMAGE_PIXELS or 0) < max_pixels:
        with _limit_lock:
            Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)


def refused_format(data: bytes, limits: LimitSettings) -> str | None:
    """The name of the refused format ``data`` looks like, judged by magic bytes alone, else None."""
    head = data[:64]
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return name
    if _looks_like_svg(data[:4096]):
        return "SVG"
    allowed = set(limits.formats) | {alias for alias, real in ALIASES.items() if real in limits.formats}
    for fmt, (_factory, accept) in Image.OPEN.items():
        if fmt in allowed or accept is None:
            continue
        try:
            if accept(head):
                return fmt
        except PARSE_ERRORS:  # a sniffing function should not fail; if one does, it is not a match
            continue
    return None


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in text
