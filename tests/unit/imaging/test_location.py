"""Removing GPS from an original's bytes, losslessly: JPEG, PNG and WebP keep every other byte of
image data and every other tag; formats that cannot be rewritten in place say so."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from photostore.imaging.exif import read_exif
from photostore.imaging.location import CannotStrip, without_location
from photostore.imaging.samples import sample_exif
from tests.unit.imaging import factory


def _with_gps(fmt: str) -> bytes:
    return factory.save(factory.photo(64, 48), fmt, exif=sample_exif(gps=True).tobytes())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_goes_and_everything_else_stays(fmt: str) -> None:
    original = _with_gps(fmt)
    assert "gps" in read_exif(original).data

    stripped = without_location(original, fmt)

    summary = read_exif(stripped).data
    assert "gps" not in summary
    assert summary["taken_at"] == read_exif(original).data["taken_at"]
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(stripped)) as after:
        assert after.format == fmt
        assert before.tobytes() == after.tobytes()  # the same pixels: nothing was re-encoded
    assert without_location(stripped, fmt) == stripped  # nothing left to remove


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_a_file_without_gps_is_returned_unchanged(fmt: str) -> None:
    plain = factory.save(factory.photo(32, 24).convert("P" if fmt == "GIF" else "RGB"), fmt)
    assert without_location(plain, fmt) == plain


def test_formats_with_exif_elsewhere_cannot_be_stripped_in_place() -> None:
    with pytest.raises(CannotStrip):
        without_location(factory.heic(), "HEIF")
