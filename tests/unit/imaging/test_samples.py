"""samples.make_photo_jpeg: deterministic, photo-sized, with the EXIF it promises."""

from __future__ import annotations

import io

from PIL import Image

from photostore.imaging.exif import read_exif
from photostore.imaging.samples import encode_jpeg, make_photo_jpeg, render_photo, sample_exif


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() -> None:
    first = encode_jpeg(render_photo(320, 240, seed=5), exif=sample_exif())
    again = encode_jpeg(render_photo(320, 240, seed=5), exif=sample_exif())  # not from the cache
    other = encode_jpeg(render_photo(320, 240, seed=6), exif=sample_exif())

    assert first == again
    assert first != other


def test_a_12_megapixel_sample_weighs_like_a_camera_jpeg() -> None:
    data = make_photo_jpeg(4000, 3000, seed=1)

    assert 3_000_000 <= len(data) <= 5_000_000
    assert Image.open(io.BytesIO(data)).size == (4000, 3000)
    assert make_photo_jpeg(4000, 3000, seed=1) == data  # cached, identical


def test_exif_is_optional() -> None:
    assert read_exif(make_photo_jpeg(64, 48, seed=1, exif=False)).data == {}
    assert read_exif(make_photo_jpeg(64, 48, seed=1)).data["model"] == "Sample Camera 12"
