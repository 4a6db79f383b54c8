"""Blurhash placeholders: a ~30-character string a client paints while the real image loads."""

from __future__ import annotations

from blurhash._functions import ffi, lib
from PIL import Image

X_COMPONENTS, Y_COMPONENTS = 4, 3
# A blurhash holds 4x3 cosine terms: the picture shrunk to this many pixels gives the same string to
# within rounding, at a hundredth of the cost.
_SAMPLE_PX = 32


def blurhash_of(image: Image.Image) -> str:
    """The blurhash (4x3 components) of an RGB or RGBA image; alpha is flattened onto white.

    Calls the C encoder of blurhash-python directly: its public ``encode`` copies every pixel into a
    Python list under the GIL and uses ``Image.getdata``, deprecated in Pillow 13.
    """
    small = image.copy()
    small.thumbnail((_SAMPLE_PX, _SAMPLE_PX), Image.Resampling.BOX, reducing_gap=None)
    if small.mode != "RGB":
        small = _flatten(small.convert("RGBA"))
    pixels = small.tobytes()
    out = ffi.new("char[]", 2 + 4 + (9 * 9 - 1) * 2 + 1)  # the longest hash, as the library sizes it
    result = lib.create_hash_from_pixels(
        X_COMPONENTS, Y_COMPONENTS, small.width, small.height, ffi.from_buffer(pixels), small.width * 3, out
    )
    if result == ffi.NULL:
        raise ValueError("blurhash encoder refused the image")
    text: str = ffi.string(result).decode("ascii")
    return text


def _flatten(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
