"""UrlSigner: round trips, every kind of tampering, expiry, unknown keys, rotation, exp rounding."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import SecretStr

from photostore.errors import Forbidden, SignatureInvalid
from photostore.regions.signing import EXPIRY_STEP_S, UrlSigner
from photostore.settings import CdnSettings, SigningKey

PATH = "/cdn/0123456789abcdef/fedcba9876543210/thumb"
OLD = b"old-secret-0123456789abcdef"
NEW = b"new-secret-0123456789abcdef"
START = 1_800_000_000.0  # a multiple of 300 s
TTL = 3600


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(
    keys: dict[str, bytes] | None = None, active: str = "old", clock: Clock | None = None
) -> UrlSigner:
    return UrlSigner(keys if keys is not None else {"old": OLD}, active, TTL, clock=clock or Clock())


def split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, dict(parse_qsl(parts.query))


def rejected(verifier: UrlSigner, path: str, query: dict[str, str]) -> str:
    with pytest.raises(SignatureInvalid) as caught:
        verifier.verify(path, query)
    return caught.value.detail


def test_a_signed_url_verifies() -> None:
    s = signer()
    path, query = split(s.sign(PATH))
    assert path == PATH
    s.verify(path, query)


def test_the_url_is_the_path_with_exp_kid_and_sig() -> None:
    url = signer().sign(PATH)
    assert url.startswith(PATH + "?")
    _, query = split(url)
    assert set(query) == {"exp", "kid", "sig"}
    assert query["kid"] == "old"
    assert int(query["exp"]) > START
    assert len(query["sig"]) == 43  # 32 bytes, base64 without padding
    assert "=" not in query["sig"]
    assert "+" not in query["sig"]
    assert "/" not in query["sig"]


def test_the_expiry_is_rounded_up_to_five_minutes() -> None:
    clock = Clock(START)
    s = signer(clock=clock)
    _, query = split(s.sign(PATH))
    assert int(query["exp"]) == START + TTL  # already a multiple of 300
    clock.now = START + 0.5
    _, query = split(s.sign(PATH))
    assert int(query["exp"]) == START + TTL + EXPIRY_STEP_S
    for offset in (17, 123.4, 299):
        clock.now = START + offset
        exp = int(split(s.sign(PATH))[1]["exp"])
        assert exp % EXPIRY_STEP_S == 0
        assert clock.now + TTL <= exp < clock.now + TTL + EXPIRY_STEP_S


def test_the_same_object_keeps_its_url_for_a_few_minutes() -> None:
    clock = Clock(START + 1)
    s = signer(clock=clock)
    first = s.sign(PATH)
    clock.now = START + 250
    assert s.sign(PATH) == first
    clock.now = START + 301
    assert s.sign(PATH) != first


def test_another_path_does_not_verify() -> None:
    s = signer()
    _, query = split(s.sign(PATH))
    detail = rejected(s, PATH.replace("thumb", "preview"), query)
    assert "does not match" in detail


def test_a_tampered_signature_does_not_verify() -> None:
    s = signer()
    _, query = split(s.sign(PATH))
    flipped = "A" if query["sig"][0] != "A" else "B"
    detail = rejected(s, PATH, {**query, "sig": flipped + query["sig"][1:]})
    assert "does not match" in detail


def test_a_later_expiry_does_not_verify() -> None:
    s = signer()
    _, query = split(s.sign(PATH))
    detail = rejected(s, PATH, {**query, "exp": str(int(query["exp"]) + EXPIRY_STEP_S)})
    assert "does not match" in detail


def test_an_expired_url_does_not_verify() -> None:
    clock = Clock()
    s = signer(clock=clock)
    _, query = split(s.sign(PATH))
    clock.now = int(query["exp"])
    s.verify(PATH, query)  # valid up to and including its exp second
    clock.now = int(query["exp"]) + 1
    assert "expired" in rejected(s, PATH, query)


def test_a_url_outliving_the_policy_is_refused() -> None:
    long_lived = UrlSigner({"old": OLD}, "old", ttl_s=86_400, clock=Clock())
    _, query = split(long_lived.sign(PATH))
    assert "later than" in rejected(signer(), PATH, query)


def test_a_url_from_a_slightly_fast_clock_is_accepted() -> None:
    _, query = split(signer(clock=Clock(START + 1)).sign(PATH))  # exp: START + TTL + 300
    signer(clock=Clock(START - 10)).verify(PATH, query)  # 10 s behind the signer: allowed
    assert "later than" in rejected(signer(clock=Clock(START - 60)), PATH, query)


def test_an_unknown_key_id_does_not_verify() -> None:
    _, query = split(signer().sign(PATH))
    other = signer({"new": NEW}, active="new")
    detail = rejected(other, PATH, query)
    assert "'old'" in detail
    assert "unknown or retired" in detail


def test_a_wrong_secret_under_the_same_key_id_does_not_verify() -> None:
    _, query = split(signer().sign(PATH))
    impostor = signer({"old": NEW})
    assert "does not match" in rejected(impostor, PATH, query)


def test_rotation_keeps_old_urls_until_the_old_key_is_removed() -> None:
    before = signer({"old": OLD}, active="old")
    during = signer({"old": OLD, "new": NEW}, active="new")
    after = signer({"new": NEW}, active="new")
    old_path, old_query = split(before.sign(PATH))
    new_path, new_query = split(during.sign(PATH))
    assert new_query["kid"] == "new"
    during.verify(old_path, old_query)
    during.verify(new_path, new_query)
    after.verify(new_path, new_query)
    assert "retired" in rejected(after, old_path, old_query)
    assert "unknown" in rejected(before, new_path, new_query)  # a process not yet given the new key


@pytest.mark.parametrize("missing", ["exp", "kid", "sig"])
def test_a_missing_parameter_is_named(missing: str) -> None:
    s = signer()
    _, query = split(s.sign(PATH))
    del query[missing]
    assert f"no {missing} parameter" in rejected(s, PATH, query)
    assert f"no {missing} parameter" in rejected(s, PATH, {**query, missing: ""})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("exp", "soon"),
        ("exp", "-300"),
        ("exp", "1e9"),
        ("exp", "9" * 40),
        ("kid", "old key"),
        ("kid", "k" * 33),
        ("sig", "short"),
        ("sig", "a" * 42 + "="),
        ("sig", "a" * 44),
    ],
)
def test_a_malformed_parameter_is_refused(name: str, value: str) -> None:
    s = signer()
    _, query = split(s.sign(PATH))
    detail = rejected(s, PATH, {**query, name: value})
    assert f"the {name} parameter is malformed" in detail


def test_no_detail_reveals_a_secret() -> None:
    clock = Clock()
    s = signer({"old": OLD, "new": NEW}, active="new", clock=clock)
    _, query = split(s.sign(PATH))
    attempts = [
        (PATH + "x", query),
        (PATH, {**query, "sig": "A" * 43}),
        (PATH, {**query, "kid": "old"}),
        (PATH, {**query, "kid": "gone"}),
        (PATH, {"exp": query["exp"]}),
    ]
    clock.now = START + 10 * TTL
    attempts.append((PATH, query))
    for path, params in attempts:
        detail = rejected(s, path, params)
        for secret in (OLD, NEW):
            assert secret.decode() not in detail


def test_the_error_is_a_403_with_its_own_code() -> None:
    error = SignatureInvalid("x")
    assert isinstance(error, Forbidden)
    assert error.status == 403
    assert error.code == "signature_invalid"


def test_from_settings_signs_with_the_active_key() -> None:
    cdn = CdnSettings(
        signing_keys=(
            SigningKey(id="k1", secret=SecretStr("a" * 32)),
            SigningKey(id="k2", secret=SecretStr("b" * 32)),
        ),
        active_key="k2",
        url_ttl_s=600,
    )
    from_settings = UrlSigner.from_settings(cdn)
    assert from_settings is not None
    _, query = split(from_settings.sign(PATH))
    assert query["kid"] == "k2"
    UrlSigner({"k2": b"b" * 32}, "k2", 600).verify(PATH, query)
    older = UrlSigner({"k1": b"a" * 32}, "k1", 600)
    from_settings.verify(*split(older.sign(PATH)))


def test_from_settings_without_an_active_key_is_none() -> None:
    assert UrlSigner.from_settings(CdnSettings()) is None
    keys_only = CdnSettings(signing_keys=(SigningKey(id="k1", secret=SecretStr("a" * 32)),))
    assert UrlSigner.from_settings(keys_only) is None


def test_an_active_key_that_is_not_held_is_refused() -> None:
    with pytest.raises(ValueError, match="active key"):
        UrlSigner({"old": OLD}, "new", TTL)


@pytest.mark.parametrize("path", ["cdn/a/b/thumb", "/cdn/a?x=1", "/cdn/a#frag", "/cdn/a\nb", ""])
def test_only_absolute_paths_without_query_are_signed(path: str) -> None:
    with pytest.raises(ValueError, match="absolute URL path"):
        signer().sign(path)
