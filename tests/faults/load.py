"""A bounded stream of concurrent uploads and reads against a running server, for fault tests.

:class:`LoadGenerator` runs ``clients`` concurrent clients on a thread of its own (so the test's
thread is free to stop and start engines meanwhile). Each client belongs to one user, uploads
distinct small JPEGs and reads back photos of its user that were already acknowledged (the photo,
its original, its thumbnail), and every response is recorded with its time. Bounded in count
(``max_uploads``) and in time (``max_s``); :meth:`LoadGenerator.stop` ends it and returns the
:class:`LoadResult`. :func:`verify_acknowledged` then checks every acknowledged upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from tests.support import images

REQUEST_TIMEOUT_S = 15.0
TRANSPORT_ERROR = 0  # the status recorded when no response came back


@dataclass(frozen=True)
class LoadUser:
    user_id: str
    api_key: str
    shard: int


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() when the response (or the transport error) came back
    op: str  # upload | photo | original | thumb
    user: LoadUser
    status: int  # TRANSPORT_ERROR when there was no response
    retry_after: str | None
    detail: str = ""


@dataclass(frozen=True)
class Acknowledged:
    photo_id: str
    sha256: str
    user: LoadUser
    at: float


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    acknowledged: list[Acknowledged] = field(default_factory=list)
    deleted: list[Acknowledged] = field(default_factory=list)  # acknowledged, then deleted (2xx)

    def select(
        self,
        *,
        op: str | None = None,
        shards: Iterable[int] | None = None,
        between: tuple[float, float] | None = None,
    ) -> list[Sample]:
        wanted = None if shards is None else set(shards)
        return [
            s
            for s in self.samples
            if (op is None or s.op == op)
            and (wanted is None or s.user.shard in wanted)
            and (between is None or between[0] <= s.at <= between[1])
        ]

    @staticmethod
    def statuses(samples: Iterable[Sample]) -> Counter[int]:
        return Counter(s.status for s in samples)

    def server_errors(self) -> Counter[int]:
        """5xx responses by status."""
        return Counter(s.status for s in self.samples if s.status >= 500)

    def count(self, status: int, samples: Iterable[Sample] | None = None) -> int:
        return sum(1 for s in (self.samples if samples is None else samples) if s.status == status)

    def without_retry_after(self) -> list[Sample]:
        """503s that came without a Retry-After header."""
        return [s for s in self.samples if s.status == 503 and not s.retry_after]

    def transport_errors(self) -> list[Sample]:
        return [s for s in self.samples if s.status == TRANSPORT_ERROR]

    def summary(self) -> str:
        by_op: dict[str, Counter[int]] = {}
        for s in self.samples:
            by_op.setdefault(s.op, Counter())[s.status] += 1
        parts = [f"{op}: {dict(sorted(c.items()))}" for op, c in sorted(by_op.items())]
        return f"{len(self.acknowledged)} acknowledged; " + "; ".join(parts)


class LoadGenerator:
    """``clients`` concurrent clients over ``users`` (round robin) against ``base_url``."""

    def __init__(
        self,
        base_url: str,
        users: list[LoadUser],
        *,
        clients: int = 6,
        max_uploads: int = 400,
        max_s: float = 60.0,
        pause_s: float = 0.02,
        seed: int = 0,
        size: tuple[int, int] = (160, 120),
        delete_chance: float = 0.0,
    ) -> None:
        assert users, "the load needs at least one user"
        self.base_url = base_url
        self.users = users
        self.clients = clients
        self.max_uploads = max_uploads
        self.max_s = max_s
        self.pause_s = pause_s
        self.size = size
        self.delete_chance = delete_chance  # after its reads, a client deletes one of its photos
        self.result = LoadResult()
        self._seeds = itertools.count(seed * 1_000_000)
        self._uploads_started = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # --- control from the test's thread -----------------------------------------------------------

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._run, name="fault-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.max_s + REQUEST_TIMEOUT_S + 10)
            assert not self._thread.is_alive(), "the load generator did not stop"
        if self._error is not None:
            raise self._error
        return self.result

    def wait_acknowledged(self, count: int, timeout_s: float = 20.0) -> None:
        """Block until at least ``count`` uploads were acknowledged."""
        deadline = time.monotonic() + timeout_s
        while len(self.result.acknowledged) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.result.summary()} after {timeout_s}s")
            time.sleep(0.05)

    def acknowledged_since(self, since: float, shards: Iterable[int] | None = None) -> int:
        wanted = None if shards is None else set(shards)
        return sum(
            1
            for a in list(self.result.acknowledged)
            if a.at >= since and (wanted is None or a.user.shard in wanted)
        )

    def wait_acknowledged_since(
        self, since: float, count: int, shards: Iterable[int] | None = None, timeout_s: float = 30.0
    ) -> None:
        """Block until ``count`` uploads (of users on ``shards``) were acknowledged after ``since``."""
        deadline = time.monotonic() + timeout_s
        while self.acknowledged_since(since, shards) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"fewer than {count} uploads acknowledged in the {timeout_s}s after recovery: "
                    f"{self.result.summary()}"
                )
            time.sleep(0.05)

    # --- the load itself --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # surfaced by stop()
            self._error = error

    async def _main(self) -> None:
        deadline = time.monotonic() + self.max_s
        limits = httpx.Limits(max_connections=self.clients * 2)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
        ) as http:
            await asyncio.gather(
                *(
                    self._client(http, self.users[n % len(self.users)], n, deadline)
                    for n in range(self.clients)
                )
            )

    def _record(self, op: str, user: LoadUser, response: httpx.Response | None, detail: str = "") -> None:
        if response is None:
            sample = Sample(time.monotonic(), op, user, TRANSPORT_ERROR, None, detail)
        else:
            code = ""
            if response.status_code >= 400:
                try:
                    code = str(response.json().get("code", ""))
                except ValueError:
                    code = response.text[:200]
            sample = Sample(
                time.monotonic(), op, user, response.status_code, response.headers.get("retry-after"), code
            )
        self.result.samples.append(sample)

    def _next_upload(self) -> bytes | None:
        with self._lock:
            if self._uploads_started >= self.max_uploads:
                return None
            self._uploads_started += 1
            seed = next(self._seeds)
        return images.jpeg(*self.size, seed=seed)

    async def _request(
        self, http: httpx.AsyncClient, op: str, user: LoadUser, method: str, url: str, **kwargs: object
    ) -> httpx.Response | None:
        headers = {"authorization": f"Bearer {user.api_key}"}
        try:
            response = await http.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as error:
            self._record(op, user, None, type(error).__name__)
            return None
        self._record(op, user, response)
        return response

    async def _client(self, http: httpx.AsyncClient, user: LoadUser, n: int, deadline: float) -> None:
        rng = random.Random(n)
        mine: list[Acknowledged] = []
        uploading = True
        while not self._stop.is_set() and time.monotonic() < deadline:
            if uploading:
                data = await asyncio.to_thread(self._next_upload)
                if data is None:
                    uploading = False
                else:
                    response = await self._request(http, "upload", user, "POST", "/v1/photos", content=data)
                    if response is not None and response.status_code in (200, 201):
                        ack = Acknowledged(
                            response.json()["id"], hashlib.sha256(data).hexdigest(), user, time.monotonic()
                        )
                        self.result.acknowledged.append(ack)
                        mine.append(ack)
            if mine:
                ack = rng.choice(mine)
                base = f"/v1/photos/{ack.photo_id}"
                for op, url in (
                    ("photo", base),
                    ("original", f"{base}/original"),
                    ("thumb", f"{base}/variants/thumb"),
                ):
                    await self._request(http, op, user, "GET", url)
                if len(mine) > 1 and rng.random() < self.delete_chance:
                    doomed = mine.pop(rng.randrange(len(mine)))
                    response = await self._request(
                        http, "delete", user, "DELETE", f"/v1/photos/{doomed.photo_id}"
                    )
                    if response is not None and response.status_code in (200, 204):
                        self.result.deleted.append(doomed)
                    else:
                        mine.append(doomed)  # not deleted: it stays readable
            elif not uploading:
                return
            await asyncio.sleep(self.pause_s)


# --- after the fault ---------------------------------------------------------------------------------


async def _original_intact(
    http: httpx.AsyncClient, ack: Acknowledged, headers: dict[str, str], deadline: float
) -> str | None:
    """None once the original reads back with its SHA-256 (503s are retried until ``deadline``)."""
    last = ""
    while time.monotonic() <= deadline:
        try:
            original = await http.get(f"/v1/photos/{ack.photo_id}/original", headers=headers)
        except httpx.TransportError as error:
            last = f"original: {error!r}"
        else:
            if original.status_code == 200:
                if hashlib.sha256(original.content).hexdigest() != ack.sha256:
                    return f"{ack.photo_id}: the original's bytes differ"
                return None
            last = f"original {original.status_code} {original.text[:200]}"
            if original.status_code != 503:
                break
        await asyncio.sleep(0.2)
    return f"{ack.photo_id}: {last}"


async def _becomes_ready(
    http: httpx.AsyncClient, ack: Acknowledged, headers: dict[str, str], variants: set[str], deadline: float
) -> str | None:
    """None once the photo is ready with ``variants`` and each variant reads back."""
    base = f"/v1/photos/{ack.photo_id}"
    last = ""
    while True:
        try:
            photo = await http.get(base, headers=headers)
        except httpx.TransportError as error:
            last = f"photo: {error!r}"
        else:
            body = photo.json() if photo.status_code == 200 else {}
            if body.get("status") == "ready" and variants <= set(body.get("variants") or {}):
                break
            last = f"photo {photo.status_code}, status {body.get('status')}, variants {body.get('variants')}"
        if time.monotonic() > deadline:
            return f"{ack.photo_id}: not ready ({last})"
        await asyncio.sleep(0.25)
    for name in sorted(variants):
        variant = await http.get(f"{base}/variants/{name}", headers=headers)
        if variant.status_code != 200 or not variant.content:
            return f"{ack.photo_id}: variant {name} {variant.status_code}"
    return None


async def _verify_one(
    http: httpx.AsyncClient, ack: Acknowledged, variants: set[str], deadline: float, check_ready: bool
) -> str | None:
    """None when the photo is fine, else what is wrong with it (starting with its id)."""
    headers = {"authorization": f"Bearer {ack.user.api_key}"}
    problem = await _original_intact(http, ack, headers, deadline)
    if problem is not None or not check_ready:
        return problem
    return await _becomes_ready(http, ack, headers, variants, deadline)


def verify_acknowledged(
    base_url: str,
    acknowledged: Iterable[Acknowledged],
    *,
    check_ready: bool = True,
    variants: Iterable[str] = ("thumb", "preview"),
    timeout_s: float = 45.0,
    concurrency: int = 16,
) -> list[str]:
    """Every acknowledged upload reads back byte-identical (SHA-256) and, with ``check_ready``,
    becomes ready with ``variants`` within ``timeout_s``. Returns the problems found (empty: fine)."""
    wanted = set(variants)
    items = list(acknowledged)

    async def main() -> list[str]:
        deadline = time.monotonic() + timeout_s
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as http:

            async def one(ack: Acknowledged) -> str | None:
                async with limit:
                    return await _verify_one(http, ack, wanted, deadline, check_ready)

            found = await asyncio.gather(*(one(ack) for ack in items))
        return [problem for problem in found if problem is not None]

    return asyncio.run(main())
