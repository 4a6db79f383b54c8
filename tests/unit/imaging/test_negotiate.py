"""choose_format(): what real browsers get, q-values, wildcards, garbage; transcode(): real re-encodes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from photostore.imaging.negotiate import MAX_TRANSCODE_PIXELS, MEDIA_TYPES, choose_format, transcode

from . import factory

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,*/*"
SAFARI_17 = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_13 = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
STORED = ["JPEG", "PNG", "WEBP", "AVIF"]


@pytest.mark.parametrize("stored", STORED)
@pytest.mark.parametrize("accept", [None, "", "*/*", "image/*", "image/*, */*;q=0.1", "text/html, */*"])
def test_no_named_format_serves_the_stored_one(accept: str | None, stored: str) -> None:
    assert choose_format(accept, stored) == stored


@pytest.mark.parametrize("stored", STORED)
@pytest.mark.parametrize("accept", [CHROME, FIREFOX, SAFARI_17])
def test_browsers_that_name_avif_get_avif(accept: str, stored: str) -> None:
    assert choose_format(accept, stored) == "AVIF"


@pytest.mark.parametrize("stored", STORED)
def test_a_browser_naming_only_png_gets_the_stored_format(stored: str) -> None:
    # Old Safari names PNG and reaches the rest through image/*: nothing to gain from a transcode.
    assert choose_format(SAFARI_13, stored) == stored


@pytest.mark.parametrize(
    ("accept", "stored", "expected"),
    [
        ("image/webp", "JPEG", "WEBP"),  # the stored format is not acceptable
        ("image/jpeg", "WEBP", "JPEG"),
        ("image/webp;q=0.5, image/jpeg", "WEBP", "JPEG"),  # higher q wins
        ("image/avif;q=0.9, image/webp", "JPEG", "WEBP"),
        ("image/jpeg, image/webp", "JPEG", "WEBP"),  # a tie goes by server preference
        ("image/jpeg, image/webp, image/avif", "PNG", "AVIF"),
        ("image/png, image/jpeg", "PNG", "PNG"),  # a tie never turns a PNG into a JPEG
        ("image/png;q=0.5, */*", "PNG", "PNG"),  # a wildcard never beats the stored format
        ("image/png;q=0.5, image/*", "PNG", "PNG"),
        ("image/jpeg;q=0.5, image/*", "JPEG", "JPEG"),
        ("image/jpeg;q=0.5, image/webp;q=0.6, */*", "JPEG", "WEBP"),
        ("image/webp, */*;q=0.5", "PNG", "WEBP"),
    ],
)
def test_named_formats_compete_on_q_then_preference(accept: str, stored: str, expected: str) -> None:
    assert choose_format(accept, stored) == expected


@pytest.mark.parametrize(
    ("accept", "stored", "expected"),
    [
        ("image/avif;q=0, image/webp, image/*", "JPEG", "WEBP"),
        ("image/avif;q=0, image/*", "AVIF", "JPEG"),  # the stored format refused: wildcard, JPEG first
        ("image/webp;q=0, */*", "WEBP", "JPEG"),
        ("image/*;q=0, image/webp", "PNG", "WEBP"),  # the most specific range decides
        ("image/webp;q=0.000", "WEBP", "WEBP"),  # nothing acceptable: the stored one anyway
        ("*/*;q=0", "JPEG", "JPEG"),
        ("image/avif;q=0, image/webp;q=0, image/jpeg;q=0, image/png;q=0", "PNG", "PNG"),
        ("text/html", "AVIF", "AVIF"),
    ],
)
def test_q_zero_means_not_acceptable(accept: str, stored: str, expected: str) -> None:
    assert choose_format(accept, stored) == expected


@pytest.mark.parametrize(
    ("accept", "stored", "expected"),
    [
        ("IMAGE/WEBP;Q=0.9, Image/JPEG;q=0.1", "JPEG", "WEBP"),
        ("IMAGE/AVIF", "PNG", "AVIF"),
        ("  image/avif ; q=1 ,\timage/webp  ", "JPEG", "AVIF"),
        ("image/webp;foo=bar;q=0.2, image/jpeg;level=1", "WEBP", "JPEG"),  # only q counts
        ("image/webp; charset=utf-8", "JPEG", "WEBP"),
        ("image/jpg", "WEBP", "JPEG"),  # what some clients call JPEG
        ("image/avif;q=0.5;q=0.9, image/webp;q=0.7", "JPEG", "WEBP"),  # the first q counts
        ("image/webp;q=0.5, image/webp;q=0.9, image/avif;q=0.8", "JPEG", "WEBP"),  # the highest
    ],
)
def test_spelling_and_parameters(accept: str, stored: str, expected: str) -> None:
    assert choose_format(accept, stored) == expected


@pytest.mark.parametrize(
    "accept",
    [
        "garbage",
        ";;;,,,",
        "image/",
        "/webp",
        "image/webp/extra",
        "image/webp;q=abc",
        "image/webp;q=2",
        "image/webp;q=-1",
        "image/webp;q=",
        "image/webp;q=0.1234",
        "image/we bp",
        "\x00\xff\ufffd",
        "image/avif\x00",
        "ïmage/avif",
        "a" * 100_000,
        "image/webp;q=nan",
        "image/webp;q=inf",
    ],
)
@pytest.mark.parametrize("stored", STORED)
def test_garbage_serves_the_stored_format(accept: str, stored: str) -> None:
    assert choose_format(accept, stored) == stored


def test_a_malformed_range_does_not_spoil_the_others() -> None:
    assert choose_format("image/webp;q=abc, ;;, image/avif;q=0.9, x/", "JPEG") == "AVIF"
    assert choose_format("x" * 10_000 + ",image/webp" * 2_000, "JPEG") == "WEBP"


def test_an_unknown_stored_format_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown stored format"):
        choose_format(CHROME, "GIF")


def test_media_types_cover_every_format_choose_can_return() -> None:
    assert dict(MEDIA_TYPES) == {
        "AVIF": "image/avif",
        "WEBP": "image/webp",
        "JPEG": "image/jpeg",
        "PNG": "image/png",
    }


# --- transcode --------------------------------------------------------------------------------


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


SOURCES = {
    "JPEG": lambda: factory.jpeg(160, 120),
    "PNG": lambda: factory.png_rgba(160, 120),
    "WEBP": lambda: factory.webp(160, 120),
    "AVIF": lambda: factory.avif(160, 120),
}


@pytest.mark.parametrize("target", ["AVIF", "WEBP", "JPEG"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_transcode_gives_the_target_format_at_the_same_size(source: str, target: str) -> None:
    out = _open(transcode(SOURCES[source](), target))
    assert out.format == target
    assert out.size == (160, 120)


def test_transcode_to_jpeg_flattens_transparency_onto_white() -> None:
    out = _open(transcode(factory.png_rgba(120, 80), "JPEG"))
    assert out.mode == "RGB"
    r, g, b = out.convert("RGB").getpixel((0, 40))  # type: ignore[misc]  # the fully transparent column
    assert min(r, g, b) > 235


def test_transcode_to_webp_keeps_transparency() -> None:
    out = _open(transcode(factory.png_rgba(120, 80), "WEBP"))
    assert out.mode == "RGBA"
    alpha = out.getchannel("A")
    assert alpha.getpixel((0, 40)) < 8  # transparent at the left
    assert alpha.getpixel((119, 40)) > 247  # opaque at the right


def test_transcode_carries_no_exif() -> None:
    source = factory.jpeg(160, 120)  # camera EXIF with GPS
    assert _open(source).getexif()
    for target in ("AVIF", "WEBP", "JPEG"):
        out = _open(transcode(source, target))
        assert "exif" not in out.info
        assert not out.getexif()


def test_transcode_keeps_an_rgb_colour_profile() -> None:
    icc = factory.srgb_icc()
    out = _open(transcode(factory.jpeg(160, 120, icc=icc), "WEBP"))
    assert out.info.get("icc_profile") == icc


def test_quality_changes_the_size() -> None:
    source = factory.jpeg(320, 240)
    assert len(transcode(source, "WEBP", quality=20)) < len(transcode(source, "WEBP", quality=95))


def test_an_oversized_image_is_refused_before_decoding() -> None:
    with pytest.raises(ValueError, match="pixels"):
        transcode(factory.png_header_only(4097, 4096), "WEBP")
    assert MAX_TRANSCODE_PIXELS < 4097 * 4096


def test_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(ValueError, match="transcode"):
        transcode(factory.png_header_only(100_000, 100_000), "JPEG")


@pytest.mark.parametrize(
    "data",
    [b"", factory.random_bytes(), factory.png_header_only(64, 64, idat=b"broken"), factory.gif_animated()],
)
def test_bytes_that_are_not_a_derivative_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="transcode"):
        transcode(data, "WEBP")


@pytest.mark.parametrize(("target", "quality"), [("PNG", 80), ("GIF", 80), ("webp", 80), ("JPEG", 0)])
def test_unknown_targets_and_qualities_are_refused(target: str, quality: int) -> None:
    with pytest.raises(ValueError, match=r"transcode to|quality"):
        transcode(factory.jpeg(32, 32), target, quality)
