"""Sizes and orientation: the arithmetic every variant shares."""

from __future__ import annotations

from PIL import Image

# EXIF orientation -> the transpose that makes the pixels upright (as ImageOps.exif_transpose does).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def fit(size: tuple[int, int], max_px: int) -> tuple[int, int]:
    """``size`` scaled to fit ``max_px`` on its longest side, keeping its aspect; never enlarged."""
    width, height = size
    longest = max(width, height)
    if longest <= max_px:
        return size
    scale = max_px / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size after applying EXIF ``orientation``: 5 to 8 turn a quarter, swapping the sides.

    Applying it to an upright size gives back the stored size: the same swap undoes itself.
    """
    return (size[1], size[0]) if orientation >= 5 else size
