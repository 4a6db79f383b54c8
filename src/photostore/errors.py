"""The package's exception tree.

Adapters translate driver errors into these; nothing above an adapter sees a driver exception.
Each error carries the HTTP status and the stable machine-readable ``code`` that the API puts in its
``application/problem+json`` body.
"""

from __future__ import annotations


class PhotostoreError(Exception):
    """Base of every error this package raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"
    retry_after_s: int | None = None  # sent as Retry-After: the condition is expected to pass

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class ConfigError(PhotostoreError):
    code = "config_error"
    title = "Invalid configuration"


# --- client errors ------------------------------------------------------------------------------


class BadRequest(PhotostoreError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class EmptyBody(BadRequest):
    code = "empty_body"
    title = "The request body is empty"


class InvalidImage(PhotostoreError):
    status = 422
    code = "invalid_image"
    title = "The file is not a readable image"


class UnsupportedFormat(PhotostoreError):
    status = 415
    code = "unsupported_format"
    title = "The image format is not accepted"


class PayloadTooLarge(PhotostoreError):
    status = 413
    code = "payload_too_large"
    title = "The body is larger than the upload limit"


class ImageTooLarge(PhotostoreError):
    status = 422
    code = "image_too_large"
    title = "The image has more pixels or frames than allowed"


class Unauthorized(PhotostoreError):
    status = 401
    code = "unauthorized"
    title = "Missing or wrong credentials"


class Forbidden(PhotostoreError):
    status = 403
    code = "forbidden"
    title = "These credentials may not do this"


class SignatureInvalid(Forbidden):
    code = "signature_invalid"
    title = "The URL signature is missing, wrong, or expired"


class LocationPrivate(Forbidden):
    code = "location_private"
    title = "This original's location cannot be removed for sharing"


class NotFound(PhotostoreError):
    status = 404
    code = "not_found"
    title = "Not found"


class PhotoNotFound(NotFound):
    code = "photo_not_found"
    title = "No such photo"


class VariantNotReady(NotFound):
    code = "variant_not_ready"
    title = "The variant has not been made yet"


class RouteNotFound(NotFound):
    code = "route_not_found"
    title = "No such route"


class UnknownVariant(NotFound):
    code = "unknown_variant"
    title = "No variant of that name is configured"


class RangeNotSatisfiable(PhotostoreError):
    status = 416
    code = "range_not_satisfiable"
    title = "The requested range is outside the object"


class Conflict(PhotostoreError):
    status = 409
    code = "conflict"
    title = "Conflict"


class IdempotencyKeyReused(PhotostoreError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for an upload of other bytes"


class UploadNotFound(NotFound):
    code = "upload_not_found"
    title = "Upload not found"


class UploadExpired(PhotostoreError):
    status = 410
    code = "upload_expired"
    title = "The upload expired"


class UploadOffsetMismatch(Conflict):
    code = "offset_mismatch"
    title = "Upload-Offset is not the upload's offset"


class UploadLocked(PhotostoreError):
    """Another request is appending to this upload (a retry while the cut one still runs)."""

    status = 423
    code = "upload_locked"
    title = "The upload is busy"
    retry_after_s = 1


class ChecksumMismatch(PhotostoreError):
    status = 460  # tus 1.0 checksum extension
    code = "checksum_mismatch"
    title = "The chunk does not match its Upload-Checksum"


class TusVersionUnsupported(PhotostoreError):
    status = 412
    code = "tus_version_unsupported"
    title = "Tus-Resumable must be 1.0.0"


class UnsupportedMediaType(PhotostoreError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported Content-Type"


# --- storage errors -----------------------------------------------------------------------------


class BlobNotFound(PhotostoreError):
    """An object is missing from its bucket."""

    status = 404
    code = "object_not_found"
    title = "Object not found"


class ObjectCorrupt(PhotostoreError):
    """Stored bytes failed their SHA-256 check: quarantined, never served."""

    status = 500
    code = "object_corrupt"
    title = "The stored object failed its integrity check"


class BackendUnavailable(PhotostoreError):
    """A storage engine could not be reached or failed; the operation may be retried."""

    status = 503
    code = "backend_unavailable"
    title = "A storage backend is unavailable"
    retry_after_s = 2


class ShardMoveInProgress(BackendUnavailable):
    """The user's rows are being switched to another shard; writes resume within a second or so
    (a kind of BackendUnavailable: workers wait and retry instead of giving up)."""

    status = 503
    code = "shard_move_in_progress"
    title = "This account is being moved to another shard; retry shortly"
    retry_after_s = 1


class UnknownShard(PhotostoreError):
    code = "unknown_shard"
    title = "The shard map names a shard that has no store"


class NoHealthyRegion(PhotostoreError):
    status = 503
    code = "no_healthy_region"
    title = "No region can take this request"
    retry_after_s = 5


class RegionUnreachable(PhotostoreError):
    status = 502
    code = "region_unreachable"
    title = "The region failed while answering"
