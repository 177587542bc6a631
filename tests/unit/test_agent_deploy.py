"""The agent's deployment files: the systemd unit and the Kubernetes sidecar example, checked
with the real tools (`systemd-analyze verify`, `kubernetes-validate --strict`), and the config
they carry loads with the agent's own loader."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from certforge.cli.agent.config import load

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "certforge-agent.service"
SIDECAR = ROOT / "deploy" / "examples" / "agent-sidecar.yaml"
CERTFORGE = Path(sys.executable).parent / "certforge"


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """Verified as installed, with the command where this workspace has it (verify checks
    that ExecStart's program exists); any warning (a misspelt key) fails too."""
    analyze = _tool("systemd-analyze")
    unit = tmp_path / UNIT.name
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/certforge agent run --config /etc/certforge/agent.yaml" in text
    unit.write_text(text.replace("/usr/local/bin/certforge", str(CERTFORGE)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    # A bad config exits 2: systemd must not restart it in a loop.
    assert "RestartPreventExitStatus=2" in text


def test_sidecar_example_validates() -> None:
    validator = _tool("kubernetes-validate")
    result = subprocess.run(
        [validator, "--strict", "--kubernetes-version", "1.30", str(SIDECAR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == 2, result.stdout


def test_sidecar_runs_the_agent_with_a_config_it_accepts(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all(SIDECAR.read_text()))
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    agent = next(c for c in pod["initContainers"] if c["name"] == "certforge-agent")
    assert agent["restartPolicy"] == "Always", "a native sidecar: started before nginx"
    assert agent["command"][:3] == ["certforge", "agent", "run"]
    assert agent["startupProbe"]["exec"]["command"][:3] == ["certforge", "agent", "status"]
    assert pod["shareProcessNamespace"] is True, "the agent signals nginx"

    # The ConfigMap's agent.yaml, its /certs paths moved here (they exist only in the pod).
    (tmp_path / "certs").mkdir()
    text = config_map["data"]["agent.yaml"].replace("/certs/", f"{tmp_path}/certs/")
    (tmp_path / "agent.yaml").write_text(text)
    config = load(tmp_path / "agent.yaml")
    web = config.certificates[0]
    assert web.reload is not None
    assert web.reload.signal == "SIGHUP"
    assert "pid /certs/nginx.pid;" in config_map["data"]["nginx.conf"]
    assert str(web.reload.pid_file) == f"{tmp_path}/certs/nginx.pid"
