"""Format negotiation by the ``Accept`` header, and the transcode that serves the chosen format.

``choose_format`` offers AVIF, WebP and JPEG next to the stored format of a variant:

* each offered format gets the q of the most specific media range that matches it (``image/webp``
  before ``image/*`` before ``*/*``, as RFC 9110 says); q=0 means not acceptable;
* a format the client names beats the stored one only on a higher q, or on a tie by server preference
  AVIF > WebP > stored > JPEG (a tie never turns a PNG into a JPEG: it would lose its transparency);
* a format reached only through a wildcard never beats the stored format: ``*/*`` promises nothing
  about AVIF, and the stored bytes need no work. Only when the stored format is refused does a
  wildcard choose, and then JPEG first, the one format every client decodes;
* when nothing offered is acceptable the stored format is served anyway: an image beats a 406.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from PIL import Image

from photostore.imaging import _pillow, colour
from photostore.imaging.derive import WEBP_METHOD

MEDIA_TYPES: MappingProxyType[str, str] = MappingProxyType(
    {
        "AVIF": "image/avif",
        "WEBP": "image/webp",
        "JPEG": "image/jpeg",
        "PNG": "image/png",
    }
)
TRANSCODE_TARGETS = ("AVIF", "WEBP", "JPEG")  # also the server's preference, best first
# Derivatives are at most 8192 px a side by settings; transcodes are on request, so stay well under.
MAX_TRANSCODE_PIXELS = 4096 * 4096
# libavif's default speed 6 takes ~0.8 s for a 1440 px preview; 8 takes ~0.15 s for the same size.
AVIF_SPEED = 8

# Names some clients send for JPEG.
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_TCHARS = r"[!#$%&'*+.^_`|~0-9a-z-]+"
_MEDIA_RANGE = re.compile(rf"({_TCHARS})/({_TCHARS})")
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
# Pillow refuses a header of over twice MAX_IMAGE_PIXELS itself, before our own check can.
_HEADER_ERRORS: tuple[type[BaseException], ...] = (*_pillow.PARSE_ERRORS, Image.DecompressionBombError)


@dataclass(frozen=True, slots=True)
class _Acceptance:
    q: float
    named: bool  # by its own media type, not through image/* or */*


def choose_format(accept: str | None, stored: str) -> str:
    """The Pillow format name to serve a variant stored as ``stored`` in (see the module doc)."""
    if stored not in MEDIA_TYPES:
        raise ValueError(f"unknown stored format {stored!r}; known: {sorted(MEDIA_TYPES)}")
    ranges = _parse_accept(accept or "*/*")
    preference = ["AVIF", "WEBP", stored, "JPEG"]
    candidates = list(dict.fromkeys(preference))  # the order is the server's preference
    accepted = {fmt: _acceptance(ranges, MEDIA_TYPES[fmt]) for fmt in candidates}
    # Named formats and the stored one compete on q, then on preference (earlier wins ties).
    contenders = [fmt for fmt in candidates if accepted[fmt].q > 0 and (accepted[fmt].named or fmt == stored)]
    if contenders:
        return max(contenders, key=lambda fmt: (accepted[fmt].q, -candidates.index(fmt)))
    # The stored format is refused and nothing was named: a wildcard chooses, safest first.
    by_safety = ["JPEG", "WEBP", "AVIF"]
    wildcard = [fmt for fmt in by_safety if accepted[fmt].q > 0]
    if wildcard:
        return max(wildcard, key=lambda fmt: (accepted[fmt].q, -by_safety.index(fmt)))
    return stored


def _parse_accept(header: str) -> dict[str, float]:
    """Media range (lower case) -> q; malformed ranges are skipped, a repeated one keeps its highest q."""
    ranges: dict[str, float] = {}
    for item in header.lower().split(","):
        media_range, *params = item.split(";")
        media_range = media_range.strip()
        if not _MEDIA_RANGE.fullmatch(media_range):
            continue
        q = _q_of(params)
        if q is None:
            continue
        media_range = _ALIASES.get(media_range, media_range)
        ranges[media_range] = max(q, ranges.get(media_range, 0.0))
    return ranges


def _q_of(params: list[str]) -> float | None:
    """The q parameter (1 when absent), or None when it is malformed; other parameters are ignored."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else None
    return 1.0


def _acceptance(ranges: dict[str, float], media_type: str) -> _Acceptance:
    if media_type in ranges:
        return _Acceptance(ranges[media_type], named=True)
    family = media_type.split("/", 1)[0] + "/*"
    for wildcard in (family, "*/*"):
        if wildcard in ranges:
            return _Acceptance(ranges[wildcard], named=False)
    return _Acceptance(0.0, named=False)


def transcode(data: bytes, target: str, quality: int = 80) -> bytes:
    """Re-encode one of our derivatives (JPEG, PNG, WebP, AVIF) as ``target``, its first frame only.

    No metadata is carried over except an RGB ICC profile, so colours stay right. A JPEG target gets
    transparency flattened onto white. Raises ValueError for an unknown target or quality, for an
    image over ``MAX_TRANSCODE_PIXELS``, and for bytes that cannot be decoded or encoded.
    """
    if target not in TRANSCODE_TARGETS:
        raise ValueError(f"cannot transcode to {target!r}; targets are {list(TRANSCODE_TARGETS)}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1..100, got {quality}")
    # Not closed: closing frees the pixels; the file is a BytesIO, garbage collection suffices.
    try:
        im = Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES))
    except _HEADER_ERRORS as exc:
        raise ValueError(f"cannot read the header of the image to transcode: {exc}") from exc
    if im.width * im.height > MAX_TRANSCODE_PIXELS:  # from the header: nothing is decoded yet
        raise ValueError(f"{im.width}x{im.height} is more than {MAX_TRANSCODE_PIXELS} pixels to transcode")
    try:
        im.load()
        pixels, icc = colour.to_rgb_or_rgba(im)
    except _pillow.PARSE_ERRORS as exc:
        raise ValueError(f"cannot decode the image to transcode: {exc}") from exc
    pixels.info = {}  # encoders fall back to the source's info for EXIF and ICC: give them nothing
    return _encode(pixels, target, quality, icc)


def _encode(image: Image.Image, target: str, quality: int, icc: bytes | None) -> bytes:
    options: dict[str, Any] = {"quality": quality}
    if target == "JPEG":
        image = colour.flatten(image)
    elif target == "WEBP":
        options["method"] = WEBP_METHOD
    elif target == "AVIF":
        options["speed"] = AVIF_SPEED
    if icc is not None:
        options["icc_profile"] = icc
    out = io.BytesIO()
    try:
        image.save(out, target, **options)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot encode the image as {target}: {exc}") from exc
    return out.getvalue()
