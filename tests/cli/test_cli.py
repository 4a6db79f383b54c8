"""The ``photostore`` command, run as the real executable in a subprocess on a temporary data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from photostore.ids import parse_id
from photostore.pipeline.keys import parse_key
from tests.support import images
from tests.support.server import ServerProcess

PHOTOSTORE = str(Path(sys.executable).with_name("photostore"))
MASK = "**********"
TABLE_BORDER = set("┏┃┡│└╇━┳┩┛┗┓┯┷")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"photostore {' '.join(self.args)} -> {self.returncode}\n{self.stdout}\n{self.stderr}"


def cli_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PHOTOSTORE_")}
    env.update(
        {
            "PHOTOSTORE_DATA_DIR": str(data_dir),
            # The partition power tests.support.server gives the server, so both see the same ring.
            "PHOTOSTORE_PLACEMENT__PARTITION_POWER": "12",
            "COLUMNS": "200",  # rich would wrap at 80 columns without a terminal
        }
    )
    env.update(extra or {})
    return env


def photostore(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
    done = subprocess.run(
        [PHOTOSTORE, *args],
        env=cli_env(data_dir, env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(tuple(args), done.returncode, done.stdout, done.stderr)


def photostore_many(
    data_dir: Path, commands: Sequence[Sequence[str]], envs: Sequence[Mapping[str, str]] | None = None
) -> list[Result]:
    """Independent commands, run side by side to keep the suite fast."""
    envs = envs or [{}] * len(commands)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args, env: photostore(data_dir, *args, env=env), commands, envs))


def ok(result: Result) -> Result:
    assert result.returncode == 0, str(result)
    return result


def tables(output: str) -> dict[str, list[list[str]]]:
    """The body rows of each rich table in ``output``, by the table's title."""
    found: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in output.splitlines():
        text = line.strip()
        if not text:
            continue
        if text[0] not in TABLE_BORDER:
            current = found.setdefault(text, [])
        elif text[0] == "│" and current is not None:
            current.append([cell.strip() for cell in text.strip("│").split("│")])
    return found


def column_total(rows: list[list[str]], index: int) -> int:
    return sum(int(row[index]) for row in rows)


# --- help -------------------------------------------------------------------------------------

HELP = {
    # The top level lists every group with its description; each command's own help follows.
    (): [
        "photostore: a photo storage service",
        "Run the service",
        "Bulk-import photos",
        "Inspect the settings",
        "Manage users and their API keys",
        "Metadata shards",
        "Object buckets",
        "The event log: topics, partitions and consumer lag",
    ],
    ("serve",): ["Run the service", "--role", "--port", "--config"],
    ("upload",): ["Bulk-import photos", "--api-key", "PHOTOSTORE_API_KEY", "--url", "--concurrency"],
    ("config", "show"): ["Print the effective settings as JSON", "--config"],
    ("users", "create"): ["Create a user", "name", "--config"],
    ("shards", "list"): ["Shards with their share of the ring"],
    ("buckets", "list"): ["Buckets with their share of the ring"],
    ("queue", "status"): ["Topics, partitions, records and lag"],
}


def test_help_of_every_command(tmp_path: Path) -> None:
    results = photostore_many(tmp_path / "data", [[*command, "--help"] for command in HELP])
    for (command, expected), result in zip(HELP.items(), results, strict=True):
        ok(result)
        assert "Usage: photostore" in result.stdout, str(result)
        for text in expected:
            assert text in result.stdout, f"{text!r} missing from the help of {command}:\n{result.stdout}"
    assert not (tmp_path / "data").exists()  # help touches no data


# --- settings ---------------------------------------------------------------------------------


def test_config_show(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "photostore.toml"
    config.write_text("[server]\nport = 9123\n")
    masked, plain, from_file = photostore_many(
        data_dir,
        [["config", "show"], ["config", "show"], ["config", "show", "--config", str(config)]],
        [{"PHOTOSTORE_ADMIN_TOKEN": "very-secret-1234"}, {}, {}],
    )
    settings = json.loads(ok(masked).stdout)
    assert settings["admin_token"] == MASK
    assert "very-secret-1234" not in masked.stdout + masked.stderr
    assert settings["data_dir"] == str(data_dir)
    assert settings["server"]["port"] == 8000
    assert settings["events"]["topics"]["photo-upload"]["partitions"] == 128
    assert json.loads(ok(plain).stdout)["admin_token"] is None
    assert json.loads(ok(from_file).stdout)["server"]["port"] == 9123


def test_bad_settings_exit_2_naming_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    missing = tmp_path / "missing.toml"
    cases = [
        ({"PHOTOSTORE_SERVER__PORT": "notaport"}, ["config", "show"], "server.port"),
        ({"PHOTOSTORE_SERVER__PORT": "notaport"}, ["users", "create", "x"], "server.port"),
        ({"PHOTOSTORE_FOO": "1"}, ["config", "show"], "PHOTOSTORE_FOO"),
        ({}, ["config", "show", "--config", str(missing)], str(missing)),
    ]
    results = photostore_many(data_dir, [args for _, args, _ in cases], [env for env, _, _ in cases])
    for (_, _, key), result in zip(cases, results, strict=True):
        assert result.returncode == 2, str(result)
        assert "error:" in result.stderr, str(result)
        assert key in result.stderr, str(result)
        assert result.stdout == "", str(result)
    assert not data_dir.exists()  # nothing was created with bad settings


def test_the_uploaders_api_key_variable_does_not_break_other_commands(tmp_path: Path) -> None:
    ok(photostore(tmp_path / "data", "config", "show", env={"PHOTOSTORE_API_KEY": "ps_abc"}))


# --- users, shards, buckets, queue on a fresh data folder --------------------------------------


def test_users_create_refuses_an_empty_name(tmp_path: Path) -> None:
    result = photostore(tmp_path / "data", "users", "create", "   ")
    assert result.returncode == 1, str(result)
    assert "user name" in result.stderr
    assert result.stdout == ""


def test_a_fresh_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shards = ok(photostore(data_dir, "shards", "list"))  # the first command lays the folder out
    buckets, queue = photostore_many(data_dir, [["buckets", "list"], ["queue", "status"]])

    rows = tables(shards.stdout)["metadata shards (map version 1)"]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    assert sum(float(row[1].rstrip("%")) for row in rows) == pytest.approx(100, abs=0.05)
    assert [row[2:] for row in rows] == [["0", "0", "0", "0"]] * 4  # users, photos, bytes, outbox

    rows = tables(ok(buckets).stdout)["object buckets (map version 1)"]
    assert [row[0] for row in rows] == ["photos-0", "photos-1", "photos-2", "photos-3"]
    assert [row[2:] for row in rows] == [["0", "0"]] * 4  # objects, bytes
    assert sum(float(row[1].rstrip("%")) for row in rows) == pytest.approx(100, abs=0.05)

    found = tables(ok(queue).stdout)
    topics = {row[0]: row[1:] for row in found["topics"]}
    assert topics == {
        "photo-upload": ["128", "168 h", "0"],
        "photo-processing": ["256", "72 h", "0"],
        "thumbnail-generation": ["64", "24 h", "0"],
    }
    assert found["consumer groups"] == []  # nothing has consumed yet


def test_users_create_and_shards_list_count_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = [json.loads(ok(photostore(data_dir, "users", "create", name)).stdout) for name in ("bob", "carol")]
    for created, name in zip(made, ("bob", "carol"), strict=True):
        assert set(created) == {"id", "name", "api_key"}
        assert created["name"] == name
        user_id = parse_id(created["id"])
        assert user_id is not None
        parsed = parse_key(created["api_key"])
        assert parsed is not None
        assert parsed.user_id == user_id
    assert made[0]["id"] != made[1]["id"]
    rows = tables(ok(photostore(data_dir, "shards", "list")).stdout)["metadata shards (map version 1)"]
    assert len(rows) == 4
    assert column_total(rows, 2) == 2  # users
    assert column_total(rows, 3) == 0  # photos


def test_upload_of_nothing_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a photo")
    result = photostore(tmp_path / "data", "upload", str(empty), "--api-key", "ps_x")
    assert result.returncode == 2, str(result)
    assert "no files found" in result.stderr


# --- against a running server on the same data folder ------------------------------------------


@dataclass(frozen=True)
class Workspace:
    data_dir: Path
    photos: Path  # 5 small images and a text file
    broken: Path  # a file named .jpg that is not an image
    user_id: str
    api_key: str


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("cli")
    data_dir = root / "data"
    created = json.loads(ok(photostore(data_dir, "users", "create", "alice")).stdout)
    photos = root / "photos"
    (photos / "2024").mkdir(parents=True)
    for seed in range(3):
        (photos / f"img{seed}.jpg").write_bytes(images.jpeg(64, 48, seed=100 + seed))
    (photos / "2024" / "img3.jpeg").write_bytes(images.jpeg(48, 64, seed=103))
    (photos / "2024" / "img4.png").write_bytes(images.png(32, 32, seed=104))
    (photos / "notes.txt").write_text("not a photo: skipped when found in a folder")
    broken = root / "elsewhere" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"this is text, not a JPEG " * 20)
    return Workspace(data_dir, photos, broken, created["id"], created["api_key"])


@pytest.fixture(scope="module")
def server(workspace: Workspace) -> Iterator[ServerProcess]:
    # Started after `users create`, on the same data folder.
    proc = ServerProcess(workspace.data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def alice(workspace: Workspace, server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {workspace.api_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


def upload(workspace: Workspace, server: ServerProcess, *paths: Path, key: str | None = None) -> Result:
    args = ["upload", *map(str, paths), "--url", server.url, "--concurrency", "3"]
    return photostore(workspace.data_dir, *args, env={"PHOTOSTORE_API_KEY": key or workspace.api_key})


def test_a_key_made_by_the_cli_works_against_the_server(
    alice: httpx.Client, workspace: Workspace, server: ServerProcess
) -> None:
    response = alice.get("/v1/photos")
    assert response.status_code == 200, response.text
    assert "items" in response.json()
    wrong = {"authorization": f"Bearer {workspace.api_key}x"}
    other = httpx.get(f"{server.url}/v1/photos", headers=wrong, timeout=10)
    assert other.status_code == 401


def test_upload_a_folder_then_again(workspace: Workspace, server: ServerProcess, alice: httpx.Client) -> None:
    first = ok(upload(workspace, server, workspace.photos))
    assert "created 5, already stored 0, failed 0" in first.stdout, str(first)
    assert "uploading" in first.stderr, str(first)  # the progress bar
    assert "5/5" in first.stderr, str(first)  # five images; the text file was skipped
    items = alice.get("/v1/photos", params={"limit": 50}).json()["items"]
    assert sorted(item["filename"] for item in items) == [
        f"img{n}.{e}" for n, e in enumerate(["jpg", "jpg", "jpg", "jpeg", "png"])
    ]

    again = ok(upload(workspace, server, workspace.photos))
    assert "created 0, already stored 5, failed 0" in again.stdout, str(again)
    assert len(alice.get("/v1/photos", params={"limit": 50}).json()["items"]) == 5


def test_upload_with_a_bad_file_exits_1_listing_it(workspace: Workspace, server: ServerProcess) -> None:
    result = upload(workspace, server, workspace.photos, workspace.broken)
    assert result.returncode == 1, str(result)
    assert "created 0, already stored 5, failed 1" in result.stdout, str(result)
    assert "6/6" in result.stderr, str(result)
    failures = [line for line in result.stderr.splitlines() if "failed" in line]
    assert len(failures) == 1, str(result)
    assert str(workspace.broken) in failures[0]
    assert "422" in failures[0]
    assert "invalid_image" in failures[0]


def test_upload_with_a_wrong_key_fails_every_file(workspace: Workspace, server: ServerProcess) -> None:
    result = upload(workspace, server, workspace.photos, key=workspace.api_key[:-3] + "zzz")
    assert result.returncode == 1, str(result)
    assert "created 0, already stored 0, failed 5" in result.stdout, str(result)
    assert result.stderr.count("401 unauthorized") == 5, str(result)


def wait_all_ready(client: httpx.Client, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = client.get("/v1/photos", params={"limit": 50}).json()["items"]
        if len(items) == count and all(item["status"] == "ready" for item in items):
            return
        time.sleep(0.1)
    raise AssertionError(f"photos not ready after {timeout_s}s: {items}")


def test_queue_status_after_processing(workspace: Workspace, alice: httpx.Client) -> None:
    wait_all_ready(alice, 5)
    deadline = time.monotonic() + 20
    while True:
        found = tables(ok(photostore(workspace.data_dir, "queue", "status")).stdout)
        groups = {row[0]: row[1:] for row in found["consumer groups"]}
        settled = len(groups) == 3 and all(row[1] == "0" for row in groups.values())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # a consumer commits its offset just after its handler finishes
    topics = {row[0]: row[1:] for row in found["topics"]}
    assert {name: row[0] for name, row in topics.items()} == {
        "photo-upload": "128",
        "photo-processing": "256",
        "thumbnail-generation": "64",
    }
    assert topics["photo-upload"][2] == "5"  # one event per photo created; none for duplicates
    assert groups == {
        "dispatch": ["photo-upload", "0", "0", "0"],
        "processing": ["photo-processing", "0", "0", "0"],
        "thumbnails": ["thumbnail-generation", "0", "0", "0"],
    }


def test_shards_and_buckets_after_uploads(workspace: Workspace, alice: httpx.Client) -> None:
    wait_all_ready(alice, 5)
    shards, buckets = photostore_many(workspace.data_dir, [["shards", "list"], ["buckets", "list"]])
    shard_rows = tables(ok(shards).stdout)["metadata shards (map version 1)"]
    assert column_total(shard_rows, 2) == 1  # alice
    assert column_total(shard_rows, 3) == 5  # her photos, all on her shard
    assert [row[2] for row in shard_rows].count("1") == 1
    assert [row[3] for row in shard_rows].count("5") == 1
    bucket_rows = tables(ok(buckets).stdout)["object buckets (map version 1)"]
    on_disk = [p for p in (workspace.data_dir / "buckets").rglob("*") if p.is_file()]
    # Originals plus their variants, as the bucket folders hold them.
    assert column_total(bucket_rows, 2) == len(on_disk) >= 5
    assert column_total(bucket_rows, 3) == sum(p.stat().st_size for p in on_disk)
