"""Derivatives: the configured variants (thumb, preview...) of one photo, from one decode.

``make_derivatives`` guarantees:

* the header checks of ``probe`` run first (format allowlist, pixel and frame limits), so nothing is
  decoded that they would refuse; the structural checks of ``probe`` are left to the decoder, which
  refuses a truncated file (``InvalidImage``) and renders damaged entropy-coded data as best it can;
* the source is decoded once, and a JPEG only at the smallest DCT scale (1/2, 1/4, 1/8) that still
  covers the largest variant (shrink-on-load);
* the EXIF orientation is applied, so a portrait photo gives portrait variants;
* each variant fits in ``max_px`` x ``max_px`` with the source's aspect ratio, is never larger than the
  source, and is made from the next larger variant;
* output carries no metadata at all (no EXIF, GPS, XMP, comments); an RGB ICC profile is kept so
  colours stay right; WebP, PNG and AVIF keep transparency, JPEG gets a white background;
* an animated source gives its first frame;
* the work runs in Pillow's C code with the GIL released (decode, resize, encode), so worker threads
  run in parallel.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from photostore.errors import EmptyBody, InvalidImage
from photostore.imaging import _pillow, colour
from photostore.imaging.exif import image_orientation
from photostore.imaging.geometry import UPRIGHT, fit, upright_size
from photostore.imaging.placeholder import blurhash_of
from photostore.imaging.validate import inspect_header
from photostore.settings import LimitSettings, VariantSpec

# The first resize makes the largest variant. For a JPEG it runs on the shrunk-on-load decode, under
# 2x the target, where bicubic (area-aware in Pillow when it shrinks) keeps the visible detail at three
# quarters of the cost of Lanczos 3: after JPEG q85 the preview is ~0.1 dB PSNR from the Lanczos one
# (bench/thumbnails.py --filters measures both). Smaller variants come from the previous one over
# larger ratios, where Lanczos 3 is worth it against aliasing. Both first box-reduce by an integer
# factor while the ratio exceeds the gap: 2.0 keeps the large variant within 0.1 dB of a fair resample,
# 1.5 halves the cost of a 256 px thumb from 1440 px (3.6 ms, not 5.9) at 53 dB PSNR against a fair
# Lanczos, far above what WebP q80 keeps (~35 dB).
FIRST_FILTER = Image.Resampling.BICUBIC
FIRST_REDUCING_GAP = 2.0
NEXT_FILTER = Image.Resampling.LANCZOS
NEXT_REDUCING_GAP = 1.5
WEBP_METHOD = 4  # libwebp's default effort; the same as libvips' default


@dataclass(frozen=True, slots=True)
class Derived:
    """One encoded variant."""

    name: str
    format: str
    content_type: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Derivatives:
    """All variants of a photo (in the order of the specs), its placeholder and its upright size."""

    variants: list[Derived]
    placeholder: str  # blurhash, 4x3 components, of the smallest variant
    width: int  # the source's displayed size, orientation applied
    height: int

    def get(self, name: str) -> Derived:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)


def make_derivatives(data: bytes, specs: Sequence[VariantSpec], limits: LimitSettings) -> Derivatives:
    """Decode ``data`` once and encode every variant in ``specs`` (see the module doc).

    Raises ``EmptyBody``, ``UnsupportedFormat`` and ``ImageTooLarge`` as ``probe`` does, and
    ``InvalidImage`` when the header or the pixels fail to decode.
    """
    if not specs:
        raise ValueError("no variant specs given")
    if not data:
        raise EmptyBody("no bytes to decode")
    decoded = _decode(data, limits, max(spec.max_px for spec in specs))
    upright = upright_size(decoded.full_size, decoded.orientation)
    images: dict[str, Image.Image] = {}
    current: Image.Image | None = None
    for spec in sorted(specs, key=lambda s: s.max_px, reverse=True):
        target = fit(upright, spec.max_px)
        if current is None:  # the largest: from the decode, then made upright
            current = _first(decoded, target)
        elif current.size != target:
            current = current.resize(target, NEXT_FILTER, reducing_gap=NEXT_REDUCING_GAP)
        images[spec.name] = current
    assert current is not None  # specs is not empty
    return Derivatives(
        variants=[_encode(images[spec.name], spec, decoded.icc) for spec in specs],
        placeholder=blurhash_of(current),
        width=upright[0],
        height=upright[1],
    )


@dataclass(frozen=True, slots=True)
class _Decoded:
    pixels: Image.Image  # RGB or RGBA, no metadata, possibly shrunk on load
    icc: bytes | None
    orientation: int  # still to apply to ``pixels``
    full_size: tuple[int, int]  # before shrink-on-load, as stored (orientation not applied)
    box: tuple[float, float, float, float] | None  # the source's exact extent in shrunk pixels


def _decode(data: bytes, limits: LimitSettings, largest: int) -> _Decoded:
    """Decode the first frame, shrunk on load where the codec can (JPEG), as RGB(A)."""
    what = "cannot decode the image"
    # Not closed: closing would free the pixels; the file is a BytesIO, garbage collection suffices.
    im = _pillow.open_image(data, limits, what)
    inspect_header(im, data, limits)  # format, pixel and frame limits: nothing is decoded before them
    with _pillow.parse_guard(what):
        full = im.size
        box = None
        if max(full) > largest:
            scale = largest / max(full)
            request = (math.ceil(full[0] * scale), math.ceil(full[1] * scale))
            drafted = im.draft(None, request)  # JPEG only: DCT-domain downscale during decode
            if drafted is not None and im.size != full:
                box = drafted[1]
        im.load()
        # Read after load: decoders that orient the pixels themselves (HEIF, TIFF) leave 1 here.
        orientation = image_orientation(im)
        pixels, icc = colour.to_rgb_or_rgba(im)
    pixels.info = {}  # nothing of the source's metadata may reach an encoder
    return _Decoded(pixels=pixels, icc=icc, orientation=orientation, full_size=full, box=box)


def _first(decoded: _Decoded, upright_target: tuple[int, int]) -> Image.Image:
    target = upright_size(upright_target, decoded.orientation)  # the same turn undoes itself
    image = decoded.pixels
    if image.size != target or decoded.box is not None:
        image = image.resize(target, FIRST_FILTER, box=decoded.box, reducing_gap=FIRST_REDUCING_GAP)
    method = UPRIGHT.get(decoded.orientation)
    return image.transpose(method) if method is not None else image


def _encode(image: Image.Image, spec: VariantSpec, icc: bytes | None) -> Derived:
    options: dict[str, Any] = {"quality": spec.quality}
    if spec.format == "JPEG":
        image = colour.flatten(image)
    elif spec.format == "WEBP":
        options["method"] = WEBP_METHOD
    elif spec.format == "PNG":
        options = {}  # lossless: quality does not apply
    if icc is not None:
        options["icc_profile"] = icc
    out = io.BytesIO()
    try:
        image.save(out, spec.format, **options)
    except (OSError, ValueError) as exc:  # an encoder refusing our own pixels is a bug or a bad size
        raise InvalidImage(f"cannot encode the {spec.name} variant as {spec.format}: {exc}") from exc
    return Derived(
        name=spec.name,
        format=spec.format,
        content_type=_pillow.CONTENT_TYPES[spec.format],
        width=image.width,
        height=image.height,
        data=out.getvalue(),
    )
