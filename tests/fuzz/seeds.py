"""Write a seed corpus for the fuzzer: valid images of every accepted format and the hostile set.

python -m tests.fuzz.seeds DIR
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

from PIL import Image

from tests.support import images
from tests.support.hostile import hostile_inputs

MAX_SEED_BYTES = 64 * 1024  # libFuzzer mutates small inputs best


def valid_images() -> list[bytes]:
    picture = Image.open(io.BytesIO(images.jpeg(48, 32, seed=1)))
    found = [images.jpeg(48, 32, seed=2), images.png(16, 12)]
    for fmt in ("WEBP", "GIF", "HEIF", "TIFF"):
        out = io.BytesIO()
        (picture.convert("P") if fmt == "GIF" else picture).save(out, fmt)
        found.append(out.getvalue())
    return found


def write_seeds(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    seeds = valid_images() + [case.data for case in hostile_inputs() if len(case.data) <= MAX_SEED_BYTES]
    for data in seeds:
        (folder / hashlib.sha256(data).hexdigest()[:40]).write_bytes(data)
    return len(seeds)


if __name__ == "__main__":
    print(f"{write_seeds(Path(sys.argv[1]))} seeds in {sys.argv[1]}")
