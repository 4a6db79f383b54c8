"""Blurhash placeholders: a ~30-character string a client paints while the real image loads."""

from __future__ import annotations

from blurhash._functions import ffi, lib
from PIL import Image

from photostore.imaging import colour
from photostore.imaging.geometry import fit

X_COMPONENTS, Y_COMPONENTS = 4, 3
# A blurhash holds 4x3 low-frequency terms, so it is computed from the picture box-shrunk to this many
# pixels: decoded, it differs from the full-size one by ~2/255 per channel on average (invisible in a
# blur) and costs a sixteenth of a 256 px thumbnail's.
_SAMPLE_PX = 64


def blurhash_of(image: Image.Image) -> str:
    """The blurhash (4x3 components) of an RGB or RGBA image; alpha is flattened onto white.

    Calls the C encoder of blurhash-python directly: its public ``encode`` copies every pixel into a
    Python list under the GIL and uses ``Image.getdata``, deprecated in Pillow 13.
    """
    small = colour.flatten(image.resize(fit(image.size, _SAMPLE_PX), Image.Resampling.BOX))
    pixels = small.tobytes()
    out = ffi.new("char[]", 2 + 4 + (9 * 9 - 1) * 2 + 1)  # the longest hash, as the library sizes it
    result = lib.create_hash_from_pixels(
        X_COMPONENTS, Y_COMPONENTS, small.width, small.height, ffi.from_buffer(pixels), small.width * 3, out
    )
    if result == ffi.NULL:
        raise ValueError("blurhash encoder refused the image")
    text: str = ffi.string(result).decode("ascii")
    return text
