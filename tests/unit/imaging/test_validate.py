"""probe(): the format comes from the bytes, limits hold before any decode, broken files are refused."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from photostore.errors import EmptyBody, ImageTooLarge, InvalidImage, UnsupportedFormat
from photostore.imaging.validate import ImageInfo, probe
from photostore.settings import LimitSettings

from . import factory

LIMITS = LimitSettings()


@pytest.mark.parametrize(
    ("make", "fmt", "content_type", "size", "frames"),
    [
        (factory.jpeg, "JPEG", "image/jpeg", (400, 300), 1),
        (factory.png_rgba, "PNG", "image/png", (120, 80), 1),
        (factory.apng, "PNG", "image/png", (64, 48), 2),
        (factory.gif_animated, "GIF", "image/gif", (60, 40), 3),
        (factory.webp, "WEBP", "image/webp", (120, 80), 1),
        (factory.webp_animated, "WEBP", "image/webp", (64, 48), 3),
        (factory.heic, "HEIF", "image/heic", (120, 80), 1),
        (factory.avif, "AVIF", "image/avif", (120, 80), 1),
        (factory.tiff, "TIFF", "image/tiff", (120, 80), 1),
        (factory.mpo, "JPEG", "image/jpeg", (120, 80), 1),
        (factory.cmyk_jpeg, "JPEG", "image/jpeg", (80, 60), 1),
        (factory.grey16_png, "PNG", "image/png", (64, 48), 1),
    ],
)
def test_every_accepted_format_probes_right(
    make: Callable[[], bytes], fmt: str, content_type: str, size: tuple[int, int], frames: int
) -> None:
    info = probe(make(), LIMITS)

    assert info == ImageInfo(
        format=fmt, content_type=content_type, width=size[0], height=size[1], frames=frames, orientation=1
    )


def test_a_quarter_turned_jpeg_reports_its_displayed_size_and_orientation() -> None:
    info = probe(factory.jpeg(400, 300, orientation=6), LIMITS)

    assert (info.width, info.height, info.orientation) == (300, 400, 6)


def test_the_format_comes_from_the_bytes_not_from_any_name() -> None:
    png = factory.png_rgba()
    assert probe(png, LIMITS).content_type == "image/png"  # probe is given no name or type at all
    assert probe(factory.jpeg(), LIMITS).format == "JPEG"


def test_no_bytes_is_an_empty_body() -> None:
    with pytest.raises(EmptyBody):
        probe(b"", LIMITS)


@pytest.mark.parametrize(
    "data",
    [factory.random_bytes(), factory.TEXT, b"\x00", b"GIF89a", b"\xff\xd8\xff"],
    ids=["random", "text", "one-byte", "gif-magic-only", "jpeg-magic-only"],
)
def test_what_is_no_image_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        probe(data, LIMITS)


@pytest.mark.parametrize(
    ("data", "named"),
    [(factory.SVG, "SVG"), (factory.PDF, "PDF"), (factory.bmp(), "BMP")],
    ids=["svg", "pdf", "bmp"],
)
def test_recognised_formats_outside_the_allowlist_are_unsupported(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedFormat, match=named):
        probe(data, LIMITS)


def test_the_allowlist_comes_from_the_settings() -> None:
    jpeg_only = LimitSettings(formats=("JPEG",))

    assert probe(factory.jpeg(), jpeg_only).format == "JPEG"
    with pytest.raises(UnsupportedFormat, match="PNG"):
        probe(factory.png_rgba(), jpeg_only)


TRUNCATABLE: dict[str, Callable[[], bytes]] = {
    "jpeg": factory.jpeg,
    "png": factory.png_rgba,
    "gif": factory.gif_animated,
    "webp": factory.webp,
    "heic": factory.heic,
    "avif": factory.avif,
    "tiff": factory.tiff,
}


@pytest.mark.parametrize("kind", sorted(TRUNCATABLE))
@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.9, -1], ids=["2%", "30%", "60%", "90%", "all-but-1"])
def test_truncated_files_are_invalid(kind: str, keep: float) -> None:
    data = TRUNCATABLE[kind]()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)

    with pytest.raises(InvalidImage):
        probe(data[:cut], LIMITS)


def test_a_12_megapixel_photo_cut_short_is_invalid() -> None:
    data = factory.photo_12mp()

    with pytest.raises(InvalidImage, match="truncated"):
        probe(data[: len(data) // 2], LIMITS)


def _patched(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def test_corrupt_headers_are_invalid() -> None:
    jpeg, png, gif = factory.jpeg(), factory.png_rgba(), factory.gif_raw(frames=2)
    sof = jpeg.index(b"\xff\xc0")
    second_frame = 13 + 6 + 15  # header, 2-colour palette, one 15-byte frame
    broken = [
        _patched(jpeg, 0, b"\x00\x00\x00\x00"),  # no SOI
        _patched(jpeg, sof + 2, b"\xff\xff"),  # frame header length past the end
        _patched(png, 16, b"\xff\xff\xff\xff"),  # IHDR width changed: CRC no longer matches
        _patched(png, png.index(b"IDAT") + 40, b"\x00\x01\x02\x03"),  # pixel data changed: CRC fails
        _patched(gif, second_frame, b"\x99"),  # no such GIF block
        _patched(gif, second_frame + 11, b"\xff"),  # a data sub-block longer than the file
    ]
    for data in broken:
        with pytest.raises(InvalidImage):
            probe(data, LIMITS)


def test_a_stray_marker_inside_jpeg_scan_data_is_invalid() -> None:
    data = factory.jpeg()
    scan = data.index(b"\xff\xda")
    middle = scan + (len(data) - scan) // 2

    with pytest.raises(InvalidImage, match="0x"):
        probe(_patched(data, middle, b"\xff\x02"), LIMITS)  # 0xFF02 is no JPEG marker


def test_a_png_bomb_is_refused_from_its_header_at_once() -> None:
    bomb = factory.png_header_only(100_000, 100_000)  # 30 GB of pixels behind ~200 bytes

    started = time.perf_counter()
    with pytest.raises(ImageTooLarge):
        probe(bomb, LIMITS)
    assert time.perf_counter() - started < 0.5


def test_probe_reads_headers_only_and_checks_pixels_first() -> None:
    # The IDAT holds no deflate stream: probe never inflates it, so it passes the probe (the
    # derivative worker's decode refuses it), and the pixel limit answers from the header alone.
    data = factory.png_header_only(200, 200, idat=b"not a deflate stream")

    assert (probe(data, LIMITS).width, probe(data, LIMITS).height) == (200, 200)
    with pytest.raises(ImageTooLarge, match="40,000 pixels"):
        probe(data, LimitSettings(max_pixels=10_000))


def test_a_gif_with_a_huge_logical_screen_is_too_large() -> None:
    with pytest.raises(ImageTooLarge):
        probe(factory.gif_raw(frames=1, screen=(65_535, 65_535)), LIMITS)


def test_a_gif_with_more_frames_than_allowed_is_too_large() -> None:
    assert probe(factory.gif_raw(frames=1000), LIMITS).frames == 1000

    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="frames"):
        probe(factory.gif_raw(frames=100_000), LIMITS)
    assert time.perf_counter() - started < 0.5  # the walk stops at the limit


@pytest.mark.parametrize("make", [factory.gif_animated, factory.webp_animated, factory.apng])
def test_the_frame_limit_holds_for_every_animated_format(make: Callable[[], bytes]) -> None:
    with pytest.raises(ImageTooLarge, match="frames"):
        probe(make(), LimitSettings(max_frames=1))


def test_probe_costs_a_few_milliseconds_on_a_12_megapixel_jpeg() -> None:
    data = factory.photo_12mp()
    assert len(data) > 3_000_000
    probe(data, LIMITS)

    timings = []
    for _ in range(9):
        started = time.perf_counter()
        info = probe(data, LIMITS)
        timings.append(time.perf_counter() - started)

    assert (info.width, info.height) == (4000, 3000)
    assert statistics.median(timings) < 0.02  # ~2 ms measured; slack for a busy CI machine
