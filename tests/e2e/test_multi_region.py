"""Three regions as separate processes on loopback, the edge in front (the issue's done-when).

us-west-2 is the primary: its process runs every role on the primary PostgreSQL. eu-west-1 and
ap-southeast-1 run the API only; they write to the primaries and read from their own streaming
replica. All three share the local cluster's SeaweedFS, broker and Redis. Clients are told apart by
``X-Forwarded-For`` (the edge trusts loopback), with addresses GeoLite2 places in North America,
Europe and Asia. Which region answered is said by the region itself (``X-Photostore-Region``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from photostore.cluster.local import ClusterState
from tests.engines.postgres_fixtures import pg_primary, pg_replicas
from tests.support.cluster import tenant_of
from tests.support.engines.postgres import Postmaster, pause_replay, resume_replay, wait_for_replay
from tests.support.images import jpeg
from tests.support.regions import (
    AP_SOUTHEAST,
    ASIA_CLIENT,
    EU_WEST,
    EUROPE_CLIENT,
    LOOPBACK_PROXIES,
    NORTH_AMERICA_CLIENT,
    REGIONS,
    US_WEST,
    EdgeProcess,
    as_client,
    edge_env,
    regions_json,
    wait_until_healthy,
)
from tests.support.server import ADMIN_TOKEN, PHOTOSTORE, ServerProcess, free_port, wait_ready_photo

__all__ = ["pg_primary", "pg_replicas"]  # fixtures, used by name

READ_YOUR_WRITES_S = 2.0
SIGNING_SECRET = "region-test-signing-secret-0123456789"
FAILOVER_BOUND_S = 5.0  # from the kill to the first request answered by the next region
RETURN_BOUND_S = 10.0  # from the region being ready again to its clients being back


@dataclass
class Deployment:
    regions: dict[str, ServerProcess]
    edge: EdgeProcess
    primary: Postmaster
    replicas: dict[str, Postmaster]
    database_prefix: str
    folder: Path

    def restart(self, name: str) -> None:
        old = self.regions[name]
        old.kill()
        fresh = ServerProcess(old.data_dir, role=old.role, env=old.env, port=old.port, tenant=old.tenant)
        self.regions[name] = fresh.start()


def _cdn_env(ports: dict[str, int]) -> dict[str, str]:
    provider = {
        "name": "loopback-cdn",
        "regions": [region.name for region in REGIONS],
        "endpoints": {region.name: f"http://127.0.0.1:{ports[region.name]}" for region in REGIONS},
        "priority": 10,
    }
    return {
        "PHOTOSTORE_CDN__PROVIDERS": json.dumps([provider]),
        "PHOTOSTORE_CDN__SIGNING_KEYS": json.dumps([{"id": "k1", "secret": SIGNING_SECRET}]),
        "PHOTOSTORE_CDN__ACTIVE_KEY": "k1",
    }


@pytest.fixture(scope="module")
def deployment(
    cluster_state: ClusterState,
    pg_primary: Postmaster,
    pg_replicas: list[Postmaster],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("regions")
    tenant = tenant_of(cluster_state)
    prefix = f"ps_{tenant.token}"
    ports = {region.name: free_port() for region in REGIONS}
    replicas = {EU_WEST.name: pg_replicas[0], AP_SOUTHEAST.name: pg_replicas[1]}
    replica_templates = {
        name: [f"postgresql://postgres:postgres@127.0.0.1:{server.port}/{prefix}_{{shard}}"]
        for name, server in replicas.items()
    }
    shared = {
        **tenant.env,
        "PHOTOSTORE_METADATA__POSTGRES__DSN_TEMPLATE": (
            f"postgresql://postgres:postgres@127.0.0.1:{pg_primary.port}/{prefix}_{{shard}}"
        ),
        "PHOTOSTORE_METADATA__POSTGRES__READ_YOUR_WRITES_S": str(READ_YOUR_WRITES_S),
        "PHOTOSTORE_METADATA__POSTGRES__REPLICA_CHECK_INTERVAL_S": "0.5",
        "PHOTOSTORE_METADATA__POOL__MAX_OPEN_CONNS": "4",
        "PHOTOSTORE_REGIONS__REGIONS": regions_json(ports, replica_templates),
        "PHOTOSTORE_GEO__TRUSTED_PROXIES": LOOPBACK_PROXIES,
        **_cdn_env(ports),
    }
    processes: dict[str, ServerProcess] = {}
    edge = EdgeProcess(folder / "edge", edge_env(ports))
    try:
        for region in REGIONS:  # the primary first: it creates and migrates the shard databases
            env = {**shared, "PHOTOSTORE_REGIONS__LOCAL": region.name}
            role = "all" if region.role == "primary" else "api"
            (folder / region.name).mkdir()
            process = ServerProcess(
                folder / region.name / "data", role=role, env=env, port=ports[region.name]
            )
            processes[region.name] = process.start(timeout_s=60)
        edge.start()
        wait_until_healthy(edge.url, [region.name for region in REGIONS])
        yield Deployment(processes, edge, pg_primary, replicas, prefix, folder)
    finally:
        edge.stop()
        for process in processes.values():
            process.stop()
        asyncio.run(_drop_databases(pg_primary, prefix))


async def _drop_databases(primary: Postmaster, prefix: str) -> None:
    conn = await asyncpg.connect(**primary.server.connect_args())
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}_%")
        for row in rows:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()


async def _photo_shards(server: Postmaster, prefix: str, photo_id: str) -> list[str]:
    """The shard databases on ``server`` that hold a row for the photo."""
    conn = await asyncpg.connect(**server.server.connect_args())
    try:
        names = [
            r["datname"]
            for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}_%")
        ]
    finally:
        await conn.close()
    found = []
    for name in names:
        try:
            shard = await asyncpg.connect(**server.server.connect_args(name))
        except asyncpg.PostgresError:
            continue  # not replayed onto this server yet
        try:
            if await shard.fetchval("SELECT count(*) FROM photos WHERE id = $1::uuid", photo_id):
                found.append(name)
        finally:
            await shard.close()
    return found


def _user_through(edge_url: str, client: str, name: str, expected_region: str) -> str:
    """A new user made through the edge by ``client``; its API key. Says which region made it."""
    created = httpx.post(
        f"{edge_url}/v1/users",
        json={"name": name},
        headers={**as_client(client), "authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-photostore-region"] == expected_region
    key: str = created.json()["api_key"]
    return key


def _served_by(edge: EdgeProcess, client: str, path: str = "/healthz") -> str:
    response = httpx.get(f"{edge.url}{path}", headers=as_client(client), timeout=10)
    assert response.status_code == 200, response.text
    region = response.headers["x-photostore-region"]
    assert response.headers["x-photostore-edge-region"] == region
    return region


def _replica_reads(server: ServerProcess) -> float:
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("photostore_replica_reads_total{") and 'role="replica"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_clients_reach_their_nearest_region(deployment: Deployment) -> None:
    assert _served_by(deployment.edge, NORTH_AMERICA_CLIENT) == US_WEST.name
    assert _served_by(deployment.edge, EUROPE_CLIENT) == EU_WEST.name
    assert _served_by(deployment.edge, ASIA_CLIENT) == AP_SOUTHEAST.name
    where = httpx.get(f"{deployment.edge.url}/edge/regions", headers=as_client(EUROPE_CLIENT)).json()
    assert where["you"]["region"] == EU_WEST.name
    assert where["you"]["located"] is True
    assert where["you"]["client_address"] == EUROPE_CLIENT
    status = subprocess.run(
        [PHOTOSTORE, "regions", "status", "--edge", deployment.edge.url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert {r["name"]: r["healthy"] for r in json.loads(status.stdout)["regions"]} == {
        region.name: True for region in REGIONS
    }


def test_an_upload_from_europe_lands_on_the_primary_and_reads_back_in_europe(deployment: Deployment) -> None:
    edge, europe = deployment.edge, as_client(EUROPE_CLIENT)
    eu_replica = deployment.replicas[EU_WEST.name]
    key = _user_through(edge.url, EUROPE_CLIENT, "eu-user", EU_WEST.name)
    wait_for_replay(deployment.primary.server, eu_replica.server)
    # The European replica stops replaying: whatever Europe reads next about this upload, it can
    # only have read from the primary (read-your-writes), never from its own replica.
    pause_replay(eu_replica.server)
    original = jpeg(800, 600, seed=51)
    with httpx.Client(
        base_url=edge.url, headers={**europe, "authorization": f"Bearer {key}"}, timeout=30
    ) as eu:
        try:
            upload = eu.post("/v1/photos", files={"file": ("dublin.jpg", original, "image/jpeg")})
            assert upload.status_code == 201, upload.text
            assert upload.headers["x-photostore-region"] == EU_WEST.name
            photo_id = upload.json()["id"]
            on_primary = asyncio.run(_photo_shards(deployment.primary, deployment.database_prefix, photo_id))
            assert len(on_primary) == 1, on_primary
            assert asyncio.run(_photo_shards(eu_replica, deployment.database_prefix, photo_id)) == []
            read = eu.get(f"/v1/photos/{photo_id}/original")
            assert read.status_code == 200, read.text
            assert read.headers["x-photostore-region"] == EU_WEST.name
            assert read.content == original
        finally:
            resume_replay(eu_replica.server)
        wait_for_replay(deployment.primary.server, eu_replica.server)
        assert asyncio.run(_photo_shards(eu_replica, deployment.database_prefix, photo_id)) == on_primary
        body = wait_ready_photo(eu, photo_id)
        # Once the user's write is older than the window, Europe reads from its own replica.
        time.sleep(READ_YOUR_WRITES_S + 0.5)
        before = _replica_reads(deployment.regions[EU_WEST.name])
        listed = eu.get("/v1/photos")  # a listing always asks the database (views may be cached)
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["items"]] == [photo_id]
        assert _replica_reads(deployment.regions[EU_WEST.name]) > before
        again = eu.get(f"/v1/photos/{photo_id}")
        assert again.status_code == 200
        assert again.json()["sha256"] == body["sha256"]
        # Signed CDN URLs point at the provider endpoint in Europe and serve without an API key.
        cdn = again.json()["cdn"]
        assert cdn["original"].startswith(deployment.regions[EU_WEST.name].url + "/cdn/")
        assert httpx.get(cdn["original"], timeout=30).content == original
        thumb = httpx.get(
            cdn["variants"]["thumb"], headers={"accept": "image/avif,image/webp,*/*"}, timeout=30
        )
        assert thumb.status_code == 200
        assert thumb.headers["content-type"] == "image/avif"
        assert thumb.headers["vary"] == "Accept"


def test_byte_reads_are_redirected_unless_they_carry_credentials(deployment: Deployment) -> None:
    edge, asia = deployment.edge, as_client(ASIA_CLIENT)
    photo_path = "/v1/photos/0192f0c4-7a1b-7c3d-8e4f-a1b2c3d4e5f6/original"
    answer = httpx.get(f"{edge.url}{photo_path}?x=1", headers=asia, timeout=10)
    assert answer.status_code == 307
    assert answer.headers["location"] == deployment.regions[AP_SOUTHEAST.name].url + photo_path + "?x=1"
    # With a key it is proxied (the region itself answers: 401 for this made-up key).
    keyed = httpx.get(
        f"{edge.url}{photo_path}", headers={**asia, "authorization": "Bearer ps_nope"}, timeout=10
    )
    assert keyed.status_code == 401
    assert keyed.headers["x-photostore-region"] == AP_SOUTHEAST.name
    ports = {name: process.port for name, process in deployment.regions.items()}
    proxying = EdgeProcess(
        deployment.folder / "proxying-edge", edge_env(ports, PHOTOSTORE_EDGE__BYTE_READS="proxy")
    )
    proxying.start()
    try:
        wait_until_healthy(proxying.url, [region.name for region in REGIONS])
        proxied = httpx.get(f"{proxying.url}{photo_path}", headers=asia, timeout=10)
        assert proxied.status_code == 401
        assert proxied.headers["x-photostore-region"] == AP_SOUTHEAST.name
    finally:
        proxying.stop()


def test_a_killed_region_loses_its_clients_to_the_next_nearest_and_gets_them_back(
    deployment: Deployment,
) -> None:
    edge = deployment.edge
    europe = deployment.regions[EU_WEST.name]
    # Clients from three continents keep asking throughout the kill and the return.
    stop = threading.Event()
    outcomes: list[tuple[str, int, str]] = []
    clients = [EUROPE_CLIENT, EUROPE_CLIENT, ASIA_CLIENT, NORTH_AMERICA_CLIENT]
    threads = [threading.Thread(target=_keep_asking, args=(edge, c, stop, outcomes)) for c in clients]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    europe.kill()
    killed_at = time.monotonic()
    # The first request after the kill is already answered, by the next nearest region to London.
    assert _served_by(edge, EUROPE_CLIENT) == US_WEST.name
    failover_s = time.monotonic() - killed_at
    assert failover_s < FAILOVER_BOUND_S
    for _ in range(20):  # and every one after it, with no error in between
        assert _served_by(edge, EUROPE_CLIENT) == US_WEST.name
    assert _served_by(edge, ASIA_CLIENT) == AP_SOUTHEAST.name
    assert _served_by(edge, NORTH_AMERICA_CLIENT) == US_WEST.name
    regions = httpx.get(f"{edge.url}/edge/regions", timeout=5).json()["regions"]
    assert [r["healthy"] for r in regions if r["name"] == EU_WEST.name] == [False]
    _an_upload_fails_over_from_a_region_believed_up(deployment)

    deployment.restart(EU_WEST.name)
    ready_at = time.monotonic()
    while _served_by(edge, EUROPE_CLIENT) != EU_WEST.name:
        assert time.monotonic() - ready_at < RETURN_BOUND_S, "Europe's clients did not come back"
        time.sleep(0.05)
    back_s = time.monotonic() - ready_at
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    failed = [outcome for outcome in outcomes if outcome[1] != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed during failover: {failed[:5]}"
    print(  # shown with -s: the figures behind the bounds
        f"failover {failover_s:.3f} s, back {back_s:.3f} s after ready, "
        f"{len(outcomes)} requests meanwhile, {len(failed)} failed"
    )
    served = {(client, region) for client, _, region in outcomes}
    assert (EUROPE_CLIENT, US_WEST.name) in served  # while Europe was down
    assert (EUROPE_CLIENT, EU_WEST.name) in served
    assert {region for client, region in served if client == ASIA_CLIENT} == {AP_SOUTHEAST.name}


def _an_upload_fails_over_from_a_region_believed_up(deployment: Deployment) -> None:
    """A fresh edge that probes once a minute still believes Europe (down) is up: its first write
    (a POST with a JSON body) is refused a connection before any byte of the body went out, so it
    goes on to us-west-2, once (the failover count), and the upload after it goes there directly."""
    ports = {name: process.port for name, process in deployment.regions.items()}
    env = edge_env(ports, PHOTOSTORE_EDGE__HEALTH__PROBE_INTERVAL_S="60")
    fresh = EdgeProcess(deployment.folder / "fresh-edge", env).start()
    try:
        key = _user_through(fresh.url, EUROPE_CLIENT, "traveller", US_WEST.name)
        upload = httpx.post(
            f"{fresh.url}/v1/photos",
            content=jpeg(320, 240, seed=52),
            headers={**as_client(EUROPE_CLIENT), "authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert upload.status_code == 201, upload.text
        assert upload.headers["x-photostore-region"] == US_WEST.name
        metrics = httpx.get(f"{fresh.url}/edge/metrics", timeout=5).text
        assert 'photostore_edge_failovers_total{from_region="eu-west-1"} 1.0' in metrics
    finally:
        fresh.stop()


def _keep_asking(
    edge: EdgeProcess, client: str, stop: threading.Event, outcomes: list[tuple[str, int, str]]
) -> None:
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            try:
                answer = http.get(f"{edge.url}/healthz", headers=as_client(client))
                outcomes.append((client, answer.status_code, answer.headers.get("x-photostore-region", "")))
            except httpx.HTTPError as exc:
                outcomes.append((client, 0, type(exc).__name__))
            time.sleep(0.01)


def test_with_every_region_down_the_edge_answers_503_no_healthy_region(deployment: Deployment) -> None:
    for process in deployment.regions.values():
        process.kill()
    for client in (EUROPE_CLIENT, ASIA_CLIENT, NORTH_AMERICA_CLIENT):
        answer = httpx.get(f"{deployment.edge.url}/v1/photos", headers=as_client(client), timeout=10)
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "no_healthy_region"
        assert "retry-after" in answer.headers
    assert httpx.get(f"{deployment.edge.url}/edge/readyz", timeout=5).status_code == 503
