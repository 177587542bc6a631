"""The deployment: the container image and the Kustomize overlays, checked without a cluster.

No Docker engine and no Kubernetes cluster are needed. The Dockerfile is linted with hadolint.
Each overlay (`deploy/k8s/overlays/dev`, `.../prod`) is rendered once with `kubectl kustomize`,
then:

- every document validates against the Kubernetes 1.30 schemas (`kubernetes-validate
  --strict`); custom resources, which those schemas do not know (CloudNativePG's `Cluster`),
  validate against the schemas in `tests/deploy/schemas/`;
- checkov finds no failed check, and each check it skips is one of the skips the manifests
  justify inline (`checkov.io/skipN` annotations);
- the manifests agree with the code: each container runs a console script of the workspace,
  each mounted secret file is a setting of the service that mounts it, each service's settings
  load from exactly what its pod is given, and the probes call endpoints the services serve.

kubectl missing: every rendering test is skipped, with the reason. The linters are dev
dependencies of the workspace (`.venv/bin`).
"""

from __future__ import annotations

import base64
import importlib.metadata
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from certforge.api.settings import ApiSettings
from certforge.common.crypto.envelope import KeyRing
from certforge.common.health import LIVE, READY
from certforge.common.runtime import health_app
from certforge.common.settings import CommonSettings
from certforge.issuer.settings import IssuerSettings
from certforge.notifier.settings import NotifierSettings
from certforge.renewer.settings import RenewerSettings
from certforge.syncer.settings import SyncerSettings
from certforge.validator.settings import ValidatorSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SCHEMAS = Path(__file__).parent / "schemas"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.30"

# Custom resources the Kubernetes schemas do not cover, validated against our own schema.
CUSTOM_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io-v1-Cluster.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com-v1-PrometheusRule.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com-v1-ServiceMonitor.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "gateway.networking.k8s.io-v1-HTTPRoute.json",
}

# The settings class each Certforge component loads (the migration Job runs certforge-migrate).
SETTINGS: dict[str, type[CommonSettings]] = {
    "api": ApiSettings,
    "issuer": IssuerSettings,
    "renewer": RenewerSettings,
    "syncer": SyncerSettings,
    "validator": ValidatorSettings,
    "notifier": NotifierSettings,
    "migrate": CommonSettings,
}
SERVICES = ("api", "issuer", "renewer", "syncer", "validator", "notifier")
METRICS_SCRAPE = "certforge-metrics-scrape"
GATEWAY_LABEL = "certforge.io/gateway"
"""The label an operator sets on the namespace of its ingress controller or gateway."""
"""The monitoring component's NetworkPolicy: Prometheus in, to the metrics ports only."""
UID = 10001
SECRETS_DIR = "/run/secrets/certforge"

# The checkov checks the manifests may skip, each with its reason in the annotation, and where.
ALLOWED_SKIPS = {
    # Images pinned by version tag: Certforge's digest exists only after the release build, the
    # third-party digests could not be looked up offline.
    "CKV_K8S_43": None,
    # Only the syncer needs a ServiceAccount token (it writes TLS Secrets).
    "CKV_K8S_38": {"Deployment.certforge.certforge-syncer"},
    # The syncer's Secret names are chosen at run time: no resourceNames (syncer-rbac.yaml).
    "CKV2_K8S_5": {
        "RoleBinding.certforge-demo.certforge-syncer-tls-secrets",
        "RoleBinding.shop.certforge-syncer-tls-secrets",
    },
}


def _tool(name: str) -> str:
    """A command-line tool from the workspace venv, else from PATH; skip the test without it."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (a dev dependency of the workspace)")
    return found


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


# --- rendering ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`kubectl kustomize` of each overlay, one file per overlay in its own directory."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not on PATH, so the Kustomize overlays cannot be rendered here "
            "(install kubectl, which includes kustomize, to run these tests)"
        )
    out = {}
    root = tmp_path_factory.mktemp("k8s")
    for overlay in OVERLAYS:
        result = _run(kubectl, "kustomize", str(K8S / "overlays" / overlay))
        assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
        directory = root / overlay
        directory.mkdir()
        path = directory / "rendered.yaml"
        path.write_text(result.stdout, encoding="utf-8")
        out[overlay] = path
    return out


@pytest.fixture(scope="module")
def documents(rendered: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    return {
        overlay: [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        for overlay, path in rendered.items()
    }


@pytest.fixture(scope="module")
def checkov_reports(rendered: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """checkov over each rendered overlay, both runs at once (each takes several seconds)."""
    checkov = _tool("checkov")
    runs = {
        overlay: subprocess.Popen(
            [
                checkov,
                "--directory",
                str(path.parent),
                "--framework",
                "kubernetes",
                "--compact",
                "--skip-download",
                "--output",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for overlay, path in rendered.items()
    }
    reports = {}
    for overlay, process in runs.items():
        stdout, stderr = process.communicate(timeout=180)
        # 0: nothing failed, 1: some check failed (reported by the test); anything else broke.
        assert process.returncode in (0, 1), f"checkov crashed on {overlay}:\n{stderr[-3000:]}"
        report = json.loads(stdout)
        assert isinstance(report, dict), f"one framework, one report: {stdout[:500]}"
        reports[overlay] = report
    return reports


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def _named(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated ConfigMap or Secret, whose name carries a content hash suffix."""
    matches = [
        d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(prefix + "-")
    ]
    assert len(matches) == 1, f"expected one generated {kind} {prefix}-<hash>"
    return matches[0]


def _workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (object, pod spec) of the Deployments, StatefulSets and Jobs."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def _certforge(docs: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Certforge's own workloads by component: api, issuer, renewer, syncer, validator,
    migrate."""
    found = {}
    for doc, pod in _workloads(docs):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") == "certforge":
            found[labels["app.kubernetes.io/component"]] = (doc, pod)
    assert set(found) == set(SETTINGS), f"Certforge workloads: {sorted(found)}"
    return found


def _environment(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment: its ConfigMaps (envFrom), then its own `env` values."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(_find(docs, "ConfigMap", name)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def _secret_files(
    pod: dict[str, Any], container: dict[str, Any], directory: str
) -> dict[str, tuple[str, str]]:
    """{file name: (Secret name, key)} of the projected volume mounted at `directory`."""
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert directory in mounts, f"{container['name']}: nothing mounted at {directory}"
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[directory])
    files = {}
    for source in volume["projected"]["sources"]:
        for item in source["secret"]["items"]:
            assert item["path"] not in files, f"{item['path']} projected twice"
            files[item["path"]] = (source["secret"]["name"], item["key"])
    return files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_part(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = documents[overlay]
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "ConfigMap",
        "ServiceAccount",
        "Deployment",
        "Service",
        "Job",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "StatefulSet",
    } <= kinds
    # Traffic: an Ingress controller in dev, the Gateway API in prod (components/gateway-api).
    assert ({"Ingress"} if overlay == "dev" else {"HTTPRoute"}) <= kinds
    assert not ({"HTTPRoute"} if overlay == "dev" else {"Ingress"}) & kinds
    for doc in docs:
        if doc["kind"] not in ("Namespace",) and doc["metadata"].get("namespace") is None:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} has no namespace")


# --- schemas and checkov --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_validates_against_kubernetes_schemas(
    rendered: dict[str, Path], documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    validator = _tool("kubernetes-validate")
    result = _run(
        validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(rendered[overlay])
    )
    lines = result.stdout.splitlines()
    problems = [line for line in lines if line.startswith(("ERROR", "FATAL"))]
    assert not problems, "\n".join(problems)
    assert result.returncode == 0, result.stdout + result.stderr

    passed = set()
    for line in lines:
        match = re.search(r" passed for resource (\S+) against version (\S+)$", line)
        if match:
            assert match.group(2) == KUBERNETES_VERSION, line
            passed.add(match.group(1))
    builtin = {
        f"{d['kind'].lower()}/{d['metadata']['name']}"
        for d in documents[overlay]
        if (d["apiVersion"], d["kind"]) not in CUSTOM_SCHEMAS
    }
    assert passed == builtin, f"not validated: {sorted(builtin - passed)}"

    # The only documents without a Kubernetes schema are the custom resources validated below.
    for line in lines:
        if line.startswith("WARN"):
            assert any(
                f"kind {kind} with api version {api}" in line for api, kind in CUSTOM_SCHEMAS
            ), line


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_schema(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    custom = [d for d in documents[overlay] if (d["apiVersion"], d["kind"]) in CUSTOM_SCHEMAS]
    if overlay == "prod":
        assert custom, "prod has a CloudNativePG Cluster"
    for doc in custom:
        schema_file = SCHEMAS / CUSTOM_SCHEMAS[doc["apiVersion"], doc["kind"]]
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        errors = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
        assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {errors}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_finds_nothing_unjustified(
    checkov_reports: dict[str, dict[str, Any]],
    documents: dict[str, list[dict[str, Any]]],
    overlay: str,
) -> None:
    report = checkov_reports[overlay]
    assert report["check_type"] == "kubernetes"
    assert report["summary"]["parsing_errors"] == 0
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in results["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)

    # checkov really looked at every workload (a crash inside it can look like a clean run).
    scanned = {c["resource"] for c in results["passed_checks"]}
    for doc, _ in _workloads(documents[overlay]):
        meta = doc["metadata"]
        assert f"{doc['kind']}.{meta['namespace']}.{meta['name']}" in scanned

    for skip in results["skipped_checks"]:
        check, resource = skip["check_id"], skip["resource"]
        assert check in ALLOWED_SKIPS, f"unexpected skip of {check} on {resource}"
        where = ALLOWED_SKIPS[check]
        assert where is None or resource in where, f"{check} may not be skipped on {resource}"
        reason = (skip["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 30, f"{check} on {resource}: the skip needs a reason"


def test_dockerfile_lints_clean() -> None:
    hadolint = _tool("hadolint")
    result = _run(hadolint, "--format", "json", str(DOCKERFILE), timeout=60)
    findings = json.loads(result.stdout or "[]")
    above_info = [f for f in findings if f["level"] in ("error", "warning")]
    assert not above_info, json.dumps(above_info, indent=2)


def test_dockerfile_builds_a_pinned_non_root_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(bases) == 2, "a builder stage and a final stage"
    # Same interpreter in both stages (the venv links to it), pinned to a patch release.
    assert bases[0] == bases[1]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", bases[0])
    final = text.split("\nFROM ")[-1]
    assert re.search(rf"^USER {UID}:{UID}$", final, flags=re.MULTILINE)
    assert not re.search(r"^\s*(HEALTHCHECK|ENTRYPOINT)\b", text, flags=re.MULTILINE)
    assert re.search(r'^CMD \["certforge-api"\]$', final, flags=re.MULTILINE)
    # The locked dependencies of the services only: no dev group, no dev stack.
    assert text.count("uv sync --frozen --no-dev") == 2
    assert "--all-packages" not in text
    assert set(re.findall(r"--package (certforge-[a-z]+)", text)) == {
        "certforge-common",
        "certforge-cli",  # the agent runs as a sidecar from this image
        *(f"certforge-{s}" for s in SERVICES),
    }
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore lets in only what it names"
    allowed = {rule for rule in rules if rule.startswith("!")}
    assert allowed == {"!pyproject.toml", "!uv.lock", "!libs/", "!services/", "!clients/"}


# --- the manifests against the code ---------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_container_runs_a_console_script_of_the_workspace(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    scripts = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    for component, (_, pod) in _certforge(documents[overlay]).items():
        (container,) = pod["containers"]
        command = container["command"]
        assert command[0] == f"certforge-{component}", command
        assert command[0] in scripts, f"{command[0]} is not a console script"
        assert container["image"].startswith("registry.example.com/certforge/certforge:")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(documents: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = documents[overlay]
    certforge = {id(pod) for _, pod in _certforge(docs).values()}
    for doc, pod in _workloads(docs):
        name = f"{doc['kind']} {doc['metadata']['name']}"
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod.get("hostNetwork") is not True, name
        is_syncer = doc["metadata"]["name"] == "certforge-syncer"
        assert pod["automountServiceAccountToken"] is is_syncer, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), f"{name}: {bound}"
            if doc["kind"] != "Job":
                assert {"livenessProbe", "readinessProbe"} <= set(container), name
        if id(pod) in certforge:
            assert context["runAsUser"] == UID, name
            (container,) = pod["containers"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
            assert "emptyDir" in tmp, f"{name}: /tmp is an emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_call_the_services_health_endpoints(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = documents[overlay]
    served = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))["paths"]
    for component, (_, pod) in _certforge(docs).items():
        if component == "migrate":
            continue
        (container,) = pod["containers"]
        env = _environment(docs, container)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        live = container["livenessProbe"]["httpGet"]
        ready = container["readinessProbe"]["httpGet"]
        # One meaning per path on every service (certforge.common.health).
        assert (live["path"], ready["path"]) == (LIVE, READY), component
        if component == "api":
            assert {LIVE, READY} <= set(served)
            assert ports[live["port"]] == ports[ready["port"]] == int(env["CERTFORGE_API_PORT"])
            assert env["CERTFORGE_API_HOST"] == "0.0.0.0"
        else:
            assert ports[live["port"]] == ports[ready["port"]] == int(env["CERTFORGE_HEALTH_PORT"])
        assert container["startupProbe"]["httpGet"]["path"] == live["path"]


async def test_worker_health_server_serves_the_probed_paths() -> None:
    async def ready() -> dict[str, str]:
        return {"database": "ok"}

    app = health_app(ready)
    for path in (LIVE, READY):
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app({"type": "http", "path": path, "method": "GET"}, receive, send)
        assert sent[0]["status"] == 200, path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_files_are_settings_of_the_service_that_mounts_them(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = documents[overlay]
    for component, (_, pod) in _certforge(docs).items():
        (container,) = pod["containers"]
        env = _environment(docs, container)
        assert env["CERTFORGE_SECRETS_DIR"] == SECRETS_DIR
        files = _secret_files(pod, container, SECRETS_DIR)
        fields = SETTINGS[component].model_fields
        for name in files:
            assert name.startswith("certforge_"), name
            assert name.removeprefix("certforge_") in fields, f"{component}: {name} is no setting"
        # Every secret the service requires, and the CA key ring in the issuer only.
        for required in SETTINGS[component].required_secrets:
            assert f"certforge_{required}" in files, f"{component} lacks {required}"
        assert ("certforge_ca_keks" in files) is (component == "issuer"), component
        assert "certforge_database_url" in files


def _fake_secrets(docs: list[dict[str, Any]], overlay: str) -> dict[str, dict[str, str]]:
    """The Secrets' contents: dev generates them; prod's come from outside (fake them here)."""
    if overlay == "dev":
        secret = _named(docs, "Secret", "certforge-secrets")
        return {
            secret["metadata"]["name"]: {
                k: base64.b64decode(v).decode() for k, v in secret["data"].items()
            }
        }
    return {
        "certforge-secrets": {
            "certforge_ca_keks": KeyRing.generate_text("prod-ca"),
            "certforge_leaf_keks": KeyRing.generate_text("prod-leaf"),
        },
        # Generated by CloudNativePG for the Cluster's owner.
        "certforge-pg-app": {
            "uri": "postgresql://certforge:generated@certforge-pg-rw.certforge:5432/certforge"
        },
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_loads_its_settings_from_what_its_pod_gets(
    documents: dict[str, list[dict[str, Any]]],
    overlay: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = documents[overlay]
    secrets = _fake_secrets(docs, overlay)
    for name in list(os.environ):
        if name.upper().startswith("CERTFORGE_"):
            monkeypatch.delenv(name)
    for component, (_, pod) in _certforge(docs).items():
        (container,) = pod["containers"]
        directory = tmp_path / overlay / component
        directory.mkdir(parents=True)
        for file, (secret, key) in _secret_files(pod, container, SECRETS_DIR).items():
            (directory / file).write_text(secrets[secret][key] + "\n", encoding="utf-8")
        env = _environment(docs, container) | {"CERTFORGE_SECRETS_DIR": str(directory)}
        with monkeypatch.context() as patched:
            for key, value in env.items():
                patched.setenv(key, value)
            settings = SETTINGS[component].load()
        assert settings.database_url.get_secret_value().startswith("postgresql://")
        assert settings.nats.stream_replicas == (3 if overlay == "prod" else 1)
        assert settings.nats_url == "nats://nats.certforge.svc:4222"
        if isinstance(settings, IssuerSettings):
            assert settings.ca_keks is not None
            KeyRing.parse(settings.ca_keks.get_secret_value())
            assert settings.base_url.startswith("http")
        if isinstance(settings, ApiSettings | IssuerSettings):
            assert settings.leaf_keks is not None
            KeyRing.parse(settings.leaf_keks.get_secret_value())
        if isinstance(settings, ValidatorSettings):
            # Private targets only in a development cluster; prod validates public hosts.
            assert settings.validator.allow_private_targets is (overlay == "dev")
            assert settings.validator.allowed_networks == []


# --- the shape of each overlay --------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches `labels` (an empty selector matches all)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def _pod_labels(docs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Labels of every pod the overlay runs, CloudNativePG's instances included."""
    labels = [doc["spec"]["template"]["metadata"]["labels"] for doc, _ in _workloads(docs)]
    for doc in docs:
        if doc["kind"] == "Cluster":
            inherited = doc["spec"].get("inheritedMetadata", {}).get("labels", {})
            labels.append({"cnpg.io/cluster": doc["metadata"]["name"], **inherited})
    return labels


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_only_the_api_in(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = documents[overlay]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = _find(docs, "NetworkPolicy", "default-deny-all")["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny

    for component, (doc, _) in _certforge(docs).items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        ingress = [
            rule
            for p in policies
            if _selects(p["spec"]["podSelector"], labels)
            and p["metadata"]["name"] != METRICS_SCRAPE  # judged in test_monitoring.py
            for rule in p["spec"].get("ingress", [])
        ]
        if component == "api":
            assert [port["port"] for rule in ingress for port in rule["ports"]] == [8080]
            # The gateway's namespace by the label its operator sets, no controller's name.
            peers = [peer for rule in ingress for peer in rule["from"]]
            assert peers == [{"namespaceSelector": {"matchLabels": {GATEWAY_LABEL: "true"}}}]
        else:
            assert ingress == [], f"{component} accepts no connections"
        egress_ports = {
            port["port"]
            for p in policies
            if _selects(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("egress", [])
            for port in rule["ports"]
        }
        expected = {53, 5432} | ({4222} if component != "migrate" else set())
        if component == "syncer":
            expected |= {443, 6443}
        if component == "validator":
            expected |= {80, 443}
        if component == "notifier":  # its channels: HTTPS and SMTP submission
            expected |= {443, 465, 587}
        assert egress_ports == expected, f"{component}: egress {sorted(egress_ports)}"

    # Every pod selector the services' egress names matches a pod the overlay runs.
    pods = _pod_labels(docs)
    for policy in policies:
        if policy["metadata"]["name"] not in ("certforge-to-postgres", "certforge-to-nats"):
            continue
        for rule in policy["spec"]["egress"]:
            for peer in rule["to"]:
                assert any(_selects(peer["podSelector"], p) for p in pods), peer


# Ranges a validator must never reach in production: the cluster's own networks, loopback,
# cloud metadata (link-local), carrier-grade NAT, IPv6 unique-local and link-local.
INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
            "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10")  # fmt: skip


OUTSIDE_PORTS = {"validator": {80, 443, 53}, "syncer": {443, 6443}, "notifier": {443, 465, 587}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_validator_reaches_hosts_outsiders_choose(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """Egress to addresses outside the cluster (ipBlocks): the validator on 80/443/53 (public
    ranges only, in prod), the syncer on 443/6443 to its destinations, the notifier on
    443/465/587 to the channels admins configure; nobody else."""
    docs = documents[overlay]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for component, (doc, _) in _certforge(docs).items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        outside = [
            (peer["ipBlock"], {port["port"] for port in rule["ports"]})
            for p in policies
            if _selects(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("egress", [])
            for peer in rule["to"]
            if "ipBlock" in peer
        ]
        if component not in OUTSIDE_PORTS:
            assert outside == [], f"{component} reaches outside the cluster: {outside}"
            continue
        assert outside, f"{component} needs egress to the outside"
        for block, ports in outside:
            expected = OUTSIDE_PORTS[component]
            assert ports == expected, f"{component}: {sorted(ports)}"
            if component != "validator" or overlay == "dev":
                continue
            cidr = ipaddress.ip_network(block["cidr"])
            excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
            for internal in map(ipaddress.ip_network, INTERNAL):
                if internal.version != cidr.version:
                    continue
                assert any(
                    internal.subnet_of(e) for e in excepted if e.version == internal.version
                ), f"the validator may reach {internal} in {overlay}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_wait_for_the_migration_job(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """`kubectl apply -k ... -l 'certforge.io/stage!=services'` applies all but the Deployments."""
    docs = documents[overlay]
    staged = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get("certforge.io/stage") == "services"
    }
    assert staged == {("Deployment", f"certforge-{s}") for s in SERVICES}
    job = _find(docs, "Job", "certforge-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["certforge-migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_syncer_may_write_secrets_and_only_where_granted(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = documents[overlay]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert bindings, "the syncer is granted at least one namespace"
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "certforge-syncer", "namespace": "certforge"}
        ]
        assert binding["metadata"]["namespace"] != "certforge"
        role = _find(docs, "Role", binding["roleRef"]["name"])
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
        for rule in role["rules"]:
            assert rule["apiGroups"] == [""], rule
            assert rule["resources"] == ["secrets"], rule
            assert set(rule["verbs"]) <= {"get", "create", "update", "patch", "delete"}, rule
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert set(accounts) == {f"certforge-{c}" for c in SETTINGS}
    for name, account in accounts.items():
        assert account["automountServiceAccountToken"] is (name == "certforge-syncer")
    for component, (_, pod) in _certforge(docs).items():
        assert pod["serviceAccountName"] == f"certforge-{component}"


def test_dev_runs_one_small_replica_of_everything(
    documents: dict[str, list[dict[str, Any]]],
) -> None:
    docs = documents["dev"]
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    for doc, _ in _workloads(docs):
        if doc["kind"] != "Job":
            assert doc["spec"]["replicas"] == 1, doc["metadata"]["name"]
    for _, pod in _certforge(docs).values():
        (container,) = pod["containers"]
        assert container["resources"]["requests"]["cpu"] == "25m"
    config = _named(docs, "ConfigMap", "certforge-config")["data"]
    assert config["CERTFORGE_NATS__STREAM_REPLICAS"] == "1"
    assert _find(docs, "StatefulSet", "postgres")["spec"]["replicas"] == 1
    nats = _find(docs, "StatefulSet", "nats")
    assert "store_dir" in _find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert nats["spec"]["replicas"] == 1
    # Fake values only, recognisable as such.
    secret = _named(docs, "Secret", "certforge-secrets")
    for value in secret["data"].values():
        decoded = base64.b64decode(value).decode()
        kek = decoded.split(":", 1)[1] if decoded.startswith("dev-") else ""
        assert "dev-only" in decoded or base64.b64decode(kek).startswith(b"DEV-ONLY-FAKE")


def test_prod_runs_replicated_nats_and_postgres(
    documents: dict[str, list[dict[str, Any]]],
) -> None:
    docs = documents["prod"]
    config = _named(docs, "ConfigMap", "certforge-config")["data"]
    assert config["CERTFORGE_NATS__STREAM_REPLICAS"] == "3"
    assert not [d for d in docs if d["kind"] == "Secret"], "prod Secrets are created out of band"

    nats = _find(docs, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["serviceName"] == "nats-headless"
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    headless = _find(docs, "Service", "nats-headless")["spec"]
    assert headless["clusterIP"] == "None"
    conf = _find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    routes = re.findall(r"nats://nats-(\d)\.nats-headless\.certforge\.svc:6222", conf)
    assert routes == ["0", "1", "2"]
    assert "jetstream" in conf
    assert _find(docs, "PodDisruptionBudget", "nats")["spec"]["minAvailable"] == 2

    cluster = _find(docs, "Cluster", "certforge-pg")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] == 3
    for _, pod in _certforge(docs).values():
        (container,) = pod["containers"]
        files = _secret_files(pod, container, SECRETS_DIR)
        assert files["certforge_database_url"] == ("certforge-pg-app", "uri")

    for name in ("certforge-api", "certforge-issuer"):
        hpa = _find(docs, "HorizontalPodAutoscaler", name)["spec"]
        assert hpa["scaleTargetRef"]["name"] == name
        assert hpa["minReplicas"] >= 3
        assert "replicas" not in _find(docs, "Deployment", name)["spec"], "the HPA owns it"
    for service in SERVICES:
        pdb = _find(docs, "PodDisruptionBudget", f"certforge-{service}")["spec"]
        assert pdb["minAvailable"] >= 1
        assert "maxUnavailable" not in pdb


# --- traffic: the API over https, the revocation URLs over plain http ------------------------


def _routes(docs: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """{route name: [(match type, path)]} of the Ingresses or HTTPRoutes, each checked to send
    to the api's Service on its port."""
    service = _find(docs, "Service", "certforge-api")
    (port,) = service["spec"]["ports"]
    routes: dict[str, list[tuple[str, str]]] = {}
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] == "Ingress":
            (rule,) = doc["spec"]["rules"]
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert (backend["name"], backend["port"]) == ("certforge-api", {"name": "http"})
                routes.setdefault(name, []).append((path["pathType"], path["path"]))
        elif doc["kind"] == "HTTPRoute":
            for rule in doc["spec"]["rules"]:
                for ref in rule["backendRefs"]:
                    assert (ref["name"], ref["port"]) == ("certforge-api", port["port"])
                matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
                for match in matches:
                    routes.setdefault(name, []).append(
                        (match["path"]["type"], match["path"]["value"])
                    )
    return routes


def _matches(kind: str, pattern: str, path: str) -> bool:
    if kind in ("Prefix", "PathPrefix"):
        prefix = pattern.rstrip("/")
        return path == prefix or path.startswith(prefix + "/")
    return re.fullmatch(pattern, path) is not None  # RegularExpression, ImplementationSpecific


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_revocation_urls_are_routed_over_plain_http_and_nothing_else(
    documents: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    from uuid import uuid4

    from certforge.common.contracts.routes import ca_urls
    from certforge.issuer.settings import revocation_base

    docs = documents[overlay]
    env = _named(docs, "ConfigMap", "certforge-config")["data"]
    public, revocation = env["CERTFORGE_PUBLIC_URL"], env["CERTFORGE_REVOCATION_URL"]
    assert revocation.startswith("http://")
    assert public.startswith("https://" if overlay == "prod" else "http://")
    urls = ca_urls(revocation_base(public, revocation), uuid4())
    pointed = [urls.crl, urls.ocsp, urls.ocsp + "/MEMwQTA_", urls.ca_issuers]
    host = revocation.removeprefix("http://")
    routes = _routes(docs)
    assert set(routes) == {"certforge-api", "certforge-revocation"}
    plain = routes["certforge-revocation"]
    for url in pointed:
        assert url.startswith(revocation)
        path = url.removeprefix(revocation)
        assert any(_matches(kind, pattern, path) for kind, pattern in plain), path
    # The plain-http route carries no other API path, so no token crosses it in the clear.
    for path in ("/api/v1/cas", "/api/v1/cas/x/certificate", "/api/v1/applications", "/"):
        assert not any(_matches(kind, pattern, path) for kind, pattern in plain), path
    for doc in docs:
        if doc["kind"] == "Ingress":
            assert doc["spec"]["rules"][0]["host"] == host
            if doc["metadata"]["name"] == "certforge-revocation":
                annotations = doc["metadata"]["annotations"]
                assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "false"
                assert "tls" not in doc["spec"]
        if doc["kind"] == "HTTPRoute":
            assert doc["spec"]["hostnames"] == [host]
            listener = doc["spec"]["parentRefs"][0]["sectionName"]
            revocation_route = doc["metadata"]["name"] == "certforge-revocation"
            assert listener == ("http" if revocation_route else "https")
