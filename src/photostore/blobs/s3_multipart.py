"""S3's multipart upload API (CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
AbortMultipartUpload), signed with ``sigv4``: the ``MultipartStore`` of the cluster BlobStore.

obstore uploads in parts too, but only within one call; a resumable upload needs the upload id to
live across requests and processes, so these four calls are made here. Errors are translated like
the rest of the S3 store: a missing upload or object is ``BlobNotFound``, denied access and every
other failure ``BackendUnavailable`` naming the endpoint.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx

from photostore.blobs import sigv4
from photostore.blobs.buckets import BucketPlacement, s3_error_code, s3_failure
from photostore.blobs.local import check_key
from photostore.blobs.multipart import UploadedPart
from photostore.blobs.s3 import S3BlobStore, S3ClientOptions
from photostore.errors import BackendUnavailable, BlobNotFound

_UPLOAD_ID_RE = re.compile(r"<UploadId>([^<]{1,1024})</UploadId>")
_MISSING = {"NoSuchUpload", "NoSuchKey"}


class S3Multipart:
    def __init__(self, blobs: S3BlobStore, options: S3ClientOptions | None = None) -> None:
        self._blobs = blobs
        opts = options or S3ClientOptions()
        timeout = httpx.Timeout(
            opts.request_timeout_s, connect=opts.connect_timeout_s, read=opts.read_timeout_s
        )
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=httpx.AsyncHTTPTransport(retries=opts.max_retries)
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        bucket: str,
        key: str,
        query: Mapping[str, str],
        body: bytes = b"",
        action: str = "",
    ) -> httpx.Response:
        placement: BucketPlacement = self._blobs.placement_of(bucket)
        check_key(key)
        endpoint = placement.endpoint
        headers = sigv4.sign(
            method,
            f"{placement.url}/{key}",
            query=query,
            region=placement.region,
            access_key_id=endpoint.access_key_id,
            secret_access_key=endpoint.secret_access_key.get_secret_value(),
            body=body,
        )
        url = f"{placement.url}/{quote(key, safe='/-_.~')}?{sigv4.canonical_query(query)}"
        try:
            response = await self._client.request(method, url, headers=headers, content=body)
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"{placement.describe()}: {action} failed: {type(exc).__name__}"
            ) from exc
        if response.status_code < 300 and b"<Error>" not in response.content:
            return response
        code = s3_error_code(response)  # CompleteMultipartUpload may fail inside a 200
        if code in _MISSING or (response.status_code == 404 and code is None):
            raise BlobNotFound(f"{placement.describe()}: {action} of {key}: {code or 'HTTP 404'}")
        raise s3_failure(placement, action, response)

    async def begin(self, bucket: str, key: str) -> str:
        response = await self._call("POST", bucket, key, {"uploads": ""}, action="CreateMultipartUpload")
        found = _UPLOAD_ID_RE.search(response.text)
        if found is None:
            raise BackendUnavailable(f"bucket {bucket}: CreateMultipartUpload answered no UploadId")
        return found.group(1)

    async def put_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        query = {"partNumber": str(number), "uploadId": upload_id}
        response = await self._call("PUT", bucket, key, query, data, action="UploadPart")
        etag = response.headers.get("etag")
        if not etag:
            raise BackendUnavailable(f"bucket {bucket}: UploadPart answered no ETag")
        return str(etag)

    async def complete(self, bucket: str, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> None:
        body = "".join(
            f"<Part><PartNumber>{p.number}</PartNumber><ETag>{escape(p.etag)}</ETag></Part>" for p in parts
        )
        xml = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        await self._call("POST", bucket, key, {"uploadId": upload_id}, xml, action="CompleteMultipartUpload")

    async def assemble(self, bucket: str, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> bytes:
        # BlobNotFound: completed by an earlier attempt that died after it; the object is there.
        with contextlib.suppress(BlobNotFound):
            await self.complete(bucket, key, upload_id, parts)
        return await self._blobs.get(bucket, key)

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            await self._call("DELETE", bucket, key, {"uploadId": upload_id}, action="AbortMultipartUpload")
        except BlobNotFound:
            return
