"""make_derivatives(): right sizes, upright, no metadata, sane colours, a valid placeholder."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import blurhash
import pytest
from PIL import Image

from photostore.errors import ImageTooLarge, InvalidImage
from photostore.imaging.derive import Derivatives, make_derivatives
from photostore.imaging.geometry import fit
from photostore.imaging.samples import sample_exif
from photostore.imaging.validate import probe
from photostore.settings import ImagingSettings, LimitSettings, VariantSpec

from . import factory

LIMITS = LimitSettings()
DEFAULT_SPECS = ImagingSettings().variants  # thumb 256 WEBP q80, preview 1440 JPEG q85


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _sizes(result: Derivatives) -> dict[str, tuple[int, int]]:
    return {variant.name: (variant.width, variant.height) for variant in result.variants}


def test_a_12_megapixel_photo_gives_both_default_variants() -> None:
    result = make_derivatives(factory.photo_12mp(), DEFAULT_SPECS, LIMITS)

    assert _sizes(result) == {"thumb": (256, 192), "preview": (1440, 1080)}
    assert (result.width, result.height) == (4000, 3000)
    thumb, preview = result.get("thumb"), result.get("preview")
    assert (thumb.format, thumb.content_type) == ("WEBP", "image/webp")
    assert (preview.format, preview.content_type) == ("JPEG", "image/jpeg")
    for variant in result.variants:
        image = _open(variant.data)
        assert (image.format, image.size) == (variant.format, (variant.width, variant.height))


def test_variants_come_back_in_the_order_of_the_specs() -> None:
    specs = [VariantSpec(name="small", max_px=64, format="PNG"), *DEFAULT_SPECS]

    result = make_derivatives(factory.jpeg(), specs, LIMITS)

    assert [variant.name for variant in result.variants] == ["small", "thumb", "preview"]
    assert _sizes(result) == {"small": (64, 48), "thumb": (256, 192), "preview": (400, 300)}


def test_a_small_source_is_never_enlarged() -> None:
    result = make_derivatives(factory.webp(100, 50), DEFAULT_SPECS, LIMITS)

    assert _sizes(result) == {"thumb": (100, 50), "preview": (100, 50)}


def test_the_orientation_is_applied() -> None:
    # Stored 400x300 landscape with a red square at the stored top-left; orientation 6 means the
    # camera was turned a quarter clockwise, so upright it is a 300x400 portrait, square top-right.
    data = factory.jpeg(orientation=6, image=factory.marked_photo(400, 300))

    result = make_derivatives(data, DEFAULT_SPECS, LIMITS)

    assert _sizes(result) == {"thumb": (192, 256), "preview": (300, 400)}
    assert (result.width, result.height) == (300, 400)
    preview = _open(result.get("preview").data)
    assert _is_red(preview.getpixel((preview.width - 10, 10)))
    assert not _is_red(preview.getpixel((10, 10)))
    thumb = _open(result.get("thumb").data).convert("RGB")
    assert _is_red(thumb.getpixel((thumb.width - 5, 5)))


def _is_red(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    red, green, blue = pixel[:3]
    return bool(red > 200 and green < 60 and blue < 60)


def test_variants_carry_no_metadata() -> None:
    data = factory.jpeg(orientation=6)  # EXIF with camera, time and GPS

    result = make_derivatives(data, DEFAULT_SPECS, LIMITS)

    for variant in result.variants:
        image = _open(variant.data)
        assert dict(image.getexif()) == {}
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment"} & set(image.info)
        assert b"Exif\x00\x00" not in variant.data
        assert b"Photostore" not in variant.data  # the camera make


def test_an_icc_profile_is_kept() -> None:
    icc = factory.srgb_icc()

    result = make_derivatives(factory.jpeg(icc=icc), DEFAULT_SPECS, LIMITS)

    for variant in result.variants:
        assert _open(variant.data).info.get("icc_profile") == icc


def test_webp_keeps_alpha_and_jpeg_gets_a_white_background() -> None:
    result = make_derivatives(factory.png_rgba(120, 80), DEFAULT_SPECS, LIMITS)

    thumb = _open(result.get("thumb").data)
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((0, 40))[3] < 16  # type: ignore[index]  # the transparent left edge
    preview = _open(result.get("preview").data)
    assert preview.mode == "RGB"
    assert all(channel > 235 for channel in preview.getpixel((0, 40)))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("make", "expected_rgb"),
    [
        (factory.cmyk_jpeg, (255, 0, 0)),  # CMYK 0/255/255/0 is red
        (factory.grey16_png, (128, 128, 128)),  # 16-bit mid-grey is scaled, not clipped to white
        (factory.gif_animated, (255, 0, 0)),  # palette, animated: the first frame, red
    ],
    ids=["cmyk", "grey16", "gif-first-frame"],
)
def test_unusual_modes_come_out_as_sane_rgb(make: Callable[[], bytes], expected_rgb: tuple[int, ...]) -> None:
    result = make_derivatives(make(), DEFAULT_SPECS, LIMITS)

    preview = _open(result.get("preview").data)
    assert preview.mode == "RGB"
    pixel = preview.getpixel((preview.width // 2, preview.height // 2))
    assert isinstance(pixel, tuple)
    assert all(abs(got - want) <= 12 for got, want in zip(pixel, expected_rgb, strict=True))


@pytest.mark.parametrize(
    "make", [factory.heic, factory.avif, factory.tiff, factory.webp, factory.mpo, factory.apng]
)
def test_every_accepted_format_gives_variants(make: Callable[[], bytes]) -> None:
    result = make_derivatives(make(), DEFAULT_SPECS, LIMITS)

    assert all(_open(variant.data).size == (variant.width, variant.height) for variant in result.variants)


def test_avif_and_png_variants_can_be_configured() -> None:
    specs = [
        VariantSpec(name="a", max_px=200, format="AVIF", quality=60),
        VariantSpec(name="p", max_px=100, format="PNG"),
    ]

    result = make_derivatives(factory.png_rgba(400, 200), specs, LIMITS)

    assert {v.name: (_open(v.data).format, _open(v.data).mode) for v in result.variants} == {
        "a": ("AVIF", "RGBA"),
        "p": ("PNG", "RGBA"),
    }
    assert _sizes(result) == {"a": (200, 100), "p": (100, 50)}


def test_the_placeholder_is_a_valid_blurhash() -> None:
    result = make_derivatives(factory.jpeg(), DEFAULT_SPECS, LIMITS)

    assert blurhash.is_valid_blurhash(result.placeholder)
    assert len(result.placeholder) == 28  # 4x3 components: 6 + 2 * (4 * 3 - 1)


def test_invalid_input_is_refused_before_decoding() -> None:
    data = factory.jpeg()
    with pytest.raises(InvalidImage):
        make_derivatives(data[: len(data) // 2], DEFAULT_SPECS, LIMITS)
    with pytest.raises(ImageTooLarge):
        make_derivatives(factory.png_header_only(100_000, 100_000), DEFAULT_SPECS, LIMITS)


def test_pixel_data_that_fails_to_decode_is_invalid() -> None:
    # Passes probe (which never inflates), fails in the decoder.
    data = factory.png_header_only(200, 200, idat=b"not a deflate stream")

    with pytest.raises(InvalidImage, match="decode"):
        make_derivatives(data, DEFAULT_SPECS, LIMITS)


def test_threads_give_the_same_bytes_as_one_thread() -> None:
    sources = [factory.jpeg(seed_width, 300) for seed_width in (400, 410, 420, 430)]
    alone = [make_derivatives(data, DEFAULT_SPECS, LIMITS) for data in sources]

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda data: make_derivatives(data, DEFAULT_SPECS, LIMITS), sources))

    assert together == alone


@pytest.mark.parametrize(
    ("size", "max_px", "expected"),
    [
        ((4000, 3000), 256, (256, 192)),
        ((3000, 4000), 256, (192, 256)),
        ((100, 50), 256, (100, 50)),
        ((10000, 10), 256, (256, 1)),
    ],
)
def test_fit_keeps_the_aspect_and_never_enlarges(
    size: tuple[int, int], max_px: int, expected: tuple[int, int]
) -> None:
    assert fit(size, max_px) == expected


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF", "AVIF", "TIFF"])
def test_the_orientation_is_applied_once_in_every_format(fmt: str) -> None:
    # HEIF and TIFF decoders turn the pixels themselves; the others leave it to us. Either way the
    # result is upright exactly once.
    exif = sample_exif(orientation=6).tobytes()
    data = factory.save(factory.marked_photo(400, 300), fmt, exif=exif)

    info = probe(data, LIMITS)
    result = make_derivatives(data, DEFAULT_SPECS, LIMITS)

    assert (info.width, info.height, info.orientation) == (300, 400, 6)
    assert _sizes(result) == {"thumb": (192, 256), "preview": (300, 400)}
    preview = _open(result.get("preview").data)
    assert _is_red(preview.getpixel((preview.width - 10, 10)))


# Pillow warns about the corrupt EXIF while opening a JPEG (it looks there for the DPI). Outside the
# tests a warning is only a warning; under -W error it would abort the open, so let it be one here.
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_a_broken_exif_block_is_refused_at_upload_but_does_not_stop_the_variants() -> None:
    data = factory.jpeg_with_raw_exif(b"MM\x00\x2a\xff\xff\xff\xf0 not an IFD")

    with pytest.raises(InvalidImage, match="EXIF block is malformed"):
        probe(data, LIMITS)
    # A photo stored before uploads were checked this strictly still gets its variants.
    assert _sizes(make_derivatives(data, DEFAULT_SPECS, LIMITS)) == {"thumb": (64, 48), "preview": (64, 48)}
