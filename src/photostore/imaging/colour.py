"""Bring any decoded mode to 8-bit RGB or RGBA, and decide which ICC profile may follow the pixels."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

MAX_ICC_BYTES = 1024 * 1024
_WHITE = (255, 255, 255)
_HAS_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_RGB_FAMILY = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA"})
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_rgb_or_rgba(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """``im`` as 8-bit RGB (RGBA when it has transparency), and the ICC profile to embed, if any.

    * palette and grey images expand; ``P`` or ``L`` with a transparent colour becomes RGBA;
    * 16- and 32-bit grey is scaled to 8 bits (not clipped);
    * CMYK goes to sRGB through its embedded profile when it has one, else Pillow's plain formula;
    * the source's ICC profile is kept only when it describes RGB data, so a grey or CMYK profile is
      never attached to RGB pixels. The caller's image is not modified.
    """
    icc = im.info.get("icc_profile")
    icc = icc if isinstance(icc, bytes) and 0 < len(icc) <= MAX_ICC_BYTES else None
    keep_icc = icc if im.mode in _RGB_FAMILY and icc is not None and icc[16:20] == b"RGB " else None
    if im.mode == "CMYK":
        return _cmyk_to_srgb(im, icc), None
    if im.mode.startswith(("I", "F")):
        im = _deep_grey_to_l(im)
    if im.mode in ("RGB", "RGBA"):
        out = im
    elif im.mode in _HAS_ALPHA or "transparency" in im.info:
        out = im.convert("RGBA")
    else:
        out = im.convert("RGB")
    return out, keep_icc


def flatten(im: Image.Image) -> Image.Image:
    """An RGB image: RGBA is composited over white (for JPEG, which has no alpha)."""
    if im.mode == "RGB":
        return im
    rgba = im.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _deep_grey_to_l(im: Image.Image) -> Image.Image:
    """16-bit data is scaled by 255/65535 (a dim picture stays dim); wider data by its own peak."""
    as_int = im.convert("I") if im.mode.startswith("I;16") else im
    extrema = as_int.getextrema()
    peak = float(extrema[1]) if isinstance(extrema[1], int | float) else 255.0
    scale = 1.0 if peak <= 255 else 255 / max(peak, 65535.0)
    return as_int.point(lambda v: v * scale).convert("L")


def _cmyk_to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc is not None and icc[16:20] == b"CMYK":
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile: fall back to the formula
        if converted is not None:
            return converted
    return im.convert("RGB")
