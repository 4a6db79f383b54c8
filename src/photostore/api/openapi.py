"""The OpenAPI 3.1 document of the public API, written out by hand beside the routes it describes.

The routes are plain Starlette handlers (the hot read path is benchmarked, and a framework's
per-request validation would cost more than the handler), so the document is kept here and a test
checks that every route is described and every described route exists.
"""

from __future__ import annotations

from typing import Any

from photostore import __version__
from photostore.api.openapi_admin import ADMIN_STATS

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ID = {"name": "photo_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _json(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _bytes(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        },
        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
    }


_AUTH_ERRORS = {"401": _problem("missing or wrong API key"), "403": _problem("the key lacks a scope")}
# Writes: a store is down (backend_unavailable), or the user is being switched to another shard by a
# rebalance (shard_move_in_progress, under a second); both carry Retry-After.
_WRITE_UNAVAILABLE = {
    "503": _problem("a store is down or this account is moving shards: retry after Retry-After")
}
_BYTES_RESPONSES = {
    "206": _bytes("the requested byte range"),
    "304": {"description": "not modified (If-None-Match matched the ETag)"},
    "404": _problem("no such photo for this user"),
    "416": _problem("range outside the object"),
    "500": _problem("object_corrupt: the stored bytes failed their SHA-256 check and were quarantined"),
    **_AUTH_ERRORS,
}
_RANGE_HEADERS = [
    {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
]

_UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _header(name: str, required: bool) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": {"type": "string"}}


_TUS_RESUMABLE = {
    "name": "Tus-Resumable",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["1.0.0"]},
}
_TUS_ERRORS = {
    "400": _problem("a missing or malformed tus header"),
    "404": _problem("upload_not_found: unknown, terminated, expired and swept, or another user's"),
    "410": _problem("upload_expired: not finished before Upload-Expires"),
    "412": _problem("tus_version_unsupported: Tus-Resumable is not 1.0.0"),
    **_AUTH_ERRORS,
    **_WRITE_UNAVAILABLE,
}

_VARIANT = {
    "type": "object",
    "required": ["format", "content_type", "width", "height", "bytes", "sha256", "url"],
    "properties": {
        "format": {"type": "string"},
        "content_type": {"type": "string"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "bytes": {"type": "integer"},
        "sha256": {"type": "string"},
        "url": {"type": "string"},
    },
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_PHOTO = {
    "type": "object",
    "required": [
        "id",
        "filename",
        "sha256",
        "bytes",
        "width",
        "height",
        "format",
        "content_type",
        "status",
        "taken_at",
        "created_at",
        "updated_at",
        "exif",
        "placeholder",
        "original_url",
        "variants",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "filename": {"type": "string"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "bytes": {"type": "integer", "minimum": 1},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "format": {"type": "string"},
        "content_type": {"type": "string"},
        "status": {"type": "string", "enum": ["processing", "ready"]},
        "taken_at": _NULLABLE_TIME,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "exif": {"type": ["object", "null"]},
        "placeholder": {"type": ["string", "null"], "description": "blurhash"},
        "original_url": {"type": "string"},
        "variants": {"type": "object", "additionalProperties": _VARIANT},
        "cdn": {
            "type": "object",
            "description": "signed CDN URLs on the provider nearest the caller (only when a CDN is set up)",
            "required": ["original", "variants"],
            "properties": {
                "original": {"type": "string", "format": "uri"},
                "variants": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}},
            },
        },
    },
}
_SCHEMAS: dict[str, Any] = {
    "AdminStats": ADMIN_STATS,
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string", "description": "stable machine-readable error code"},
            "detail": {"type": "string"},
        },
    },
    "Photo": _PHOTO,
    "PhotoPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Photo"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "NewUser": {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
    "CreatedUser": {
        "type": "object",
        "required": ["id", "name", "api_key"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "api_key": {"type": "string", "description": "shown once; store it"},
        },
    },
}

_PATHS: dict[str, Any] = {
    "/v1/users": {
        "post": {
            "summary": "Create a user and its first API key (admin token)",
            "operationId": "createUser",
            "security": [{"adminToken": []}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewUser"}}},
            },
            "responses": {
                "201": _json("the user and its API key", "#/components/schemas/CreatedUser"),
                "400": _problem("bad body"),
                **_AUTH_ERRORS,
                **_WRITE_UNAVAILABLE,
            },
        }
    },
    "/v1/photos": {
        "post": {
            "summary": "Upload a photo (raw body or multipart field 'file'); same bytes again -> 200",
            "operationId": "uploadPhoto",
            "parameters": [
                {"name": "filename", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "a retry with the same key and bytes gets the first answer again",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    },
                },
            },
            "responses": {
                "201": _json("stored; processing continues in the background", "#/components/schemas/Photo"),
                "200": _json("these bytes were already stored for this user", "#/components/schemas/Photo"),
                "400": _problem("empty or malformed body"),
                "413": _problem("body over the upload limit"),
                "415": _problem("image format not accepted"),
                "422": _problem(
                    "not a readable image, too many pixels or frames, or a reused Idempotency-Key"
                ),
                **_AUTH_ERRORS,
                **_WRITE_UNAVAILABLE,
            },
        },
        "get": {
            "summary": "The caller's photos, newest first, keyset-paginated",
            "operationId": "listPhotos",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json("one page", "#/components/schemas/PhotoPage"),
                "400": _problem("bad limit or cursor"),
                **_AUTH_ERRORS,
            },
        },
    },
    "/v1/photos/{photo_id}": {
        "get": {
            "summary": "A photo's metadata, EXIF and variants",
            "operationId": "getPhoto",
            "parameters": [_ID],
            "responses": {
                "200": _json("the photo", "#/components/schemas/Photo"),
                "404": _problem("no such photo for this user"),
                **_AUTH_ERRORS,
            },
        },
        "delete": {
            "summary": "Delete a photo and its objects",
            "operationId": "deletePhoto",
            "parameters": [_ID],
            "responses": {
                "204": {"description": "deleted"},
                "404": _problem("no such photo for this user"),
                **_AUTH_ERRORS,
                **_WRITE_UNAVAILABLE,
            },
        },
    },
    "/v1/photos/{photo_id}/original": {
        "get": {
            "summary": "The original bytes (ETag, If-None-Match, Range)",
            "operationId": "getOriginal",
            "parameters": [_ID, *_RANGE_HEADERS],
            "responses": {"200": _bytes("the original"), **_BYTES_RESPONSES},
        }
    },
    "/v1/photos/{photo_id}/variants/{name}": {
        "get": {
            "summary": "A derivative (thumb, preview, ...) once made; 404 variant_not_ready before",
            "operationId": "getVariant",
            "parameters": [
                _ID,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                *_RANGE_HEADERS,
            ],
            "responses": {"200": _bytes("the variant"), **_BYTES_RESPONSES},
        }
    },
    "/cdn/{owner}/{photo_id}/{name}": {
        "get": {
            "summary": "A signed CDN URL's bytes (the CDN's origin): name is 'original' or a variant",
            "description": "No API key: the signature is the permission. Variants are negotiated by "
            "Accept (AVIF, WebP, JPEG) and answered with Vary: Accept.",
            "operationId": "getCdnObject",
            "security": [],
            "parameters": [
                {"name": "owner", "in": "path", "required": True, "schema": {"type": "string"}},
                _ID,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "exp", "in": "query", "required": True, "schema": {"type": "integer"}},
                {"name": "kid", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
                *_RANGE_HEADERS,
            ],
            "responses": {
                "200": _bytes("the bytes"),
                "304": {"description": "not modified"},
                "403": _problem("signature_invalid: missing, tampered, expired or signed by a retired key"),
                "404": _problem("no such photo or variant, or no CDN configured"),
            },
        }
    },
    "/v1/uploads": {
        "options": {
            "summary": "tus discovery: version, extensions, size limit, checksum algorithms",
            "operationId": "tusOptions",
            "security": [],
            "responses": {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size headers"}},
        },
        "post": {
            "summary": "Start a resumable upload (tus 1.0 creation); the Location header names it",
            "operationId": "createUpload",
            "parameters": [_TUS_RESUMABLE, _header("Upload-Length", True), _header("Upload-Metadata", False)],
            "responses": {
                "201": {"description": "created; Location, Upload-Offset 0, Upload-Expires"},
                **_TUS_ERRORS,
                "413": _problem("Upload-Length over the upload limit"),
            },
        },
    },
    "/v1/uploads/{upload_id}": {
        "options": {
            "summary": "tus discovery (as on /v1/uploads)",
            "operationId": "tusOptionsOfUpload",
            "security": [],
            "parameters": [_UPLOAD_ID],
            "responses": {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size headers"}},
        },
        "head": {
            "summary": "Where an upload is: Upload-Offset, Upload-Length; Photo-Location once complete",
            "operationId": "getUploadOffset",
            "parameters": [_UPLOAD_ID, _TUS_RESUMABLE],
            "responses": {
                "200": {"description": "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires"},
                **_TUS_ERRORS,
            },
        },
        "patch": {
            "summary": "Append bytes at Upload-Offset; the last ones make the photo (Photo-Location)",
            "description": "Bytes received before a cut connection are kept, unless the request carries "
            "Upload-Checksum: then only the whole, matching chunk is (460 otherwise). The completing "
            "request answers like POST /v1/photos would for the whole file (415, 422 end the upload).",
            "operationId": "appendToUpload",
            "parameters": [
                _UPLOAD_ID,
                _TUS_RESUMABLE,
                _header("Upload-Offset", True),
                _header("Upload-Checksum", False),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            "responses": {
                "204": {"description": "stored; Upload-Offset is the new offset"},
                **_TUS_ERRORS,
                "409": _problem("offset_mismatch: Upload-Offset is not the upload's offset"),
                "413": _problem("the body goes past Upload-Length"),
                "415": _problem("Content-Type is not application/offset+octet-stream, or the image format"),
                "422": _problem("the completed file is not an image this service accepts"),
                "423": _problem("upload_locked: another request is appending; retry after Retry-After"),
                "460": _problem("checksum_mismatch: the chunk does not match Upload-Checksum"),
            },
        },
        "delete": {
            "summary": "Terminate an upload and remove its bytes (tus termination)",
            "operationId": "terminateUpload",
            "parameters": [_UPLOAD_ID, _TUS_RESUMABLE],
            "responses": {"204": {"description": "terminated"}, **_TUS_ERRORS},
        },
    },
    "/v1/admin/stats": {
        "get": {
            "summary": "The operator dashboard's figures: shards, buckets, lag, cache, regions, requests",
            "operationId": "adminStats",
            "security": [{"adminToken": []}],
            "responses": {
                "200": {
                    "description": "one snapshot (Cache-Control: no-store); a section whose store is down "
                    "holds an error instead",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminStats"}}},
                },
                **_AUTH_ERRORS,
            },
        }
    },
    "/healthz": {
        "get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: the stores answer",
            "security": [],
            "responses": {"200": {"description": "ready"}, "503": _problem("a store is down")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "security": [],
            "responses": {"200": {"description": "text exposition format"}},
        }
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "photostore",
            "version": __version__,
            "description": "Upload photos, get them back with thumbnails and metadata, list, delete. "
            "Errors are application/problem+json with a stable `code`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key: ps_..."},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "PHOTOSTORE_ADMIN_TOKEN"},
            },
        },
    }
