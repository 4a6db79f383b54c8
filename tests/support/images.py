"""Small real images for API tests, made with Pillow (distinct bytes per seed)."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image


def jpeg(width: int = 640, height: int = 480, seed: int = 0, exif: Image.Exif | None = None) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    # A few random rectangles make each seed's bytes (and hash) different and the image photo-like.
    pixels = image.load()
    assert pixels is not None
    for _ in range(20):
        x, y = rng.randrange(width), rng.randrange(height)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        for dx in range(min(30, width - x)):
            for dy in range(min(30, height - y)):
                pixels[x + dx, y + dy] = color
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif if exif is not None else Image.Exif())
    return out.getvalue()


def png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    image = Image.new("RGBA", (width, height), (seed % 256, 100, 200, 128))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "BMP")
    return out.getvalue()


def png_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims width x height pixels, with one tiny compressed row of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
