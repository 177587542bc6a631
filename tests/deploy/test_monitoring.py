"""The monitoring component (deploy/k8s/components/monitoring) agrees with the metrics code.

The prod overlay, which includes the component, is rendered with `kubectl kustomize`; then:
- every metric an alert rule or a dashboard panel queries is one that
  `certforge.common.metrics` declares (with its `_total`, `_bucket`, `_sum`, `_count` series),
  and every label a query groups by or matches on is a label of a metric it queries, so a
  renamed metric or label fails here instead of silently never firing;
- each alert has a severity, a summary, and a `for` unless it counts events;
- the dashboard is valid JSON inside a ConfigMap labelled for Grafana's sidecar, identical to
  the file docs reference, with a unique id per panel and a Prometheus datasource variable;
- one ServiceMonitor per service scrapes the port that service exposes its metrics on, and the
  scrape NetworkPolicy lets only Prometheus reach only those ports.
The checks themselves are tested on wrong queries, so they cannot pass by accepting anything.
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
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from certforge.common import metrics

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"
DASHBOARD = COMPONENT / "dashboards" / "certforge.json"
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset",
}  # fmt: skip


def declared_metrics() -> dict[str, set[str]]:
    """Every series name `certforge.common.metrics` exposes, with its label names."""
    out: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, labels = value._name, set(value._labelnames)  # no public accessor
        if isinstance(value, Counter):
            out[f"{name}_total"] = labels
        elif isinstance(value, Histogram):
            out |= {f"{name}_sum": labels, f"{name}_count": labels}
            out[f"{name}_bucket"] = labels | {"le"}
        elif isinstance(value, Gauge):
            out[name] = labels
    for family in metrics.INVENTORY.describe():
        out[family.name] = set(family._labelnames)
    return out


def query_problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    """What in a PromQL expression names a metric or label that does not exist."""
    problems: list[str] = []
    used = set(re.findall(r"\b(certforge_[a-z0-9_]+)", expr))
    if not used:
        problems.append(f"queries no certforge metric: {expr}")
    for name in sorted(used - known.keys()):
        problems.append(f"unknown metric {name}")
    labels: set[str] = set()
    for name in used & known.keys():
        labels |= known[name]
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in labels:
                problems.append(f"label {label} is on none of {sorted(used)}")
    for name, matchers in re.findall(r"\b(certforge_[a-z0-9_]+)\{([^}]*)\}", expr):
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
            if label not in known.get(name, set()):
                problems.append(f"{name} has no label {label}")
    return problems


@pytest.fixture(scope="module")
def known() -> dict[str, set[str]]:
    return declared_metrics()


@pytest.fixture(scope="module")
def prod() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH, so the prod overlay cannot be rendered here")
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith("certforge")]
    assert len(found) == 1, f"{kind}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def test_the_checks_catch_wrong_queries(known: dict[str, set[str]]) -> None:
    assert query_problems("max(certforge_outbox_oldest_age_seconds) > 300", known) == []
    assert query_problems("max(certforge_outbox_oldest_age) > 300", known) == [
        "unknown metric certforge_outbox_oldest_age"
    ]
    assert query_problems('sum by (kind) (certforge_renewals_total{outcome="x"})', known) == [
        "label kind is on none of ['certforge_renewals_total']"
    ]
    assert query_problems('certforge_certificates{state="active"}', known) == [
        "certforge_certificates has no label state"
    ]
    assert query_problems("up == 0", known) == ["queries no certforge metric: up == 0"]


def test_alert_rules_query_declared_metrics(
    prod: list[dict[str, Any]], known: dict[str, set[str]]
) -> None:
    rule = one(prod, "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    names = {r["alert"] for r in alerts}
    assert {
        "CertforgeCertificateExpiringWithoutRenewal",
        "CertforgeRenewalsFailing",
        "CertforgeSyncsFailing",
        "CertforgeOutboxLag",
    } <= names
    for alert in alerts:
        assert query_problems(alert["expr"], known) == [], alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        counts_events = "increase(" in alert["expr"]
        assert counts_events or "for" in alert, f"{alert['alert']} fires on one bad scrape"


def test_the_dashboard_parses_and_queries_declared_metrics(
    prod: list[dict[str, Any]], known: dict[str, set[str]]
) -> None:
    config_map = next(d for d in prod if d["metadata"]["name"] == "certforge-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = config_map["data"]["certforge.json"]
    assert text == DASHBOARD.read_text(encoding="utf-8")
    dashboard = json.loads(text)
    assert dashboard["uid"] == "certforge-overview"
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    queried = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert query_problems(target["expr"], known) == [], panel["title"]
            queried |= set(re.findall(r"\b(certforge_[a-z0-9_]+)", target["expr"]))
    for gauge in (metrics.EARLIEST_EXPIRY, metrics.UNATTENDED_EARLIEST_EXPIRY, metrics.CA_EXPIRY):
        assert gauge in queried, f"the dashboard does not show {gauge}"


def test_prometheus_scrapes_the_metrics_ports_and_only_those(prod: list[dict[str, Any]]) -> None:
    ports: dict[str, int] = {}
    components: dict[str, dict[str, str]] = {}  # component -> its pods' labels
    for doc in prod:
        if doc["kind"] != "Deployment" or not doc["metadata"]["name"].startswith("certforge-"):
            continue
        template = doc["spec"]["template"]
        components[template["metadata"]["labels"]["app.kubernetes.io/component"]] = template[
            "metadata"
        ]["labels"]
        for container in template["spec"]["containers"]:
            for port in container.get("ports", []):
                ports[port["name"]] = port["containerPort"]
    assert {"http", "health"} <= ports.keys()

    # One ServiceMonitor per service; each selects exactly one Service, which selects that
    # service's pods and names the port the monitor scrapes.
    monitors = [d for d in prod if d["kind"] == "ServiceMonitor"]
    by_component = {m["metadata"]["labels"]["app.kubernetes.io/component"]: m for m in monitors}
    assert set(by_component) == set(components)
    assert len(monitors) == len(components)
    services = [d for d in prod if d["kind"] == "Service"]
    for component, monitor in by_component.items():
        wanted = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [
            s for s in services if wanted.items() <= s["metadata"].get("labels", {}).items()
        ]
        assert service["spec"]["selector"].items() <= components[component].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        expected = "http" if component == "api" else "health"
        assert endpoint["port"] == expected, component
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}

    policy = next(d for d in prod if d["metadata"]["name"] == "certforge-metrics-scrape")
    (rule,) = policy["spec"]["ingress"]
    assert sorted(p["port"] for p in rule["ports"]) == sorted(
        ports[name] for name in ("http", "health")
    )
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
