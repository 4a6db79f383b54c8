"""read_exif(): the right values from real EXIF, nothing raised by broken EXIF, GPS removable."""

from __future__ import annotations

import json
import struct
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from photostore.imaging.exif import MAX_EXIF_BYTES, ExifSummary, read_exif, strip_location
from photostore.imaging.samples import SAMPLE_GPS, sample_exif

from . import factory

ASCII, SHORT, LONG, RATIONAL = 2, 3, 4, 5


def test_a_camera_jpeg_is_summarised() -> None:
    summary = read_exif(factory.jpeg(orientation=6))

    data = dict(summary.data)
    gps = data.pop("gps")
    assert data == {
        "orientation": 6,
        "taken_at": "2024-06-01T12:34:56+02:00",
        "make": "Photostore",
        "model": "Sample Camera 12",
        "software": "photostore samples",
        "lens": "Sample 35mm F2.8",
        "exposure_time": 0.004,
        "f_number": 2.8,
        "focal_length": 35.0,
        "iso": 200,
    }
    latitude, longitude, altitude = SAMPLE_GPS
    assert gps == {
        "latitude": pytest.approx(latitude, abs=1e-6),
        "longitude": pytest.approx(longitude, abs=1e-6),
        "altitude": altitude,
    }
    assert summary.taken_at == datetime(2024, 6, 1, 12, 34, 56, tzinfo=timezone(timedelta(hours=2)))
    assert summary.orientation == 6
    json.dumps(summary.data, allow_nan=False)  # JSON-able as it stands


def _save_exif(exif: Image.Exif) -> bytes:
    return factory.save(factory.photo(64, 48), "JPEG", exif=exif.tobytes())


def test_south_west_and_below_sea_level_are_negative() -> None:
    exif = sample_exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[3], gps[5] = "S", "W", 1  # refs: south, west, below sea level
    gps[6] = IFDRational(4305, 10)

    located = read_exif(_save_exif(exif)).data["gps"]

    assert located["latitude"] == pytest.approx(-SAMPLE_GPS[0], abs=1e-6)
    assert located["longitude"] == pytest.approx(-SAMPLE_GPS[1], abs=1e-6)
    assert located["altitude"] == -430.5


def test_a_time_without_offset_is_read_as_utc() -> None:
    exif = sample_exif()
    del exif.get_ifd(0x8769)[0x9011]  # OffsetTimeOriginal

    summary = read_exif(_save_exif(exif))

    assert summary.taken_at == datetime(2024, 6, 1, 12, 34, 56, tzinfo=UTC)
    assert summary.data["taken_at"] == "2024-06-01T12:34:56+00:00"


def test_sub_seconds_are_kept_and_an_unknown_date_is_no_date() -> None:
    exif = sample_exif()
    exif.get_ifd(0x8769)[0x9291] = "25"  # SubSecTimeOriginal: .25 s
    assert read_exif(_save_exif(exif)).taken_at == datetime(
        2024, 6, 1, 12, 34, 56, 250_000, tzinfo=timezone(timedelta(hours=2))
    )

    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    unknown = read_exif(_save_exif(exif))
    assert unknown.taken_at is None
    assert "taken_at" not in unknown.data


def test_strip_location_removes_gps_and_keeps_the_rest() -> None:
    data = read_exif(factory.jpeg()).data

    public = strip_location(data)

    assert "gps" in data
    assert "gps" not in public
    assert public == {key: value for key, value in data.items() if key != "gps"}


def test_a_photo_without_gps_has_no_gps_key() -> None:
    assert "gps" not in read_exif(factory.jpeg(gps=False)).data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF", "AVIF"])
def test_exif_is_read_from_other_formats(fmt: str) -> None:
    data = factory.save(factory.photo(64, 48), fmt, exif=sample_exif(orientation=3).tobytes())

    summary = read_exif(data)

    assert summary.data["make"] == "Photostore"
    assert summary.data["orientation"] == 3
    assert summary.data["gps"]["latitude"] == pytest.approx(SAMPLE_GPS[0], abs=1e-6)


def test_an_image_without_exif_gives_an_empty_summary() -> None:
    assert read_exif(factory.png_rgba()) == ExifSummary()


@pytest.mark.parametrize(
    "data",
    [b"", factory.random_bytes(), factory.TEXT, factory.SVG, factory.jpeg()[:300]],
    ids=["empty", "random", "text", "svg", "cut-in-exif"],
)
def test_no_input_makes_it_raise(data: bytes) -> None:
    assert isinstance(read_exif(data), ExifSummary)


def test_a_self_referencing_exif_is_read_once() -> None:
    # IFD0 names itself as its Exif IFD, its GPS IFD and its next IFD.
    raw = factory.tiff_exif(
        [
            (0x010F, ASCII, 4, b"Cam\x00"),  # Make, inline
            (0x8769, LONG, 1, struct.pack(">I", 8)),
            (0x8825, LONG, 1, struct.pack(">I", 8)),
        ],
        next_ifd=8,
    )

    started = time.perf_counter()
    summary = read_exif(factory.jpeg_with_raw_exif(raw))

    assert time.perf_counter() - started < 1
    assert summary.data.get("make") == "Cam"
    assert "gps" not in summary.data  # the 'GPS IFD' holds no coordinates


def test_a_tag_pointing_past_the_end_costs_only_itself() -> None:
    raw = factory.tiff_exif(
        [
            (0x010F, ASCII, 4, b"Cam\x00"),
            (0x0110, ASCII, 0x7FFF_FFFF, struct.pack(">I", 0x7FFF_0000)),  # Model: 2 GB, far away
            (0x0112, SHORT, 1, struct.pack(">H", 8)),
        ]
    )

    summary = read_exif(factory.jpeg_with_raw_exif(raw))

    assert isinstance(summary, ExifSummary)
    assert "model" not in summary.data


def test_garbage_values_are_dropped_not_passed_on() -> None:
    exif = sample_exif()
    exif[0x0112] = 99  # no such orientation
    sub = exif.get_ifd(0x8769)
    sub[0x829D] = IFDRational(1, 0)  # f-number 1/0
    sub[0x9011] = "+99:99"  # no such offset
    exif[0x010F] = "Evil\x00\x1b[31mCam" + "x" * 1000

    data = read_exif(_save_exif(exif)).data

    assert data["orientation"] == 1
    assert "f_number" not in data
    assert data["taken_at"].endswith("+00:00")
    assert data["make"].startswith("Evil[31mCam")
    assert len(data["make"]) == 128
    json.dumps(data, allow_nan=False)


def test_an_oversized_exif_block_is_not_parsed() -> None:
    filler = b"\x00" * (MAX_EXIF_BYTES + 1)
    raw = factory.tiff_exif([(0x010F, ASCII, 4, b"Cam\x00")]) + filler

    assert read_exif(factory.png_with_raw_exif(raw)) == ExifSummary()
    assert read_exif(factory.png_with_raw_exif(raw[: -len(filler)])).data == {"make": "Cam"}
