"""Real image bytes for the imaging tests, made on the fly (no fixture files).

Well-formed images come from Pillow's own encoders; hostile ones (bombs, huge screens, thousands of
frames, broken EXIF) are assembled byte by byte, because no encoder would write them.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any

from PIL import Image, ImageCms, ImageDraw

from photostore.imaging import samples
from photostore.imaging.samples import render_photo, sample_exif

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def photo(width: int = 400, height: int = 300, seed: int = 7) -> Image.Image:
    return render_photo(width, height, seed)


def marked_photo(width: int = 400, height: int = 300) -> Image.Image:
    """A photo with a red square in its stored top-left corner, to see where orientation puts it."""
    image = photo(width, height)
    side = min(width, height) // 5
    ImageDraw.Draw(image).rectangle((0, 0, side, side), fill=RED)
    return image


def jpeg(
    width: int = 400,
    height: int = 300,
    *,
    orientation: int = 1,
    gps: bool = True,
    exif: bool = True,
    icc: bytes | None = None,
    image: Image.Image | None = None,
) -> bytes:
    """A photo-like JPEG with camera EXIF (GPS, DateTimeOriginal+offset) and the given orientation."""
    source = image if image is not None else photo(width, height)
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": 90}
    if exif:
        options["exif"] = sample_exif(orientation=orientation, gps=gps).tobytes()
    if icc is not None:
        options["icc_profile"] = icc
    source.save(out, "JPEG", **options)
    return out.getvalue()


def photo_12mp() -> bytes:
    """The benchmark photo: 4000x3000, ~4.3 MB, cached on disk by the samples module."""
    return samples.make_photo_jpeg(4000, 3000, seed=1)


def save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_rgba(width: int = 120, height: int = 80) -> bytes:
    """RGB photo with an alpha ramp: opaque at the right, fully transparent in the left column."""
    image = photo(width, height).convert("RGBA")
    alpha = Image.linear_gradient("L").rotate(90).resize((width, height))  # black (clear) at the left
    image.putalpha(alpha)
    return save(image, "PNG")


def gif_animated(frames: int = 3, width: int = 60, height: int = 40) -> bytes:
    colours = [RED, (0, 255, 0), BLUE, WHITE, (255, 255, 0)]
    images = [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(frames)]
    for i, image in enumerate(images):  # make each frame distinct so Pillow keeps them all
        ImageDraw.Draw(image).point((i % width, 0), fill=(i % 256, 0, 0))
    return save(images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)


def webp(width: int = 120, height: int = 80, **options: Any) -> bytes:
    return save(photo(width, height), "WEBP", quality=80, **options)


def webp_animated(frames: int = 3) -> bytes:
    images = [photo(64, 48, seed=i) for i in range(frames)]
    return save(images[0], "WEBP", save_all=True, append_images=images[1:], duration=100)


def apng(frames: int = 2) -> bytes:
    images = [photo(64, 48, seed=i) for i in range(frames)]
    return save(images[0], "PNG", save_all=True, append_images=images[1:])


def heic(width: int = 120, height: int = 80) -> bytes:
    return save(photo(width, height), "HEIF", quality=80)


def avif(width: int = 120, height: int = 80) -> bytes:
    return save(photo(width, height), "AVIF", quality=70)


def tiff(width: int = 120, height: int = 80) -> bytes:
    return save(photo(width, height), "TIFF", compression="tiff_lzw")


def mpo(width: int = 120, height: int = 80) -> bytes:
    """A multi-picture JPEG, as phones write (primary picture plus a second one)."""
    first, second = photo(width, height, seed=1), photo(width, height, seed=2)
    return save(first, "MPO", save_all=True, append_images=[second])


def bmp(width: int = 40, height: int = 30) -> bytes:
    return save(photo(width, height), "BMP")


def cmyk_jpeg(width: int = 80, height: int = 60) -> bytes:
    return save(Image.new("CMYK", (width, height), (0, 255, 255, 0)), "JPEG")  # red in CMYK


def grey16_png(width: int = 64, height: int = 48, level: int = 32768) -> bytes:
    return save(Image.new("I;16", (width, height), level), "PNG")


def srgb_icc() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data: bytes = profile.tobytes()
    return data


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXT = b"Dear photostore, this is not a picture.\n" * 4


def random_bytes(size: int = 4096, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


# --- assembled by hand ----------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height``; the IDAT holds a little (or the given) data.

    At 100000 x 100000 RGB this is a decompression bomb: 30 GB of pixels behind a few hundred bytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    payload = idat if idat is not None else zlib.compress(b"\x00" * 65536, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", payload)
        + _png_chunk(b"IEND", b"")
    )


# One 1x1 frame: image descriptor, LZW minimum code size 2, codes CLEAR(4) 0 EOI(5) in 3 bits each.
_GIF_FRAME = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"


def gif_raw(frames: int = 1, screen: tuple[int, int] = (1, 1)) -> bytes:
    """A GIF of ``frames`` 1x1 frames on a logical screen of ``screen`` pixels."""
    header = b"GIF89a" + struct.pack("<HH", *screen) + b"\x80\x00\x00"  # 2-colour global table
    palette = b"\x00\x00\x00\xff\xff\xff"
    return header + palette + _GIF_FRAME * frames + b"\x3b"


def tiff_exif(entries: list[tuple[int, int, int, bytes]], *, next_ifd: int = 0) -> bytes:
    """Big-endian TIFF bytes with one IFD at offset 8: entries are (tag, type, count, 4-byte value)."""
    body = struct.pack(">H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
    return b"MM\x00\x2a" + struct.pack(">I", 8) + body + struct.pack(">I", next_ifd)


def jpeg_with_raw_exif(raw_tiff: bytes) -> bytes:
    """A small valid JPEG whose APP1 carries ``raw_tiff`` as its EXIF, however broken."""
    return save(photo(64, 48), "JPEG", exif=b"Exif\x00\x00" + raw_tiff)


def png_with_raw_exif(raw_tiff: bytes) -> bytes:
    """A PNG with an eXIf chunk before its pixels (no size limit there, unlike JPEG's 64 KB APP1)."""
    plain = save(photo(32, 24), "PNG")
    idat = plain.index(b"IDAT") - 4
    return plain[:idat] + _png_chunk(b"eXIf", raw_tiff) + plain[idat:]


def rational(numerator: int, denominator: int) -> bytes:
    return struct.pack(">II", numerator, denominator)
