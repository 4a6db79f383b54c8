"""The atheris harness over upload validation (``probe``: headers, structure, trailers, EXIF) and
EXIF parsing (``read_exif``, which the worker runs on accepted files).

Any exception other than a PhotostoreError (the refusals the API turns into 4xx) is a crash.
Run it by command, not under pytest: ``python -m tests.fuzz.image_harness [libFuzzer flags]``;
``make fuzz`` runs it for ten minutes, and tests/fuzz/test_fuzzing.py runs a short version and
replays every file in tests/fuzz/regressions/.
"""

from __future__ import annotations

import sys
import warnings

import atheris

with atheris.instrument_imports():
    from photostore.errors import PhotostoreError
    from photostore.imaging.exif import read_exif
    from photostore.imaging.validate import probe
    from photostore.settings import LimitSettings

LIMITS = LimitSettings(max_pixels=4_000_000, max_frames=50)  # small: a fuzz run decodes nothing big


def check(data: bytes) -> None:
    """One input: refusals are fine, anything else raises out of here."""
    try:
        probe(data, LIMITS)
    except PhotostoreError:
        return
    read_exif(data)


def _one(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; warnings are not crashes
        check(data)


def main() -> None:
    atheris.Setup(sys.argv, _one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
