"""The Content-Disposition of served originals: any uploaded name, never a broken or forged header."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from photostore.api.serving import content_disposition


@pytest.mark.parametrize(
    "name", ["IMG_0001.jpg", "été à Paris.jpg", "𤜳.heic", 'a"b\\c.png', "evil\r\nSet-Cookie: x=1.jpg", ""]
)
def test_any_name_gives_a_latin1_header_that_carries_it_exactly(name: str) -> None:
    header = content_disposition(name)
    header.encode("latin-1")  # what an HTTP server must be able to write
    assert "\r" not in header
    assert "\n" not in header
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in fallback
    assert "\\" not in fallback
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == name
