"""The MultipartStore that suits a BlobStore."""

from __future__ import annotations

from photostore.blobs.multipart import MultipartStore, ObjectParts
from photostore.blobs.port import BlobStore
from photostore.blobs.regional import RegionalReads
from photostore.blobs.s3 import S3BlobStore
from photostore.blobs.s3_multipart import S3Multipart


def multipart_for(blobs: BlobStore) -> MultipartStore:
    """S3's multipart API where the blobs are on S3 (also behind regional reads), else ObjectParts."""
    home = blobs.home if isinstance(blobs, RegionalReads) else blobs
    if isinstance(home, S3BlobStore):
        return S3Multipart(home)
    return ObjectParts(home)
