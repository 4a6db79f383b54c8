"""What every handler needs, built once per process in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from photostore.api.metrics import ApiMetrics
from photostore.pipeline.access import AccessTracker
from photostore.pipeline.auth import Authenticator
from photostore.pipeline.reads import PhotoReader
from photostore.pipeline.resumable import ResumableUploads
from photostore.pipeline.services import BackgroundServices
from photostore.pipeline.upload import UploadService
from photostore.ratelimit.limiter import RateLimiter
from photostore.runtime import Runtime

if TYPE_CHECKING:
    from photostore.api.cdn import CdnLinks


@dataclass
class ApiContext:
    runtime: Runtime
    auth: Authenticator
    uploads: UploadService
    reader: PhotoReader
    metrics: ApiMetrics
    background: BackgroundServices
    variant_names: frozenset[str]
    cdn: CdnLinks | None = None  # signed CDN URLs, when cdn.providers is configured
    access: AccessTracker | None = None  # reads of originals, for tiering (api role only)
    limiter: RateLimiter | None = None  # requests per API key (ratelimit.enabled)
    resumable: ResumableUploads | None = None  # tus uploads at /v1/uploads (api role only)


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
