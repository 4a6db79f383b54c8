"""deploy/prometheus and deploy/grafana, offline: promtool on the rules, their unit tests and the
scrape config; the dashboard parsed by Grafana's own dashboard model (grafana-foundation-sdk); every
PromQL expression parsed by promtool and using only metrics the service (or node-exporter) exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus as grafana_prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

from tests.support.engines.availability import unavailable

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "photostore.json"

# What photostore exports (names exact); histograms add _bucket, _sum and _count.
SERVICE_METRICS = {
    "photostore_requests_total",
    "photostore_errors_total",
    "photostore_consumer_lag",
    "photostore_concurrent_uploads",
    "photostore_cache_hits_total",
    "photostore_cache_misses_total",
    "photostore_pool_checked_out",
    "photostore_pool_max_open",
    "photostore_replica_healthy",
    "photostore_shard_up",
    "photostore_uploads_total",
    "photostore_derivatives_total",
    "photostore_edge_region_healthy",
    "photostore_edge_requests_total",
} | {f"photostore_response_latency_seconds_{suffix}" for suffix in ("bucket", "sum", "count")}

REQUIRED_ALERTS = {
    # alert: (for, a metric its expression reads)
    "PhotostoreConsumerLagHigh": ("10m", "photostore_consumer_lag"),
    "PhotostoreErrorRateHigh": ("5m", "photostore_requests_total"),
    "PhotostoreLatencyHigh": ("10m", "photostore_response_latency_seconds_bucket"),
    "PhotostoreShardDown": ("1m", "photostore_shard_up"),
    "PhotostoreDiskSpaceLow": ("10m", "node_filesystem_avail_bytes"),
    "PhotostoreRegionDown": ("2m", "photostore_edge_region_healthy"),
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool not found: `make test-tools` installs Debian's prometheus package")
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- PromQL: the metric names an expression reads ------------------------------------------------------

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan", "Inf", "NaN",
}  # fmt: skip
_NAME = re.compile(r"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are neither functions, aggregations
    (followed by a parenthesis), keywords, label names (inside braces or grouping) nor durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in _NAME.finditer(text):
        if match.group() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(match.group())
    return names


def unknown_metrics(expr: str) -> set[str]:
    return {
        name
        for name in metric_names(expr)
        if name not in SERVICE_METRICS and name != "up" and not name.startswith(("node_", "kube_"))
    }


def test_metric_names_finds_the_metrics_and_only_them() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (service, le) (rate(photostore_response_latency_seconds_bucket"
        '{region=~"$region", route="/v1/x"}[$__rate_interval]))) > 1 and on (service) '
        'count(up{job="photostore"} == 1) or vector(0) / node_filesystem_size_bytes offset 5m'
    )
    assert metric_names(expr) == {
        "photostore_response_latency_seconds_bucket",
        "up",
        "node_filesystem_size_bytes",
    }
    assert unknown_metrics("sum(rate(photostore_cache_hit_total[5m]))") == {"photostore_cache_hit_total"}


def promql_syntax_errors(exprs: dict[str, str], tmp_path: Path) -> str | None:
    """promtool's parse of each expression (as a recording rule); None when all parse."""
    rules = {
        "groups": [{"name": "parse", "rules": [{"record": name, "expr": e} for name, e in exprs.items()]}]
    }
    path = tmp_path / "parse.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = run_promtool("check", "rules", str(path))
    return None if proc.returncode == 0 else proc.stdout + proc.stderr


def grafana_to_promql(expr: str) -> str:
    """A panel's query as Prometheus gets it: Grafana's variables replaced by values."""
    return expr.replace("$__rate_interval", "5m").replace("$region", ".*")


# --- alert rules -------------------------------------------------------------------------------------


def alert_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_alert_rules_pass_promtool_check_rules() -> None:
    proc = run_promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    proc = run_promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


LAG_RULE = (
    "expr: sum by (group, topic) (max by (group, topic, partition) (photostore_consumer_lag)) > 10000\n"
    "        for: 10m"
)
SHARD_RULE = "expr: min by (shard) (photostore_shard_up) == 0\n        for: 1m"


@pytest.mark.parametrize(
    ("rule", "wrong", "alert"),
    [
        (SHARD_RULE, SHARD_RULE.replace("for: 1m", "for: 2m"), "PhotostoreShardDown"),
        (SHARD_RULE, SHARD_RULE.replace("min by", "max by"), "PhotostoreShardDown"),
        (LAG_RULE, LAG_RULE.replace("for: 10m", "for: 11m"), "PhotostoreConsumerLagHigh"),
        (LAG_RULE, LAG_RULE.replace("> 10000", "> 20000"), "PhotostoreConsumerLagHigh"),
        (
            LAG_RULE,
            LAG_RULE.replace("(group, topic)", "(group, topic, partition)", 1),
            "PhotostoreConsumerLagHigh",
        ),
        # Every pod reports the shared log's lag: summing pods instead of taking one counts it twice.
        (LAG_RULE, LAG_RULE.replace("max by", "sum by"), "PhotostoreConsumerLagHigh"),
    ],
)
def test_promtool_unit_tests_catch_a_wrong_alert(rule: str, wrong: str, alert: str, tmp_path: Path) -> None:
    """The unit tests have teeth: a wrong duration, threshold or grouping of an alert fails them."""
    rules = (PROMETHEUS / "alerts.yml").read_text()
    assert rule in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(rule, wrong))
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path)
    proc = run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert proc.returncode != 0
    assert alert in proc.stdout + proc.stderr


def test_the_required_alerts_exist_with_severity_and_text() -> None:
    rules = alert_rules()
    assert REQUIRED_ALERTS.keys() <= rules.keys()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert not unknown_metrics(rule["expr"]), (name, unknown_metrics(rule["expr"]))
    for name, (duration, metric) in REQUIRED_ALERTS.items():
        assert rules[name]["for"] == duration, name
        assert metric in metric_names(rules[name]["expr"]), name
    thresholds = {
        "PhotostoreConsumerLagHigh": (
            r"sum by \(group, topic\) \(max by \(group, topic, partition\) "
            r"\(photostore_consumer_lag\)\) > 10000"
        ),
        "PhotostoreErrorRateHigh": r'status=~"5\.\."[\s\S]*> 0\.01',
        "PhotostoreLatencyHigh": r"histogram_quantile\(0\.99,[\s\S]*\) > 1$",
        "PhotostoreShardDown": r"\(photostore_shard_up\) == 0",
        "PhotostoreDiskSpaceLow": (
            r"node_filesystem_avail_bytes[\s\S]*/[\s\S]*node_filesystem_size_bytes[\s\S]*< 0\.10"
        ),
        "PhotostoreRegionDown": r"\(photostore_edge_region_healthy\) == 0",
    }
    for name, pattern in thresholds.items():
        assert re.search(pattern, rules[name]["expr"].strip()), name


def test_the_unit_tests_cover_shard_down_and_lag() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert {"PhotostoreShardDown", "PhotostoreConsumerLagHigh"} <= tested
    # Each of them is shown both silent and firing.
    for alert in ("PhotostoreShardDown", "PhotostoreConsumerLagHigh"):
        cases = [c for t in tests["tests"] for c in t["alert_rule_test"] if c["alertname"] == alert]
        assert any(c["exp_alerts"] == [] for c in cases), alert
        assert any(c["exp_alerts"] for c in cases), alert


# --- scrape config -----------------------------------------------------------------------------------

# Debian's Prometheus is built without Kubernetes service discovery (NEWS.Debian, 1.5.0+ds-1: "Kubernetes
# support has been completely removed"), so its promtool refuses kubernetes_sd_configs as an unknown field.
_NO_KUBERNETES_SD = "field kubernetes_sd_configs not found"
_POD_META = re.compile(r"__meta_kubernetes_(namespace|pod_[a-z0-9_]+)")
_ENDPOINTS_META = re.compile(
    r"__meta_kubernetes_(namespace|endpoints?_[a-z0-9_]+|service_[a-z0-9_]+|pod_[a-z0-9_]+)"
)


def check_kubernetes_sd(job: dict[str, Any]) -> None:
    """The kubernetes_sd_configs block, by the documented schema (for a promtool that lacks it)."""
    for sd in job["kubernetes_sd_configs"]:
        assert set(sd) <= {"role", "namespaces", "selectors", "attach_metadata"}, sd
        assert sd["role"] in ("pod", "endpoints", "endpointslice", "service", "node", "ingress")
        if "namespaces" in sd:
            assert set(sd["namespaces"]) <= {"names", "own_namespace"}
            assert all(isinstance(name, str) for name in sd["namespaces"]["names"])
        meta = _POD_META if sd["role"] == "pod" else _ENDPOINTS_META
        for rule in job.get("relabel_configs", []):
            for label in rule.get("source_labels", []):
                if label.startswith("__meta_"):
                    assert meta.fullmatch(label), f"{job['job_name']}: role {sd['role']} has no {label}"


def test_prometheus_config_passes_promtool_check_config(tmp_path: Path) -> None:
    proc = run_promtool("check", "config", "prometheus.yml")
    rules_loaded = f"SUCCESS: {len(alert_rules())} rules found"
    if proc.returncode == 0:
        assert rules_loaded in proc.stdout
        return
    # Debian's promtool: check everything else it knows (global, rule_files and the alert rules they
    # load, every relabel rule and regex) with Kubernetes discovery swapped for static targets, and the
    # discovery blocks against the documented schema.
    assert _NO_KUBERNETES_SD in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        if "kubernetes_sd_configs" in job:
            check_kubernetes_sd(job)
            job["static_configs"] = [{"targets": ["192.0.2.7:8000"]}]
            del job["kubernetes_sd_configs"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path)
    proc = run_promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rules_loaded in proc.stdout, proc.stdout


def test_prometheus_config_loads_the_alert_rules_and_sets_the_labels_panels_use() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"photostore", "node-exporter"} <= jobs.keys()
    targets = {rule.get("target_label") for rule in jobs["photostore"]["relabel_configs"]}
    # deployment and photostore_role: dashboard; namespace and pod: the prometheus-adapter rule.
    assert {"__address__", "__metrics_path__", "deployment", "photostore_role", "namespace", "pod"} <= targets
    # No target label hides a label of the service's own metrics (it would become exported_<name>).
    assert not targets & {"service", "role", "region", "route", "status", "shard", "group", "topic"}


# --- prometheus-adapter ------------------------------------------------------------------------------


def test_adapter_rule_serves_the_hpa_metric(tmp_path: Path) -> None:
    (rule,) = yaml.safe_load((PROMETHEUS / "adapter.yaml").read_text())["rules"]
    upload = (ROOT / "deploy" / "kubernetes" / "base" / "upload.yaml").read_text()
    hpa = next(d for d in yaml.safe_load_all(upload) if d["kind"] == "HorizontalPodAutoscaler")
    (pods_metric,) = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    series = "photostore_concurrent_uploads"
    assert metric_names(rule["seriesQuery"]) == {series}
    assert re.fullmatch(rule["name"]["matches"], series)
    assert rule["name"]["as"] == pods_metric == "concurrent_uploads"
    overrides = rule["resources"]["overrides"]
    assert overrides == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    # The query prometheus-adapter would send for the HPA's pods parses.
    query = (
        rule["metricsQuery"]
        .replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", 'namespace="photostore",pod=~"photostore-upload-.*"')
        .replace("<<.GroupBy>>", "pod")
    )
    assert "<<" not in query
    assert promql_syntax_errors({"adapter:concurrent_uploads": query}, tmp_path) is None


# --- Grafana dashboard -------------------------------------------------------------------------------


def dashboard_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def load_dashboard() -> Dashboard:
    register_default_plugins()
    return Dashboard.from_json(dashboard_json())


def test_dashboard_loads_as_a_grafana_dashboard_model() -> None:
    dashboard = load_dashboard()
    # Nothing is lost on the way in: every key of the file is a field of Grafana's model (an unknown
    # or misspelt key would be dropped, and the model's JSON would differ from the file).
    assert json.loads(json.dumps(dashboard, cls=JSONEncoder)) == dashboard_json()
    assert isinstance(dashboard.schema_version, int)
    assert dashboard.schema_version >= 36
    assert dashboard.uid
    assert dashboard.title
    variables = {v.name: v for v in dashboard.templating.list_val or []}
    assert variables["datasource"].type_val == "datasource"
    assert variables["datasource"].query == "prometheus"
    panels = dashboard.panels or []
    assert panels
    assert all(isinstance(panel, Panel) for panel in panels)
    assert len({panel.id_val for panel in panels}) == len(panels)
    for panel in panels:
        assert cogruntime.panelcfg_config(panel.type_val) is not None, f"unknown panel type {panel.type_val}"
        assert panel.datasource is not None, panel.title
        assert panel.datasource.uid == "${datasource}", panel.title
        assert panel.grid_pos is not None, panel.title
        assert panel.targets, panel.title
        ref_ids = [target.ref_id for target in panel.targets]  # type: ignore[attr-defined]
        assert len(set(ref_ids)) == len(ref_ids), panel.title
        for target in panel.targets:
            assert isinstance(target, grafana_prometheus.Dataquery), panel.title
            assert target.expr.strip(), panel.title


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in load_dashboard().panels or []:
        pos = panel.grid_pos
        assert pos is not None, panel.title
        assert pos.w is not None, panel.title
        assert pos.h is not None, panel.title
        assert pos.x >= 0, panel.title
        assert pos.x + pos.w <= 24, panel.title
        assert pos.y >= 0, panel.title
        assert pos.h > 0, panel.title
        for x in range(pos.x, pos.x + pos.w):
            for y in range(pos.y, pos.y + pos.h):
                assert (x, y) not in cells, f"{panel.title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = str(panel.title)


def panel_exprs() -> dict[str, list[str]]:
    return {
        str(panel.title): [target.expr for target in panel.targets or []]  # type: ignore[attr-defined]
        for panel in load_dashboard().panels or []
    }


def test_dashboard_queries_parse_and_use_only_exported_metrics(tmp_path: Path) -> None:
    exprs = panel_exprs()
    unknown = {title: unknown_metrics(e) for title, es in exprs.items() for e in es if unknown_metrics(e)}
    assert not unknown, unknown
    assert all(metric_names(e) for es in exprs.values() for e in es), "a query reads no metric"
    parsed = {
        f"panel_{i}:{j}": grafana_to_promql(e)
        for i, es in enumerate(exprs.values())
        for j, e in enumerate(es)
    }
    assert promql_syntax_errors(parsed, tmp_path) is None, promql_syntax_errors(parsed, tmp_path)


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    assert promql_syntax_errors({"broken:expr": "sum by (service (rate(x[5m]))"}, tmp_path) is not None


def test_dashboard_has_the_required_panels() -> None:
    exprs = panel_exprs()
    everything = "\n".join(e for es in exprs.values() for e in es)
    wanted = {
        "request rate": r"rate\(photostore_requests_total",
        "p50 latency": r"histogram_quantile\(0\.5, [^\n]*photostore_response_latency_seconds_bucket",
        "p99 latency": r"histogram_quantile\(0\.99, [^\n]*photostore_response_latency_seconds_bucket",
        "error rate": r'photostore_requests_total\{[^}]*status=~"5\.\."',
        "lag per topic/partition": r"by \(group, topic, partition\) \(photostore_consumer_lag\)",
        "workers per role": r"count by \(photostore_role\) \(up\{",
        "cache hit ratio": r"photostore_cache_hits_total[^\n]*photostore_cache_misses_total",
        "pool use per shard": r"by \(shard\) \(photostore_pool_checked_out\)[^\n]*photostore_pool_max_open",
        "uploads per second": r"rate\(photostore_uploads_total",
        "derivatives per second": r"rate\(photostore_derivatives_total",
        "concurrent uploads": r"photostore_concurrent_uploads",
        "region health": r"photostore_edge_region_healthy",
    }
    missing = [what for what, pattern in wanted.items() if not re.search(pattern, everything)]
    assert not missing, missing
