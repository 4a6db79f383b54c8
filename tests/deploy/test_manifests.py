"""deploy/: the rendered Kubernetes manifests, offline.

Each overlay is rendered with the real `kubectl kustomize`, every document is validated against the
Kubernetes OpenAPI schemas bundled with kubernetes-validate (strict: unknown fields fail), and the
spec's facts are checked on what would be applied: roles, resources, HPA, env, probes, scraping.
Set PHOTOSTORE_TEST_KUBECTL to render with another kubectl (e.g. Debian's 1.20, kustomize v2.0.3).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from photostore.settings import ENV_PREFIX, ServerSettings, Settings
from tests.support.engines.availability import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
TARGETS = ["base", "overlays/production", "overlays/small"]
# The oldest and newest Kubernetes whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ["1.25.0", "1.37.0"]

Doc = dict[str, Any]

# Containers listen on every interface (photostore's default is loopback); asserted, never bound here.
ANY_ADDRESS = "0.0.0.0"  # noqa: S104
# The spec's values.
SPEC_UPLOAD_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"cpu": "2000m", "memory": "4Gi"},
}
SPEC_TOPICS = {
    "photo-upload": (128, 604800000),
    "photo-processing": (256, 259200000),
    "thumbnail-generation": (64, 86400000),
}
SPEC_ENV = {
    "PHOTOSTORE_PLACEMENT__SHARDS": "1024",
    "PHOTOSTORE_EVENTS__KAFKA__BOOTSTRAP_SERVERS": "kafka-cluster:9092",
    "PHOTOSTORE_SERVER__HOST": ANY_ADDRESS,
    "PHOTOSTORE_SERVER__PORT": "8000",
    "PHOTOSTORE_METADATA__BACKEND": "postgres",
    "PHOTOSTORE_BLOBS__BACKEND": "s3",
    "PHOTOSTORE_EVENTS__BACKEND": "kafka",
    "PHOTOSTORE_CACHE__BACKEND": "redis",
    "PHOTOSTORE_CACHE__REDIS__MODE": "cluster",
}
SECRET_KEYS = {
    "PHOTOSTORE_METADATA__POSTGRES__DSN_TEMPLATE",
    "PHOTOSTORE_BLOBS__S3__ENDPOINTS",
    "PHOTOSTORE_ADMIN_TOKEN",
}
# Deployment -> (args, the role label, the port, the probe and metrics paths' prefix).
DEPLOYMENTS = {
    "photostore-api": (["serve", "--role", "api"], "api", 8000, ""),
    "photostore-upload": (["serve", "--role", "api"], "api", 8000, ""),
    "photostore-worker": (["serve", "--role", "worker"], "worker", 8000, ""),
    "photostore-relay": (["serve", "--role", "relay"], "relay", 8000, ""),
    "photostore-edge": (["edge"], "edge", 8080, "/edge"),
}


def kubectl() -> str:
    path = os.environ.get("PHOTOSTORE_TEST_KUBECTL") or shutil.which("kubectl")
    if path is None:
        unavailable("kubectl not found: `make test-tools` installs Debian's kubernetes-client")
    return path


@functools.cache
def _render(target: str, binary: str) -> tuple[Doc, ...]:
    proc = subprocess.run(
        [binary, "kustomize", str(KUSTOMIZE / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {target} failed:\n{proc.stderr}"
    docs = tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None)
    assert docs, f"kubectl kustomize {target} rendered nothing"
    return docs


def render(target: str) -> list[Doc]:
    """The documents `kubectl kustomize` renders for ``target`` (a fresh copy: tests may edit it)."""
    return copy.deepcopy(list(_render(target, kubectl())))


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def only_container(workload: Doc) -> Doc:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: Doc = containers[0]
    return container


def env_of(docs: list[Doc], deployment: Doc) -> dict[str, str]:
    """The environment a Deployment's container gets: its envFrom ConfigMaps and Secrets, then env."""
    config_maps, secrets = of_kind(docs, "ConfigMap"), of_kind(docs, "Secret")
    container = only_container(deployment)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "")
    return env


# --- schema validation -----------------------------------------------------------------------------


def check_kafka_topic(doc: Doc) -> list[str]:
    """Strimzi's KafkaTopic (v1beta2) has no bundled schema: its shape, checked by hand."""
    problems = []
    if doc.get("apiVersion") != "kafka.strimzi.io/v1beta2":
        problems.append(f"apiVersion {doc.get('apiVersion')!r}")
    if doc["metadata"].get("labels", {}).get("strimzi.io/cluster") != "kafka-cluster":
        problems.append("label strimzi.io/cluster is not kafka-cluster")
    spec = doc.get("spec", {})
    unknown = set(spec) - {"topicName", "partitions", "replicas", "config"}
    if unknown:
        problems.append(f"unknown spec fields {sorted(unknown)}")
    for field in ("partitions", "replicas"):
        if not (isinstance(spec.get(field), int) and spec[field] >= 1):
            problems.append(f"spec.{field} {spec.get(field)!r} is not a positive integer")
    config = spec.get("config", {})
    if not isinstance(config.get("retention.ms"), int):
        problems.append("spec.config retention.ms is not an integer")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"]):
        problems.append("metadata.name is not a DNS-1123 name")
    return [f"KafkaTopic {doc['metadata']['name']}: {problem}" for problem in problems]


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_manifests_validate_against_the_kubernetes_schemas(target: str) -> None:
    docs = render(target)
    failures: list[str] = []
    for doc in docs:
        if doc["kind"] == "KafkaTopic":
            failures += check_kafka_topic(doc)
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                failures.append(
                    f"{doc['kind']} {doc['metadata']['name']} (k8s {version}): {path}: {exc.message}"
                )
    assert not failures, "\n".join(failures)
    kinds = {doc["kind"] for doc in docs}
    expected = {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "StatefulSet",
        "KafkaTopic",
        "CronJob",
        "PersistentVolumeClaim",
    }
    assert kinds == expected


def test_the_validator_rejects_what_a_cluster_would_reject() -> None:
    """The schema check has teeth: a misspelt field, a wrong type and a missing field all fail."""
    deployment = of_kind(render("base"), "Deployment")["photostore-api"]
    kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)

    misspelt = copy.deepcopy(deployment)
    only_container(misspelt)["livenessprobe"] = only_container(misspelt).pop("livenessProbe")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "ten"
    missing = copy.deepcopy(deployment)
    del missing["spec"]["selector"]
    for broken in (misspelt, wrong_type, missing):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)

    topic = of_kind(render("base"), "KafkaTopic")["photo-upload"]
    assert check_kafka_topic(topic) == []
    topic["spec"]["partitons"] = 3
    topic["spec"]["replicas"] = "3"
    assert len(check_kafka_topic(topic)) == 2


def test_every_overlay_renders_the_same_kinds_and_names_as_the_base() -> None:
    def names(docs: list[Doc]) -> set[tuple[str, str]]:
        return {(doc["kind"], doc["metadata"]["name"]) for doc in docs}

    base = names(render("base"))
    for target in TARGETS[1:]:
        assert names(render(target)) == base, target
    assert all(
        doc["metadata"].get("namespace") == "photostore"
        for doc in render("base")
        if doc["kind"] != "Namespace"
    )


# --- the five Deployments ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_five_deployments_run_one_image_in_their_roles(target: str) -> None:
    deployments = of_kind(render(target), "Deployment")
    assert set(deployments) == set(DEPLOYMENTS)
    roles = typing.get_args(ServerSettings.model_fields["role"].annotation)
    images = set()
    for name, (args, role, port, _prefix) in DEPLOYMENTS.items():
        deployment = deployments[name]
        container = only_container(deployment)
        assert container["args"] == args, name
        assert "command" not in container, f"{name}: the image's ENTRYPOINT is photostore"
        if args[0] == "serve":
            assert args[2] in roles, f"{name}: {args[2]} is not a role photostore serve knows ({roles})"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["photostore.io/role"] == role
        assert labels["photostore.io/service"] == name.removeprefix("photostore-")
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert [p["containerPort"] for p in container["ports"]] == [port]
        images.add(container["image"])
    assert len(images) == 1, images


@pytest.mark.parametrize("target", TARGETS)
def test_one_relay_at_a_time(target: str) -> None:
    """The relay's lease is a lock file in its pod: a second relay would publish every event twice."""
    relay = of_kind(render(target), "Deployment")["photostore-relay"]
    assert relay["spec"]["replicas"] == 1
    assert relay["spec"]["strategy"] == {"type": "Recreate"}


def test_container_commands_exist_in_the_cli() -> None:
    """`photostore <args>` names a real subcommand (the image's ENTRYPOINT is photostore)."""
    photostore = Path(sys.executable).parent / "photostore"
    for args in {tuple(args[:1]) for args, *_ in DEPLOYMENTS.values()}:
        proc = subprocess.run(
            [str(photostore), *args, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, (args, proc.stderr)
    serve_help = subprocess.run(
        [str(photostore), "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "--role" in serve_help.stdout


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_api_and_upload_have_the_spec_resources(target: str) -> None:
    deployments = of_kind(render(target), "Deployment")
    for name in ("photostore-upload", "photostore-api"):
        assert only_container(deployments[name])["resources"] == SPEC_UPLOAD_RESOURCES, name
    worker = only_container(deployments["photostore-worker"])["resources"]
    assert worker == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def parse_quantity(value: str | int) -> float:
    """A Kubernetes quantity (500m, 2, 1Gi, 192mb as Redis writes it) as a plain number."""
    units = {
        "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "kb": 2**10, "mb": 2**20, "gb": 2**30,
    }  # fmt: skip
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(value))
    assert match is not None, value
    assert match.group(2) in units, value
    return float(match.group(1)) * units[match.group(2)]


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_requests_within_limits(target: str) -> None:
    docs = render(target)
    workloads = {**of_kind(docs, "Deployment"), **of_kind(docs, "StatefulSet")}
    for name, workload in workloads.items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = parse_quantity(resources["requests"][resource])
                limit = parse_quantity(resources["limits"][resource])
                assert 0 < request <= limit, (name, resource)


# --- HPA --------------------------------------------------------------------------------------------


def hpa_metrics(hpa: Doc) -> dict[str, tuple[str, str | int]]:
    found: dict[str, tuple[str, str | int]] = {}
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Resource":
            target = metric["resource"]["target"]
            found[metric["resource"]["name"]] = (target["type"], target["averageUtilization"])
        elif metric["type"] == "Pods":
            target = metric["pods"]["target"]
            found[metric["pods"]["metric"]["name"]] = (target["type"], target["averageValue"])
        else:
            raise AssertionError(f"unexpected metric type {metric['type']}")
    return found


SPEC_HPA_METRICS = {
    "cpu": ("Utilization", 70),
    "memory": ("Utilization", 80),
    "concurrent_uploads": ("AverageValue", "100"),
}


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_upload_hpa_is_the_spec_hpa(target: str) -> None:
    hpa = of_kind(render(target), "HorizontalPodAutoscaler")["photostore-upload"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "photostore-upload",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (10, 200)
    assert hpa_metrics(hpa) == SPEC_HPA_METRICS


@pytest.mark.parametrize("target", TARGETS)
def test_every_hpa_scales_a_deployment_that_starts_within_its_bounds(target: str) -> None:
    docs = render(target)
    deployments = of_kind(docs, "Deployment")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"photostore-api", "photostore-upload", "photostore-worker"}
    assert hpa_metrics(hpas["photostore-upload"]) == SPEC_HPA_METRICS  # smaller overlays: fewer pods only
    for name, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment", name
        assert ref["name"] in deployments, name
        low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
        assert 1 <= low <= deployments[ref["name"]]["spec"]["replicas"] <= high, name
        assert hpa_metrics(hpa)["cpu"] == ("Utilization", 70), name


# --- environment --------------------------------------------------------------------------------------


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """photostore's own settings, loaded from exactly ``env`` (what the container would see)."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "PHOTOSTORE_CONFIG":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def setting_exists(name: str) -> bool:
    """Whether PHOTOSTORE_A__B__C names a field a.b.c of the settings (a misspelt one is ignored)."""
    model: Any = Settings
    for part in name.removeprefix(ENV_PREFIX).lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) else None
    return True


@pytest.mark.parametrize("target", TARGETS)
def test_serving_roles_get_the_cluster_mode_environment(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(target)
    deployments = of_kind(docs, "Deployment")
    topics = of_kind(docs, "KafkaTopic")
    for name in ("photostore-api", "photostore-upload", "photostore-worker", "photostore-relay"):
        env = env_of(docs, deployments[name])
        assert env.items() >= SPEC_ENV.items(), name
        assert env.keys() >= SECRET_KEYS, name
        unknown = sorted(key for key in env if not setting_exists(key))
        assert not unknown, f"{name}: not photostore settings: {unknown}"
        # The replication factor photostore creates topics with is the KafkaTopics' own.
        factor = int(env["PHOTOSTORE_EVENTS__KAFKA__REPLICATION_FACTOR"])
        assert {topic["spec"]["replicas"] for topic in topics.values()} == {factor}

    settings = settings_from(env_of(docs, deployments["photostore-upload"]), monkeypatch)
    assert settings.server.host == ANY_ADDRESS
    assert settings.placement.shards == 1024
    assert settings.metadata.backend == "postgres"
    assert "{shard}" in settings.metadata.postgres.dsn_template.get_secret_value()
    assert settings.blobs.backend == "s3"
    assert len(settings.blobs.s3.endpoints) >= 1
    assert settings.events.backend == "kafka"
    assert settings.events.kafka.bootstrap_servers == "kafka-cluster:9092"
    assert settings.cache.backend == "redis"
    assert settings.cache.redis.mode == "cluster"
    assert settings.admin_token is not None


def test_secrets_are_placeholders_in_a_secret_not_a_config_map() -> None:
    docs = render("base")
    secret = of_kind(docs, "Secret")["photostore-secrets"]
    assert set(secret["stringData"]) == SECRET_KEYS
    assert all("REPLACE_ME" in value for value in secret["stringData"].values())
    endpoints = json.loads(secret["stringData"]["PHOTOSTORE_BLOBS__S3__ENDPOINTS"])
    assert {"name", "url", "region", "access_key_id", "secret_access_key"} <= endpoints[0].keys()
    for config_map in of_kind(docs, "ConfigMap").values():
        assert not SECRET_KEYS & config_map["data"].keys()


def test_the_edge_gets_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("base")
    edge = of_kind(docs, "Deployment")["photostore-edge"]
    env = env_of(docs, edge)
    assert not SECRET_KEYS & env.keys(), "the edge needs no store secret"
    unknown = sorted(key for key in env if not setting_exists(key))
    assert not unknown, unknown
    settings = settings_from(env, monkeypatch)
    assert (settings.edge.host, settings.edge.port) == (ANY_ADDRESS, 8080)
    assert settings.regions.primary is not None
    api_service = of_kind(docs, "Service")["photostore-api"]
    port = api_service["spec"]["ports"][0]["port"]
    assert f"http://photostore-api:{port}" in settings.regions.primary.api_endpoints


# --- probes, scraping, Services ----------------------------------------------------------------------


def named_port(container: Doc, port: str | int) -> int:
    if isinstance(port, int):
        return port
    matches = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert matches, f"no container port named {port}"
    return int(matches[0])


@pytest.mark.parametrize("target", TARGETS)
def test_every_deployment_has_probes_and_scrape_annotations(target: str) -> None:
    for name, deployment in of_kind(render(target), "Deployment").items():
        _args, _role, port, prefix = DEPLOYMENTS[name]
        container = only_container(deployment)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            check = container[probe]["httpGet"]
            assert check["path"] == prefix + path, (name, probe)
            assert named_port(container, check["port"]) == port, (name, probe)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == prefix + "/metrics", name


@pytest.mark.parametrize("target", TARGETS)
def test_services_select_existing_pods_and_ports(target: str) -> None:
    docs = render(target)
    workloads = {**of_kind(docs, "Deployment"), **of_kind(docs, "StatefulSet")}
    services = of_kind(docs, "Service")
    assert {"photostore-api", "photostore-upload", "photostore-edge", "redis-cluster"} <= set(services)
    for name, service in services.items():
        selector = service["spec"]["selector"]
        selected = [
            w
            for w in workloads.values()
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {name} selects {len(selected)} workloads"
        container_ports = {
            (p.get("name"), p["containerPort"])
            for c in selected[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target_port = port.get("targetPort", port["port"])
            assert any(target_port in pair for pair in container_ports), (name, target_port)


def test_pod_disruption_budgets_select_existing_pods() -> None:
    docs = render("base")
    workloads = {**of_kind(docs, "Deployment"), **of_kind(docs, "StatefulSet")}
    for name, pdb in of_kind(docs, "PodDisruptionBudget").items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(
            selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
            for w in workloads.values()
        ), name


# Prometheus' relabelling, enough of it to run deploy/prometheus/prometheus.yml on the pods' metadata.


def _relabel(labels: dict[str, str], rules: list[Doc]) -> dict[str, str] | None:
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        value = rule.get("separator", ";").join(
            labels.get(name, "") for name in rule.get("source_labels", [])
        )
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if action == "keep" and match is None:
            return None
        if action == "drop" and match is not None:
            return None
        if action == "replace" and match is not None:
            replacement = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.get("replacement", "$1"))
            result = match.expand(replacement)
            if result:
                labels[rule["target_label"]] = result
            else:
                labels.pop(rule["target_label"], None)
        assert action in ("keep", "drop", "replace"), action
    return labels


def _pod_sd_targets(workload: Doc, namespace: str) -> list[dict[str, str]]:
    """What kubernetes_sd role pod yields for one running pod: a target per container port."""
    meta = workload["spec"]["template"]["metadata"]
    common = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": f"{workload['metadata']['name']}-0",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_node_name": "node-1",
    }
    for key, value in meta.get("labels", {}).items():
        common[f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', key)}"] = value
    for key, value in meta.get("annotations", {}).items():
        common[f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-zA-Z0-9_]', '_', key)}"] = value
    targets = []
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for port in container.get("ports", []):
            targets.append(
                {
                    **common,
                    "__address__": f"192.0.2.7:{port['containerPort']}",
                    "__metrics_path__": "/metrics",
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                }
            )
    return targets


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_scrapes_each_deployment_on_its_metrics_port(target: str) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "photostore")
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["photostore"]
    docs = render(target)
    workloads = {**of_kind(docs, "Deployment"), **of_kind(docs, "StatefulSet")}
    for name, workload in workloads.items():
        kept = [
            labels
            for labels in (
                _relabel(t, job["relabel_configs"]) for t in _pod_sd_targets(workload, "photostore")
            )
            if labels is not None
        ]
        if name not in DEPLOYMENTS:
            assert kept == [], f"{name} is not photostore: not scraped by job photostore"
            continue
        _args, role, port, prefix = DEPLOYMENTS[name]
        assert len(kept) == 1, name
        assert kept[0]["__address__"] == f"192.0.2.7:{port}"
        assert kept[0]["__metrics_path__"] == prefix + "/metrics"
        assert kept[0]["deployment"] == name.removeprefix("photostore-")
        assert kept[0]["photostore_role"] == role
        assert kept[0]["namespace"] == "photostore"
        assert kept[0]["pod"] == f"{name}-0"


# --- Kafka and Redis ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_kafka_topics_are_the_spec_topics(target: str) -> None:
    topics = of_kind(render(target), "KafkaTopic")
    assert set(topics) == set(SPEC_TOPICS)
    for name, (partitions, retention_ms) in SPEC_TOPICS.items():
        topic = topics[name]
        assert check_kafka_topic(topic) == []
        assert topic["spec"]["topicName"] == name
        assert topic["spec"]["partitions"] == partitions
        assert topic["spec"]["config"]["retention.ms"] == retention_ms
        assert topic["spec"]["replicas"] == 3


@pytest.mark.parametrize("target", TARGETS)
def test_kafka_topics_can_take_writes(target: str) -> None:
    """min.insync.replicas above the copies there are would refuse every acks=all write."""
    for name, topic in of_kind(render(target), "KafkaTopic").items():
        assert 1 <= topic["spec"]["config"]["min.insync.replicas"] <= topic["spec"]["replicas"], name
        assert topic["spec"]["partitions"] == SPEC_TOPICS[name][0], name  # partitions never shrink


def redis_conf(docs: list[Doc]) -> dict[str, str]:
    text = of_kind(docs, "ConfigMap")["redis-cluster-config"]["data"]["redis.conf"]
    conf = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf[key] = value
    return conf


@pytest.mark.parametrize("target", TARGETS)
def test_redis_cluster_settings_and_seeds(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(target)
    conf = redis_conf(docs)
    assert conf["cluster-enabled"] == "yes"
    assert conf["cluster-config-file"].startswith("/data/")
    assert int(conf["cluster-node-timeout"]) > 0
    assert conf["appendonly"] == "yes"
    statefulset = of_kind(docs, "StatefulSet")["redis-cluster"]
    replicas = statefulset["spec"]["replicas"]
    assert replicas >= 6, "three masters with a replica each"
    container = only_container(statefulset)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert conf["cluster-config-file"].startswith(mounts["data"] + "/"), "nodes.conf on the volume"
    assert any(t["metadata"]["name"] == "data" for t in statefulset["spec"]["volumeClaimTemplates"])
    # maxmemory (the command line wins over redis.conf) fits in the container's memory limit.
    args = container["command"]
    maxmemory = args[args.index("--maxmemory") + 1] if "--maxmemory" in args else conf["maxmemory"]
    assert parse_quantity(maxmemory) < parse_quantity(container["resources"]["limits"]["memory"])
    # Every seed photostore is given is a pod of the StatefulSet behind its headless Service.
    service = of_kind(docs, "Service")[statefulset["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    env = env_of(docs, of_kind(docs, "Deployment")["photostore-api"])
    seeds = settings_from(env, monkeypatch).cache.redis.cluster_nodes
    assert len(seeds) >= 3
    pods = {f"redis-cluster-{i}.{service['metadata']['name']}:6379" for i in range(replicas)}
    assert set(seeds) <= pods


# --- the tiering job ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_the_tiering_job_runs_one_pass_at_a_time_with_its_journal_kept(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(target)
    job = of_kind(docs, "CronJob")["photostore-tiering"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    workload = job["spec"]["jobTemplate"]  # shaped like a Deployment: spec.template.spec
    pod = workload["spec"]["template"]
    container = only_container(workload)
    assert container["args"][:2] == ["tier", "run"]
    assert "--watch" not in container["args"], "a CronJob pass must end"
    assert container["image"] == only_container(of_kind(docs, "Deployment")["photostore-api"])["image"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The journal (under the data dir) is on the claim, so a killed pass is finished by the next pod.
    env = env_of(docs, workload)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    data = next(name for name, path in mounts.items() if path == env["PHOTOSTORE_DATA_DIR"])
    claim = volumes[data]["persistentVolumeClaim"]["claimName"]
    assert claim in of_kind(docs, "PersistentVolumeClaim")
    # Its settings load and name a cold bucket; the serving roles get the same one.
    settings = settings_from(env, monkeypatch)
    assert settings.tiering.cold_bucket is not None
    for name in ("photostore-api", "photostore-upload", "photostore-worker"):
        served = env_of(docs, of_kind(docs, "Deployment")[name])
        assert served["PHOTOSTORE_TIERING__COLD_BUCKET"] == settings.tiering.cold_bucket, name
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / "photostore"), *container["args"], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert help_text.returncode == 0, help_text.stderr


# --- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pinned_and_pods_run_as_non_root(target: str) -> None:
    docs = render(target)
    for name, workload in {**of_kind(docs, "Deployment"), **of_kind(docs, "StatefulSet")}.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            image, _, tag = container["image"].rpartition(":")
            assert image, container["image"]
            assert re.fullmatch(r"v?\d+(\.\d+)+[\w.-]*", tag), f"{name}: unpinned {container['image']}"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
    app_images = {only_container(d)["image"] for d in of_kind(docs, "Deployment").values()}
    assert app_images == {"photostore:0.1.0"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_builds_one_non_root_image_of_the_repo() -> None:
    instructions = dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, rest in instructions:
        by_keyword.setdefault(keyword, []).append(rest)
    (base,) = by_keyword["FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["photostore"]
    assert json.loads(by_keyword["CMD"][-1]) == ["serve"]
    assert set(" ".join(by_keyword["EXPOSE"]).split()) == {"8000", "8080"}
    user = by_keyword["USER"][-1].split(":")[0]
    assert user not in ("root", "0")
    assert any("pip install ." in run for run in by_keyword["RUN"])
    assert re.search(r"useradd .*--uid " + user, " ".join(by_keyword["RUN"])), "USER is the user created"
    # The pods run as the image's user.
    for deployment in of_kind(render("base"), "Deployment").values():
        assert str(deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]) == user
    # What COPY takes is in the build context (the repository root) and not left out by .dockerignore.
    ignore = (ROOT / ".dockerignore").read_text().split()
    for copy_args in by_keyword["COPY"]:
        *sources, _dest = copy_args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert f"!{source.rstrip('/')}" in ignore or f"!{source.rstrip('/')}/" in ignore, source
    # The health check's Python parses.
    (healthcheck,) = by_keyword["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")
    assert "photostore" in (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n")[1]
