"""Signed, expiring CDN URLs, with two keys valid at once so a key can be rotated without breaking links.

A signed URL is ``<path>?exp=<unix seconds>&kid=<key id>&sig=<signature>`` where the signature is the
URL-safe base64 (no padding) of HMAC-SHA256(secret, ``"<path>\\n<exp>\\n<kid>"``). Rotation: add the
new key next to the old one and make it active; once every URL signed with the old key has expired
(``url_ttl_s`` plus the rounding below), remove the old key, and its URLs stop verifying.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from photostore.errors import SignatureInvalid
from photostore.settings import CdnSettings

# The expiry is rounded up to a multiple of this, so an object keeps one URL for a few minutes and
# browsers and the CDN can cache it under that URL.
EXPIRY_STEP_S = 300
# Another process may sign by a clock slightly ahead of ours; without this allowance a fresh URL
# could now and then look longer-lived than the policy allows.
CLOCK_SKEW_S = 30

_EXP = re.compile(r"[0-9]{1,12}")
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes of HMAC-SHA256, URL-safe base64 without padding


class UrlSigner:
    """Signs paths with the active key; verifies signatures of any key it holds."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active_key: str,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if active_key not in keys:
            raise ValueError(f"the active key {active_key!r} is not one of the keys {sorted(keys)}")
        for kid, secret in keys.items():
            if not _KID.fullmatch(kid):
                raise ValueError(f"key id {kid!r} must be 1-32 characters of A-Z a-z 0-9 _ -")
            if not secret:
                raise ValueError(f"key {kid!r} has an empty secret")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._keys = dict(keys)
        self.active_key = active_key
        self.ttl_s = ttl_s
        self._clock = clock

    @classmethod
    def from_settings(cls, cdn: CdnSettings) -> UrlSigner | None:
        """The signer of the CDN settings; None when no active key is configured (no signed URLs)."""
        if cdn.active_key is None:
            return None
        keys = {key.id: key.secret.get_secret_value().encode() for key in cdn.signing_keys}
        return cls(keys, cdn.active_key, cdn.url_ttl_s)

    def sign(self, path: str) -> str:
        """``path`` with the query that makes it valid for at least ``ttl_s`` seconds from now."""
        _check_path(path)
        exp = _round_up(math.ceil(self._clock()) + self.ttl_s, EXPIRY_STEP_S)
        kid = self.active_key
        query = urlencode({"exp": exp, "kid": kid, "sig": self._signature(path, exp, kid)})
        return f"{path}?{query}"

    def verify(self, path: str, query: Mapping[str, str]) -> None:
        """Raise ``SignatureInvalid`` unless ``query`` holds a current signature of ``path``."""
        exp_text, kid, sig = (_param(query, name) for name in ("exp", "kid", "sig"))
        if not _EXP.fullmatch(exp_text):
            raise SignatureInvalid("the exp parameter is malformed (not a unix time in seconds)")
        if not _KID.fullmatch(kid):
            raise SignatureInvalid("the kid parameter is malformed")
        if not _SIG.fullmatch(sig):
            raise SignatureInvalid("the sig parameter is malformed")
        if kid not in self._keys:
            raise SignatureInvalid(f"the URL is signed with key {kid!r}, which is unknown or retired")
        exp = int(exp_text)
        expected = self._signature(path, exp, kid)
        if not hmac.compare_digest(expected, sig):
            raise SignatureInvalid("the signature does not match the URL")
        now = self._clock()
        if exp < now:
            raise SignatureInvalid("the URL has expired")
        if exp > now + self.ttl_s + EXPIRY_STEP_S + CLOCK_SKEW_S:
            raise SignatureInvalid("the URL expires later than the URL lifetime allows")

    def _signature(self, path: str, exp: int, kid: str) -> str:
        message = f"{path}\n{exp}\n{kid}".encode()
        digest = hmac.new(self._keys[kid], message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _check_path(path: str) -> None:
    # A query or fragment in the path would be cut off by the client; a control character could
    # make two different paths sign the same message.
    if not path.startswith("/") or any(c in path for c in "?#") or not path.isprintable():
        raise ValueError(f"not an absolute URL path without query or fragment: {path!r}")


def _param(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise SignatureInvalid(f"the URL has no {name} parameter")
    return value
