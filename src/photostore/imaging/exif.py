"""EXIF: a small, JSON-able summary of what a photo's metadata says, read without decoding pixels.

Guarantees of ``read_exif``:

* it never raises: bytes that are no image, a malformed, truncated, self-referencing or oversized EXIF
  block give the fields that could be read (possibly none);
* it is bounded: an EXIF block over ``MAX_EXIF_BYTES`` is not parsed, only the IFDs named below are
  visited (IFD0, the Exif IFD and the GPS IFD; no pointer chain is followed), text is cut to
  ``MAX_TEXT`` characters and stripped of control characters;
* every value in ``ExifSummary.data`` is a ``str``, ``int``, finite ``float`` or a dict of those.

Keys of ``data`` (present only when the photo records them)::

    orientation  int 1..8, as recorded (HEIF: before libheif applied it)
    taken_at     ISO 8601 with offset, from DateTimeOriginal (else DateTimeDigitized)
    make, model, lens, software          str
    exposure_time (s), f_number, focal_length (mm)   float
    iso          int
    gps          {"latitude": float, "longitude": float, "altitude": float (m)}; south and west are
                 negative, below sea level is negative

Time zones: OffsetTimeOriginal (or OffsetTimeDigitized) gives an aware time. Without one, EXIF times are
the camera's wall clock in an unknown zone; they are read *as if UTC*, so ``taken_at`` is always
timezone-aware and sorts consistently, at the price of being off by the unknown offset.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from PIL import Image

from photostore.domain import JsonDict
from photostore.imaging import _pillow

MAX_EXIF_BYTES = 256 * 1024
MAX_TEXT = 128
LOCATION_KEYS = frozenset({"gps"})

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_ORIENTATION = 0x0112
_IFD0_TEXT = {"make": 0x010F, "model": 0x0110, "software": 0x0131}
_EXPOSURE_TIME, _F_NUMBER, _ISO, _FOCAL_LENGTH = 0x829A, 0x829D, 0x8827, 0x920A
_LENS_MAKE, _LENS_MODEL = 0xA433, 0xA434
# (date-time, offset, sub-seconds) tags, best first
_TIME_TAGS = ((0x9003, 0x9011, 0x9291), (0x9004, 0x9012, 0x9292))
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# read_exif takes no limits: it reads the headers of every format this package knows.
_ALL_FORMATS = tuple(_pillow.CONTENT_TYPES)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExifSummary:
    """What the EXIF says: ``data`` for storage and the API, ``taken_at`` as a datetime."""

    data: JsonDict = field(default_factory=dict)
    taken_at: datetime | None = None

    @property
    def orientation(self) -> int:
        value = self.data.get("orientation", 1)
        return value if isinstance(value, int) else 1


def strip_location(exif: Mapping[str, Any]) -> JsonDict:
    """A copy of an EXIF summary without location: what anyone but the owner may see."""
    return {key: value for key, value in exif.items() if key not in LOCATION_KEYS}


def read_exif(data: bytes) -> ExifSummary:
    """Summarise the EXIF of an image in any accepted format; never raises (see the module doc)."""
    try:
        with Image.open(io.BytesIO(data), formats=_pillow.pillow_formats(_ALL_FORMATS)) as im:
            exif = load_exif(im)
            recorded = im.info.get("original_orientation")  # pillow-heif resets the tag it applied
    except Exception:  # the contract is to never raise on hostile bytes
        return ExifSummary()
    if exif is None:
        return ExifSummary()
    return summarise(exif, recorded if isinstance(recorded, int) else None)


def load_exif(im: Image.Image) -> Image.Exif | None:
    """The EXIF of an opened image, parsed from its header only; None when absent or over the cap."""
    raw = im.info.get("exif")
    if isinstance(raw, bytes):
        if len(raw) > MAX_EXIF_BYTES:
            return None
        exif = Image.Exif()
        exif.load(raw)
        return exif
    if _pillow.format_name(im) == "TIFF":  # the TIFF's own IFD is its EXIF; read lazily from the header
        return im.getexif()
    return None


def image_orientation(im: Image.Image) -> int:
    """The EXIF orientation of an opened image (1..8); 1 when absent, invalid or unreadable."""
    try:
        return orientation_of(load_exif(im))
    except Exception:  # a broken EXIF block never makes a broken image
        return 1


def orientation_of(exif: Image.Exif | None) -> int:
    """The EXIF orientation (1..8), 1 when absent or invalid."""
    if exif is None:
        return 1
    value = _attempt(lambda: exif.get(_ORIENTATION))
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def summarise(exif: Image.Exif, recorded_orientation: int | None = None) -> ExifSummary:
    """Build the summary; each field is read on its own, so one bad tag loses only itself."""
    ifd0: Mapping[int, Any] = _attempt(lambda: dict(exif)) or {}
    sub: Mapping[int, Any] = _attempt(lambda: exif.get_ifd(_EXIF_IFD)) or {}
    gps_ifd: Mapping[int, Any] = _attempt(lambda: exif.get_ifd(_GPS_IFD)) or {}
    data: JsonDict = {}
    orientation = recorded_orientation or orientation_of(exif)
    if orientation != 1 or _ORIENTATION in ifd0:
        data["orientation"] = orientation
    taken_at = _attempt(lambda: _taken_at(sub, ifd0))
    if taken_at is not None:
        data["taken_at"] = taken_at.isoformat()
    for key, tag in _IFD0_TEXT.items():
        _put(data, key, _text(ifd0.get(tag)))
    _put(data, "lens", _attempt(lambda: _lens(sub)))
    _put(data, "exposure_time", _number(sub.get(_EXPOSURE_TIME)))
    _put(data, "f_number", _number(sub.get(_F_NUMBER)))
    _put(data, "focal_length", _number(sub.get(_FOCAL_LENGTH)))
    _put(data, "iso", _attempt(lambda: _iso(sub.get(_ISO))))
    _put(data, "gps", _attempt(lambda: _gps(gps_ifd)))
    return ExifSummary(data=data, taken_at=taken_at)


def _attempt(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except Exception:  # a malformed tag must cost only that tag
        return None


def _put(data: JsonDict, key: str, value: object) -> None:
    if value is not None and value != "" and value != {}:
        data[key] = value


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return _CONTROL.sub("", value).strip()[:MAX_TEXT] or None


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # IFDRational, int, float or garbage
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return round(number, 6) if math.isfinite(number) and number >= 0 else None


def _iso(value: object) -> int | None:
    if isinstance(value, tuple) and value:
        value = value[0]
    return value if isinstance(value, int) and 0 < value < 10_000_000 else None


def _lens(sub: Mapping[int, Any]) -> str | None:
    model, make = _text(sub.get(_LENS_MODEL)), _text(sub.get(_LENS_MAKE))
    if model and make and not model.lower().startswith(make.lower()):
        return f"{make} {model}"[:MAX_TEXT]
    return model or make


def _taken_at(sub: Mapping[int, Any], ifd0: Mapping[int, Any]) -> datetime | None:
    for when_tag, offset_tag, subsec_tag in _TIME_TAGS:
        when = _text(sub.get(when_tag)) or _text(ifd0.get(when_tag))
        if not when:
            continue
        try:
            moment = datetime.strptime(when[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue  # "0000:00:00 00:00:00" and friends: unknown
        subsec = _text(sub.get(subsec_tag)) or ""
        digits = (subsec if subsec.isdigit() else "")[:6]
        if digits:
            moment = moment.replace(microsecond=int(digits.ljust(6, "0")))
        return moment.replace(tzinfo=_offset(_text(sub.get(offset_tag))))
    return None


def _offset(text: str | None) -> timezone:
    match = _OFFSET.match(text or "")
    if match is None:
        return UTC  # unknown zone: read as UTC (see the module doc)
    sign = -1 if match[1] == "-" else 1
    minutes = int(match[2]) * 60 + int(match[3])
    if minutes > 14 * 60:
        return UTC
    return timezone(sign * timedelta(minutes=minutes))


def _gps(gps: Mapping[int, Any]) -> JsonDict | None:
    latitude = _coordinate(gps.get(2), _text(gps.get(1)), "S", 90.0)
    longitude = _coordinate(gps.get(4), _text(gps.get(3)), "W", 180.0)
    if latitude is None or longitude is None:
        return None
    out: JsonDict = {"latitude": latitude, "longitude": longitude}
    altitude = _number(gps.get(6))
    if altitude is not None:
        below = gps.get(5) in (1, b"\x01")  # AltitudeRef 1: below sea level
        out["altitude"] = round(-altitude if below else altitude, 2)
    return out


def _coordinate(value: object, ref: str | None, negative_ref: str, limit: float) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    parts = [_number(part) for part in value]
    if any(part is None for part in parts):
        return None
    degrees, minutes, seconds = (float(part or 0.0) for part in parts)
    result = degrees + minutes / 60 + seconds / 3600
    if result > limit:
        return None
    if (ref or "").upper().startswith(negative_ref):
        result = -result
    return round(result, 7)
