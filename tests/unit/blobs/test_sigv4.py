"""SigV4 against AWS's published S3 examples (the signatures below are from AWS's documentation)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from photostore.blobs.sigv4 import canonical_query, sign

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2013, 5, 24, tzinfo=UTC)


def _signature(headers: dict[str, str]) -> str:
    return headers["authorization"].rpartition("Signature=")[2]


def test_get_object_example() -> None:
    headers = sign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        extra={"Range": "bytes=0-9"},
        now=WHEN,
    )
    assert _signature(headers) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date," in headers["authorization"]
    assert headers["x-amz-date"] == "20130524T000000Z"
    assert "host" not in headers  # the HTTP client sends it


def test_put_object_example_hashes_the_body_and_encodes_the_path() -> None:
    headers = sign(
        "PUT",
        "https://examplebucket.s3.amazonaws.com/test$file.text",
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        body=b"Welcome to Amazon S3.",
        extra={"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
        now=WHEN,
    )
    assert _signature(headers) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    assert (
        headers["x-amz-content-sha256"] == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    )


def test_a_url_with_a_query_is_refused_rather_than_signed_wrongly() -> None:
    with pytest.raises(ValueError, match="not in the URL"):
        sign(
            "GET",
            "http://127.0.0.1:8333/?list-type=2",
            region="us-east-1",
            access_key_id="a",
            secret_access_key="b",
        )


def test_list_objects_example_signs_the_query() -> None:
    """AWS's GET Bucket example: ``?max-keys=2&prefix=J``, given as ``query`` and signed sorted."""
    headers = sign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/",
        query={"prefix": "J", "max-keys": "2"},
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        now=WHEN,
    )
    assert _signature(headers) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    assert canonical_query({"prefix": "J", "max-keys": "2", "uploads": ""}) == "max-keys=2&prefix=J&uploads="
