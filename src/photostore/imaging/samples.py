"""Deterministic, photo-like sample JPEGs for tests and benchmarks (no fixture files in the repo).

``make_photo_jpeg(4000, 3000, seed)`` gives a 12-megapixel JPEG of about 4 MB that compresses like a
photo: smooth colour fields, blurred shapes with edges, mid-frequency texture and sensor-like grain,
encoded at quality 92 with 4:2:0 chroma as cameras do. The same arguments give the same bytes on any
machine with this Pillow; files are cached under the temp folder because making a 12-MP one takes
about half a second.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from PIL.TiffImagePlugin import IFDRational

CACHE_DIR = Path(tempfile.gettempdir()) / "photostore-samples"
_VERSION = 1  # bump when the generator changes, so stale cached files are not reused

# The EXIF written when ``exif=True``: a plausible camera, time and place (Zurich, 408 m).
SAMPLE_TAKEN_AT = "2024:06:01 12:34:56"
SAMPLE_OFFSET = "+02:00"
SAMPLE_GPS = (47.376_9, 8.541_7, 408.0)


def make_photo_jpeg(width: int, height: int, seed: int, exif: bool = True) -> bytes:
    """A photo-like JPEG of ``width`` x ``height``, identical for identical arguments.

    With ``exif`` the file carries camera make/model, lens, exposure, DateTimeOriginal with its
    offset, and GPS (see ``SAMPLE_*``); orientation is 1.
    """
    path = CACHE_DIR / f"photo-v{_VERSION}-{width}x{height}-s{seed}-{'exif' if exif else 'plain'}.jpg"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data = encode_jpeg(render_photo(width, height, seed), exif=sample_exif() if exif else None)
    _write_atomically(path, data)
    return data


def render_photo(width: int, height: int, seed: int) -> Image.Image:
    """The RGB pixels of a sample photo (deterministic for a seed)."""
    rng = random.Random(seed)
    size = (width, height)
    # Smooth colour field: a tiny random image blown up.
    image = Image.frombytes("RGB", (8, 6), rng.randbytes(8 * 6 * 3)).resize(size, Image.Resampling.BICUBIC)
    image = Image.blend(image, _shapes(rng, width, height), 0.55)
    # Texture at a third of the resolution plus per-pixel grain, like foliage and sensor noise.
    tw, th = max(1, width // 3), max(1, height // 3)
    texture = Image.frombytes("L", (tw, th), rng.randbytes(tw * th)).resize(size, Image.Resampling.BILINEAR)
    grain = Image.frombytes("L", size, rng.randbytes(width * height))
    noise = Image.blend(texture, grain, 0.5).convert("RGB")
    return Image.blend(image, noise, 0.18)


def _shapes(rng: random.Random, width: int, height: int) -> Image.Image:
    sw, sh = max(1, width // 4), max(1, height // 4)
    layer = Image.new("RGB", (sw, sh))
    draw = ImageDraw.Draw(layer)
    for _ in range(60):
        x, y = rng.randrange(sw), rng.randrange(sh)
        r = rng.randrange(max(1, sw // 40), max(2, sw // 5))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.polygon([(x + rng.randint(-r, r), y + rng.randint(-r, r)) for _ in range(5)], fill=colour)
    return layer.filter(ImageFilter.GaussianBlur(2)).resize((width, height), Image.Resampling.BILINEAR)


def sample_exif(orientation: int = 1, gps: bool = True) -> Image.Exif:
    """A camera-like EXIF block; tests vary the orientation and drop the GPS."""
    exif = Image.Exif()
    exif[0x010F] = "Photostore"  # Make
    exif[0x0110] = "Sample Camera 12"  # Model
    exif[0x0131] = "photostore samples"  # Software
    exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = SAMPLE_TAKEN_AT  # DateTimeOriginal
    sub[0x9011] = SAMPLE_OFFSET  # OffsetTimeOriginal
    sub[0x829A] = IFDRational(1, 250)  # ExposureTime
    sub[0x829D] = IFDRational(28, 10)  # FNumber
    sub[0x8827] = 200  # ISO
    sub[0x920A] = IFDRational(35, 1)  # FocalLength
    sub[0xA434] = "Sample 35mm F2.8"  # LensModel
    if gps:
        latitude, longitude, altitude = SAMPLE_GPS
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1], gps_ifd[2] = "N", _dms(latitude)
        gps_ifd[3], gps_ifd[4] = "E", _dms(longitude)
        gps_ifd[5], gps_ifd[6] = 0, IFDRational(int(altitude * 10), 10)
    return exif


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees, minutes, seconds as EXIF rationals (seconds to 1/10000)."""
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60 * 10_000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10_000)


def encode_jpeg(image: Image.Image, exif: Image.Exif | None = None, quality: int = 92) -> bytes:
    out = io.BytesIO()
    extra = {"exif": exif.tobytes()} if exif is not None else {}
    image.save(out, "JPEG", quality=quality, subsampling="4:2:0", **extra)
    return out.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    """Concurrent writers (benchmark processes) each rename a complete file into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
