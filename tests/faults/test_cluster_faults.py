"""Cluster faults under a stream of concurrent uploads and reads (tests/faults/load.py).

Each fault runs once per module (a fixture), against a real ``photostore serve`` on the local
cluster, with the one engine under test replaced by a private one that the test may stop:

- a shard's PostgreSQL (shard 1 on a private postmaster; the other shards on the system server)
  stopped for a few seconds, then started again;
- a Redis Cluster primary SIGKILLed (its replica takes over), then restarted;
- SeaweedFS SIGKILLed for a few seconds, then started again on its data;
- the Kafka-protocol broker (tansu, memory only) killed for a few seconds, then started again.

What must hold: zero 500s; every 503 carries ``Retry-After``; the users of unaffected shards keep
being served; recovery needs no manual step; every acknowledged upload (201) reads back
byte-identical and becomes ready with its thumb and preview.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import pytest
import redis

from photostore.cluster.local import ClusterState
from photostore.ids import placement_key_of
from photostore.placement.store import PlacementStore
from tests.faults.load import Acknowledged, LoadGenerator, LoadResult, LoadUser, verify_acknowledged
from tests.support.cluster import tenant_of
from tests.support.engines.availability import unavailable
from tests.support.engines.kafka import TansuBroker, running_tansu
from tests.support.engines.postgres import private_postmaster
from tests.support.engines.redis import EngineStartError, RedisClusterEngine, RedisServer
from tests.support.engines.seaweedfs import seaweedfs_server
from tests.support.server import ServerProcess, create_user

OUTAGE_S = 3.0  # how long an engine stays down
WARM_UP_ACKS = 12  # acknowledged uploads before the fault
RECOVERY_ACKS = 3  # acknowledged uploads after recovery, to show it needs no manual step
READY_TIMEOUT_S = 45.0
PG_SHARD = 1  # the shard on the private postmaster
# The broker loses the events it held when it restarts: the reconciler re-drives their photos soon.
REDRIVE_SOON = {"PHOTOSTORE_EVENTS__REDRIVE_AFTER_S": "5"}


@dataclass
class FaultRun:
    """What one fault under load produced; checked by the tests below."""

    result: LoadResult
    down_at: float  # the engine was down from here ...
    up_at: float  # ... until here (start called)
    recovered_at: float  # the engine was back (start returned)
    users: list[LoadUser]
    unreadable: list[str] = field(default_factory=list)  # acknowledged photos not read back intact
    not_ready: dict[str, str] = field(default_factory=dict)  # photo id -> why it never became ready
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def outage(self) -> tuple[float, float]:
        return (self.down_at, self.up_at)


def _users(server: ServerProcess, count: int, accept: Callable[[list[LoadUser]], bool]) -> list[LoadUser]:
    """Create users until ``accept(users)``; each knows its shard from the server's shard map."""
    shard_map = PlacementStore(server.data_dir / "placement").shard_map
    users: list[LoadUser] = []
    for n in range(count):
        user_id, key = create_user(server.url, f"fault-{n}")
        users.append(LoadUser(user_id, key, shard_map.shard_for_key(placement_key_of(uuid.UUID(user_id)))))
        if accept(users):
            return users
    raise AssertionError(f"no acceptable set of users in {count}: {[u.shard for u in users]}")


def _run_fault(
    server: ServerProcess,
    users: list[LoadUser],
    fault: Callable[[], None],
    recover: Callable[[], None],
    *,
    seed: int,
    recovery_shards: list[int] | None = None,
    check_ready: bool = True,
    ready_timeout_s: float = READY_TIMEOUT_S,
    warm_until_ready: bool = False,
    pause_s: float = 0.02,
    max_uploads: int = 500,
) -> FaultRun:
    """Load, warm up, ``fault()``, keep loading ``OUTAGE_S``, ``recover()``, load until uploads are
    acknowledged again, stop; then verify every acknowledged upload."""
    load = LoadGenerator(
        server.url, users, clients=6, max_uploads=max_uploads, max_s=90, seed=seed, pause_s=pause_s
    ).start()
    try:
        load.wait_acknowledged(WARM_UP_ACKS)
        if warm_until_ready:  # the pipeline is flowing (consumers joined) before the fault
            first = load.result.acknowledged[:1]
            assert not verify_acknowledged(server.url, first, timeout_s=30), "the pipeline never started"
        fault()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        up_at = time.monotonic()
        recover()
        recovered_at = time.monotonic()
        load.wait_acknowledged_since(recovered_at, RECOVERY_ACKS, shards=recovery_shards)
        time.sleep(0.5)
    finally:
        result = load.stop()
    run = FaultRun(result, down_at, up_at, recovered_at, users)
    during = result.select(between=run.outage)
    print(
        f"\n[fault load] {result.summary()}; 5xx {dict(result.server_errors())}; during the outage: "
        f"{dict(LoadResult.statuses(during))}"
    )
    run.unreadable = verify_acknowledged(server.url, result.acknowledged, check_ready=False, timeout_s=20)
    if check_ready:
        problems = verify_acknowledged(server.url, result.acknowledged, timeout_s=ready_timeout_s)
        run.not_ready = {problem.split(":", 1)[0]: problem for problem in problems}
    return run


def _assert_no_500s_and_retry_after(run: FaultRun) -> None:
    result = run.result
    assert result.count(500) == 0, f"500s under the fault: {result.summary()}"
    assert not result.without_retry_after(), f"503s without Retry-After: {result.without_retry_after()[:3]}"
    other = {s: n for s, n in result.server_errors().items() if s != 503}
    assert not other, f"5xx other than 503: {other}; {result.summary()}"
    assert not result.transport_errors(), f"requests without a response: {result.transport_errors()[:3]}"


def _assert_acknowledged_intact(run: FaultRun) -> None:
    assert run.result.acknowledged, "nothing was acknowledged"
    assert not run.unreadable, f"acknowledged uploads lost or altered: {run.unreadable[:5]}"


def _assert_acknowledged_ready(run: FaultRun, acknowledged: list[Acknowledged] | None = None) -> None:
    wanted = run.result.acknowledged if acknowledged is None else acknowledged
    assert wanted, "no acknowledged upload to check"
    stuck = [run.not_ready[a.photo_id] for a in wanted if a.photo_id in run.not_ready]
    assert not stuck, f"{len(stuck)} of {len(wanted)} acknowledged uploads never became ready: {stuck[:3]}"


@contextmanager
def _fault_server(
    tmp_path_factory: pytest.TempPathFactory,
    cluster_state: ClusterState,
    name: str,
    env: dict[str, str],
    broker: TansuBroker | None = None,
) -> Iterator[ServerProcess]:
    """A started server on its own corner of the cluster and its own broker (one a fault may stop
    without touching the shared cluster's); stopped, its databases dropped and the broker stopped
    on exit."""
    with ExitStack() as stack:
        if broker is None:
            broker = stack.enter_context(running_tansu())
        data_dir = tmp_path_factory.mktemp(f"fault-{name}") / "data"
        env = {**env, "PHOTOSTORE_EVENTS__KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap}
        server = ServerProcess(data_dir, env=env, tenant=tenant_of(cluster_state))
        try:
            server.start()
            yield server
        finally:
            server.stop()
            assert server.tenant is not None
            server.tenant.drop_databases()


# --- a shard's PostgreSQL restarted -----------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_fault(tmp_path_factory: pytest.TempPathFactory, cluster_state: ClusterState) -> FaultRun:
    with private_postmaster() as postmaster:
        dsn = f"postgresql://postgres@127.0.0.1:{postmaster.port}/photo_shard_{PG_SHARD}"
        env = {"PHOTOSTORE_METADATA__POSTGRES__SHARDS": json.dumps([{"id": PG_SHARD, "dsn": dsn}])}
        with _fault_server(tmp_path_factory, cluster_state, "postgres", env) as server:

            def accept(users: list[LoadUser]) -> bool:
                on = sum(u.shard == PG_SHARD for u in users)
                return on >= 3 and len(users) - on >= 3

            users = _users(server, 200, accept)  # 3 on shard 1 comes within 60 users almost always
            on = [u for u in users if u.shard == PG_SHARD][:3]
            off = [u for u in users if u.shard != PG_SHARD][:3]
            run = _run_fault(
                server,
                on + off,
                lambda: postmaster.stop("fast"),
                postmaster.start,
                seed=1,
                recovery_shards=[PG_SHARD],
            )
    return run


def test_postgres_shard_restart_no_500_and_503_with_retry_after(postgres_fault: FaultRun) -> None:
    _assert_no_500s_and_retry_after(postgres_fault)
    affected = postgres_fault.result.select(shards=[PG_SHARD], between=postgres_fault.outage)
    assert postgres_fault.result.count(503, affected) > 0, (
        f"the shard's users got no 503 while its database was down: {LoadResult.statuses(affected)}"
    )


def test_postgres_shard_restart_other_shards_keep_serving(postgres_fault: FaultRun) -> None:
    run = postgres_fault
    others = {u.shard for u in run.users} - {PG_SHARD}
    during = run.result.select(shards=others, between=run.outage)
    statuses = LoadResult.statuses(during)
    assert not [s for s in statuses if s >= 500 or s == 0], (
        f"other shards failed during the outage: {statuses}"
    )
    uploads = run.result.select(op="upload", shards=others, between=run.outage)
    assert run.result.count(201, uploads) > 0, f"no upload on other shards during the outage: {statuses}"


def test_postgres_shard_restart_loses_no_acknowledged_upload(postgres_fault: FaultRun) -> None:
    _assert_acknowledged_intact(postgres_fault)
    _assert_acknowledged_ready(postgres_fault)


# --- a Redis Cluster primary killed ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_fault(tmp_path_factory: pytest.TempPathFactory, cluster_state: ClusterState) -> FaultRun:
    try:
        engine = RedisClusterEngine(tmp_path_factory.mktemp("fault-redis-cluster")).start()
    except EngineStartError as error:
        unavailable(f"Redis Cluster unavailable: {error}")
    try:
        env = {
            "PHOTOSTORE_CACHE__BACKEND": "redis",
            "PHOTOSTORE_CACHE__REDIS__MODE": "cluster",
            "PHOTOSTORE_CACHE__REDIS__CLUSTER_NODES": json.dumps(engine.seeds),
        }
        with _fault_server(tmp_path_factory, cluster_state, "redis", env) as server:
            users = _users(server, 3, lambda users: len(users) == 3)
            killed: list[RedisServer] = []
            keys_before: list[int] = []

            def kill() -> None:
                keys_before.append(_keys_in(engine))
                killed.append(engine.kill_primary_for("ps:fault-probe"))
                # The replica takes over about 8 s later (node timeout 5 s): keep the load on until then.
                time.sleep(9.0 - OUTAGE_S)

            # Uploads never wait for the cache: paced, so the upload budget outlasts the ~12 s failover.
            run = _run_fault(
                server, users, kill, lambda: engine.restart_node(killed[0]), seed=2, pause_s=0.15
            )
            run.notes["keys_before"] = keys_before[0]
    finally:
        engine.stop()
    return run


def _keys_in(engine: RedisClusterEngine) -> int:
    total = 0
    for node in engine.nodes:
        if node.running:
            with node.client() as client:
                try:
                    if client.info("replication").get("role") == "master":
                        total += int(client.dbsize())
                except redis.RedisError:
                    continue
    return total


def test_redis_primary_killed_requests_never_fail(redis_fault: FaultRun) -> None:
    assert int(redis_fault.notes["keys_before"]) > 0, "the server did not use the Redis Cluster"  # type: ignore[call-overload]
    _assert_no_500s_and_retry_after(redis_fault)
    errors = redis_fault.result.server_errors()
    assert not errors, f"requests failed because of the cache: {errors}; {redis_fault.result.summary()}"
    uploads = redis_fault.result.select(op="upload", between=redis_fault.outage)
    assert redis_fault.result.count(201, uploads) > 0, "no upload was acknowledged during the failover"


def test_redis_primary_killed_loses_no_acknowledged_upload(redis_fault: FaultRun) -> None:
    _assert_acknowledged_intact(redis_fault)
    _assert_acknowledged_ready(redis_fault)


# --- SeaweedFS restarted ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seaweedfs_fault(tmp_path_factory: pytest.TempPathFactory, cluster_state: ClusterState) -> FaultRun:
    with seaweedfs_server() as weed:
        endpoint = weed.endpoint_settings(name="local")
        endpoints = [
            {
                "name": endpoint.name,
                "url": endpoint.url,
                "region": endpoint.region,
                "access_key_id": endpoint.access_key_id,
                "secret_access_key": endpoint.secret_access_key.get_secret_value(),
                "allow_http": True,
            }
        ]
        env = {"PHOTOSTORE_BLOBS__S3__ENDPOINTS": json.dumps(endpoints)}
        with _fault_server(tmp_path_factory, cluster_state, "seaweedfs", env) as server:
            users = _users(server, 3, lambda users: len(users) == 3)
            run = _run_fault(server, users, weed.stop, weed.start, seed=3)
    return run


def test_seaweedfs_restart_uploads_get_503_with_retry_after(seaweedfs_fault: FaultRun) -> None:
    _assert_no_500s_and_retry_after(seaweedfs_fault)
    uploads = seaweedfs_fault.result.select(op="upload", between=seaweedfs_fault.outage)
    assert seaweedfs_fault.result.count(503, uploads) > 0, (
        f"no upload got 503 while SeaweedFS was down: {LoadResult.statuses(uploads)}"
    )


def test_seaweedfs_restart_loses_no_acknowledged_upload(seaweedfs_fault: FaultRun) -> None:
    _assert_acknowledged_intact(seaweedfs_fault)
    _assert_acknowledged_ready(seaweedfs_fault)


# --- the broker restarted ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker_fault(tmp_path_factory: pytest.TempPathFactory, cluster_state: ClusterState) -> FaultRun:
    with (
        running_tansu() as broker,
        _fault_server(tmp_path_factory, cluster_state, "broker", REDRIVE_SOON, broker=broker) as server,
    ):
        users = _users(server, 3, lambda users: len(users) == 3)
        return _run_fault(
            server,
            users,
            broker.stop,
            broker.start,
            seed=4,
            warm_until_ready=True,
            # Uploads never wait for the broker (the outbox holds their events), and warming up
            # waits for the pipeline: paced, with room, so the budget outlasts the restart.
            pause_s=0.25,
            max_uploads=1000,
            ready_timeout_s=40,
        )


def test_broker_restart_no_500_and_503_with_retry_after(broker_fault: FaultRun) -> None:
    _assert_no_500s_and_retry_after(broker_fault)


def test_broker_restart_loses_no_acknowledged_upload(broker_fault: FaultRun) -> None:
    _assert_acknowledged_intact(broker_fault)


def test_broker_restart_uploads_after_recovery_become_ready(broker_fault: FaultRun) -> None:
    """The consumers find their partitions again on the broker that came back empty: a member
    rejoins, and a member whose position is past the new log's end starts it from the beginning."""
    after = [a for a in broker_fault.result.acknowledged if a.at >= broker_fault.recovered_at]
    _assert_acknowledged_ready(broker_fault, after)


def test_broker_restart_uploads_before_and_during_become_ready(broker_fault: FaultRun) -> None:
    """tansu lost the events it held; the reconciler re-drives the photos they were about."""
    before = [a for a in broker_fault.result.acknowledged if a.at < broker_fault.recovered_at]
    _assert_acknowledged_ready(broker_fault, before)
