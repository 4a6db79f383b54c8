"""``probe``: is this upload an image we accept? Decided from the bytes alone, without decoding pixels.

The declared content type and the file name are never consulted: the format is what the bytes are.
The checks run cheapest first, and nothing is decoded before the size limits have passed, so a
decompression bomb costs the same as any other header. See ``integrity`` for exactly which kinds of
truncation and corruption are caught here and which only surface when the image is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from photostore.errors import EmptyBody, ImageTooLarge, InvalidImage, UnsupportedFormat
from photostore.imaging import _pillow, integrity, polyglot
from photostore.imaging.exif import image_orientation
from photostore.imaging.exif_check import check_exif
from photostore.settings import LimitSettings

# Decoders that apply the orientation themselves and report the displayed size.
_SELF_ORIENTING = frozenset({"HEIF", "TIFF"})


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says.

    ``width`` and ``height`` are the displayed size, with the EXIF orientation applied;
    ``orientation`` is the EXIF orientation the file records (1..8, 1 when absent).
    """

    format: str  # Pillow's name; a multi-picture JPEG (MPO) is a JPEG
    content_type: str
    width: int
    height: int
    frames: int
    orientation: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe(data: bytes, limits: LimitSettings) -> ImageInfo:
    """Identify and bound an untrusted upload, or raise.

    Raises, in the order checked:
      ``EmptyBody`` for no bytes;
      ``UnsupportedFormat`` for a recognisable format outside ``limits.formats`` (BMP, SVG, PDF...);
      ``InvalidImage`` for anything whose header cannot be read (text, random bytes, broken headers);
      ``ImageTooLarge`` when width x height exceeds ``limits.max_pixels`` (read from the header,
      before any decode) or the frame count exceeds ``limits.max_frames`` (counted by walking the
      container, stopping at the limit, for GIF and TIFF; declared in the header for the others);
      ``InvalidImage`` for a truncated or structurally corrupt file (see ``integrity``).
    Costs a few milliseconds at most on a 12-megapixel JPEG: no entropy decoding happens.
    """
    if not data:
        raise EmptyBody("the upload has no bytes")
    with _pillow.open_image(data, limits) as im:
        exif = im.info.get("exif")
        if isinstance(exif, bytes):
            check_exif(exif)  # uploads only: a stored photo's variants are still made (derive.py)
        info = inspect_header(im, data, limits)
        with _pillow.parse_guard("cannot read the image structure"):
            _check_integrity(im, info.format, data, limits)
    return info


def inspect_header(im: Image.Image, data: bytes, limits: LimitSettings) -> ImageInfo:
    """The header checks of ``probe`` on an image just opened from ``data``: format, pixels, frames.

    No pixels are decoded and the structure beyond the headers is not checked; ``im`` stays usable
    and on its first frame. The derivative worker uses this before it decodes the same ``im``.
    """
    fmt = _pillow.format_name(im)
    if fmt not in limits.formats:
        raise UnsupportedFormat(f"{fmt} is not an accepted format; accepted: {', '.join(limits.formats)}")
    width, height = im.size
    _check_pixels(width, height, limits)
    with _pillow.parse_guard("cannot read the image structure"):
        orientation = _orientation(im)
        frames = _count_frames(im, fmt, data, limits.max_frames)
    if fmt not in _SELF_ORIENTING and orientation >= 5:  # 5..8 turn the image a quarter
        width, height = height, width
    return ImageInfo(
        format=fmt,
        content_type=_pillow.content_type_of(fmt, data),
        width=width,
        height=height,
        frames=frames,
        orientation=orientation,
    )


def _check_pixels(width: int, height: int, limits: LimitSettings) -> None:
    if width < 1 or height < 1:
        raise InvalidImage(f"the header declares an empty image ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}"
        )


def _orientation(im: Image.Image) -> int:
    recorded = im.info.get("original_orientation")  # pillow-heif resets the tag it applied
    if isinstance(recorded, int) and 1 <= recorded <= 8:
        return recorded
    return image_orientation(im)


def _count_frames(im: Image.Image, fmt: str, data: bytes, max_frames: int) -> int:
    if fmt == "GIF":
        return integrity.check_gif(data, max_frames)[0]  # also checks the structure
    if fmt == "JPEG":
        return 1  # an MPO's extra pictures (depth maps, previews) are not frames of the photo
    if fmt == "TIFF":
        return _count_tiff_pages(im, max_frames)
    frames = getattr(im, "n_frames", 1)  # declared in the header (APNG acTL, WebP ANIM, HEIF, AVIF)
    if not isinstance(frames, int) or frames < 1:
        raise InvalidImage(f"the header declares {frames!r} frames")
    if frames > max_frames:
        raise ImageTooLarge(f"the image has {frames} frames; the limit is {max_frames}")
    return frames


def _count_tiff_pages(im: Image.Image, max_frames: int) -> int:
    """Follow the IFD chain one page at a time, stopping just past the limit (Pillow stops loops)."""
    pages = 1
    try:
        while True:
            im.seek(pages)
            pages += 1
            if pages > max_frames:
                raise ImageTooLarge(f"the TIFF has more than {max_frames} pages")
    except EOFError:
        pass
    im.seek(0)
    return pages


def _check_integrity(im: Image.Image, fmt: str, data: bytes, limits: LimitSettings) -> None:
    """The container's structure, then what follows the image (see ``polyglot``)."""
    end: int | None = None
    if fmt == "JPEG":
        end = integrity.check_jpeg(data)
    elif fmt == "PNG":
        end = integrity.check_png(im, data)
    elif fmt == "WEBP":
        end = integrity.check_webp(data)
    elif fmt == "GIF":
        end = integrity.check_gif(data, limits.max_frames)[1]
    elif fmt in ("HEIF", "AVIF"):
        integrity.check_isobmff(data)
    elif fmt == "TIFF":
        integrity.check_tiff(im, len(data))
    if end is not None:
        polyglot.check_trailer(fmt, data[end:])
