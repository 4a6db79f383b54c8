"""Authentication against a real embedded MetadataStore (SQLite shards) and the real in-process cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from photostore.cache.memory import MemoryCache
from photostore.cache.tiered import TieredCache
from photostore.domain import Scope
from photostore.errors import Forbidden, Unauthorized
from photostore.ids import new_user_id
from photostore.metadata.factory import open_embedded_store
from photostore.metadata.sql_store import SqlMetadataStore
from photostore.pipeline.auth import AUTH_CACHE_TTL_S, Authenticator, Principal, check_admin_token
from photostore.pipeline.keys import PREFIX, parse_key
from photostore.pipeline.users import create_user
from photostore.placement.shard_map import ShardMap
from photostore.settings import Settings

ADMIN_TOKEN = "an-admin-token-for-tests"


class StepClock:
    """The cache's clock (its ``clock`` argument): monotonic time plus a skip we control."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


@dataclass
class Env:
    store: SqlMetadataStore
    cache: MemoryCache
    clock: StepClock
    auth: Authenticator


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    shard_map = ShardMap.create(4, partition_power=8)
    settings = Settings(data_dir=tmp_path / "data")
    store = open_embedded_store(settings, shard_map.shard_ids, shard_map.shard_for_key)
    clock = StepClock()
    cache = MemoryCache(max_bytes=1 << 20, default_ttl_s=300, max_item_bytes=1 << 16, clock=clock)
    await store.start()
    try:
        yield Env(store, cache, clock, Authenticator(store, TieredCache(cache), clock))
    finally:
        await store.close()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def with_other_secret(token: str) -> str:
    """The same user and key id with a secret that differs in its first character."""
    parsed = parse_key(token)
    assert parsed is not None
    other = ("B" if parsed.secret[0] != "B" else "C") + parsed.secret[1:]
    return token[: len(token) - len(parsed.secret)] + other


async def test_a_valid_key_authenticates_with_its_scopes(env: Env) -> None:
    user, token = await create_user(env.store, "alice")
    principal = await env.auth.authenticate(bearer(token))
    parsed = parse_key(token)
    assert parsed is not None
    assert principal == Principal(user.id, parsed.key_id, frozenset({Scope.READ, Scope.WRITE}))
    # The second call is answered from the cache, with the same verdict.
    assert await env.auth.authenticate(bearer(token)) == principal


async def test_scopes_come_from_the_stored_key(env: Env) -> None:
    user, token = await create_user(env.store, "reader", scopes=frozenset({Scope.READ}))
    first = await env.auth.authenticate(bearer(token))
    cached = await env.auth.authenticate(bearer(token))
    assert first.scopes == cached.scopes == frozenset({Scope.READ})
    assert first.user_id == cached.user_id == user.id


async def test_the_scheme_is_case_insensitive(env: Env) -> None:
    user, token = await create_user(env.store, "alice")
    assert (await env.auth.authenticate(f"bearer {token}")).user_id == user.id
    assert (await env.auth.authenticate(f"BEARER  {token} ")).user_id == user.id


async def test_each_user_gets_their_own_principal(env: Env) -> None:
    alice, alice_key = await create_user(env.store, "alice")
    bob, bob_key = await create_user(env.store, "bob")
    assert (await env.auth.authenticate(bearer(alice_key))).user_id == alice.id
    assert (await env.auth.authenticate(bearer(bob_key))).user_id == bob.id
    assert (await env.auth.authenticate(bearer(alice_key))).user_id == alice.id


async def test_a_revoked_key_fails_once_its_cached_verdicts_are_gone(env: Env) -> None:
    user, token = await create_user(env.store, "alice")
    principal = await env.auth.authenticate(bearer(token))
    assert await env.store.revoke_api_key(user.id, principal.key_id)
    env.cache.clear()
    assert await env.auth.authenticate(bearer(token)) == principal  # this process's memo still has it
    env.auth.forget()
    with pytest.raises(Unauthorized):
        await env.auth.authenticate(bearer(token))


async def test_a_revoked_key_works_at_most_for_the_cache_ttl(env: Env) -> None:
    user, token = await create_user(env.store, "alice")
    principal = await env.auth.authenticate(bearer(token))
    assert await env.store.revoke_api_key(user.id, principal.key_id)
    env.clock.skipped = AUTH_CACHE_TTL_S - 5
    assert await env.auth.authenticate(bearer(token)) == principal  # the documented grace
    env.clock.skipped = AUTH_CACHE_TTL_S + 0.1
    with pytest.raises(Unauthorized):
        await env.auth.authenticate(bearer(token))


async def test_a_wrong_secret_fails_whether_or_not_the_key_is_cached(env: Env) -> None:
    _, token = await create_user(env.store, "alice")
    forged = with_other_secret(token)
    assert forged != token
    with pytest.raises(Unauthorized):
        await env.auth.authenticate(bearer(forged))  # not cached: checked against the store
    await env.auth.authenticate(bearer(token))  # now the key id is cached
    with pytest.raises(Unauthorized):
        await env.auth.authenticate(bearer(forged))
    # The forgery did not poison the cache for the real key.
    await env.auth.authenticate(bearer(token))


async def test_a_cached_key_id_under_another_user_id_fails(env: Env) -> None:
    _, alice_key = await create_user(env.store, "alice")
    bob, _ = await create_user(env.store, "bob")
    await env.auth.authenticate(bearer(alice_key))  # alice's key id is cached
    alice = parse_key(alice_key)
    assert alice is not None
    # Alice's key id and secret, presented as bob's.
    swapped = f"{PREFIX}{bob.id.hex}{alice.key_id}_{alice.secret}"
    with pytest.raises(Unauthorized):
        await env.auth.authenticate(bearer(swapped))
    env.cache.clear()
    with pytest.raises(Unauthorized):
        await env.auth.authenticate(bearer(swapped))


async def test_a_well_formed_key_that_was_never_issued_fails(env: Env) -> None:
    user, _ = await create_user(env.store, "alice")
    never = f"{PREFIX}{user.id.hex}{'0' * 16}_not-a-secret"
    with pytest.raises(Unauthorized, match="not valid"):
        await env.auth.authenticate(bearer(never))
    unknown_user = f"{PREFIX}{'0' * 32}{'0' * 16}_x"
    with pytest.raises(Unauthorized, match="not valid"):
        await env.auth.authenticate(bearer(unknown_user))


async def test_missing_header_or_wrong_scheme_is_unauthorized(env: Env) -> None:
    for header in (
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Token ps_abc",
        "ps_abc",
    ):
        with pytest.raises(Unauthorized, match="Bearer"):
            await env.auth.authenticate(header)


async def test_malformed_key_is_unauthorized(env: Env) -> None:
    for token in ("garbage", "ps_", "ps_" + "0" * 48 + "_", "ps_" + "0" * 47 + "_secret", "sk_live_abc"):
        with pytest.raises(Unauthorized, match="malformed"):
            await env.auth.authenticate(bearer(token))


def test_principal_require() -> None:
    reader = Principal(user_id=new_user_id(), key_id="k", scopes=frozenset({Scope.READ}))
    reader.require(Scope.READ)
    with pytest.raises(Forbidden, match="'write'"):
        reader.require(Scope.WRITE)
    with pytest.raises(Forbidden, match="'admin'"):
        reader.require(Scope.ADMIN)
    nobody = Principal(reader.user_id, "k", frozenset())
    with pytest.raises(Forbidden):
        nobody.require(Scope.READ)
    admin = Principal(reader.user_id, "k", frozenset({Scope.ADMIN}))
    for scope in Scope:
        admin.require(scope)  # admin implies every scope


def test_admin_token_accepted() -> None:
    check_admin_token(bearer(ADMIN_TOKEN), ADMIN_TOKEN)
    check_admin_token(f"bearer {ADMIN_TOKEN}", ADMIN_TOKEN)


@pytest.mark.parametrize(
    "header",
    [
        bearer("wrong"),
        bearer(ADMIN_TOKEN + "x"),
        bearer(ADMIN_TOKEN[:-1]),
        bearer(ADMIN_TOKEN.upper()),
        bearer("é"),
    ],
)
def test_wrong_admin_token_is_unauthorized(header: str) -> None:
    with pytest.raises(Unauthorized, match="admin token"):
        check_admin_token(header, ADMIN_TOKEN)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", ADMIN_TOKEN])
def test_admin_header_without_bearer_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized, match="Bearer"):
        check_admin_token(header, ADMIN_TOKEN)


@pytest.mark.parametrize("header", [None, bearer(ADMIN_TOKEN), bearer("")])
def test_no_admin_token_configured_forbids_user_creation(header: str | None) -> None:
    with pytest.raises(Forbidden, match="PHOTOSTORE_ADMIN_TOKEN"):
        check_admin_token(header, None)
