"""Images: validation before decode, EXIF, derivatives, placeholders.

The public surface (each module's docstring states its guarantees):

* ``probe(data, limits) -> ImageInfo``: accept or refuse an upload from its headers, in milliseconds;
* ``read_exif(data) -> ExifSummary`` and ``strip_location(exif)``: metadata, never raising;
* ``make_derivatives(data, specs, limits) -> Derivatives``: every variant from one decode, plus a
  blurhash placeholder;
* ``samples.make_photo_jpeg(width, height, seed)``: deterministic photo-like JPEGs for tests and
  benchmarks.
"""

from photostore.imaging.derive import Derivatives, Derived, make_derivatives
from photostore.imaging.exif import ExifSummary, read_exif, strip_location
from photostore.imaging.validate import ImageInfo, probe

__all__ = [
    "Derivatives",
    "Derived",
    "ExifSummary",
    "ImageInfo",
    "make_derivatives",
    "probe",
    "read_exif",
    "strip_location",
]
