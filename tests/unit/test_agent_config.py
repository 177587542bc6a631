"""The agent's config: every mistake is refused with the file and the line to edit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from certforge.cli.agent.config import ConfigError, load

GOOD = """\
server:
  url: https://certforge.example.com
  token_file: {dir}/token
state_file: {dir}/state.json
certificates:
  - name: web
    app: shop
    request:
      profile: web-server
      common_name: api.example.com
      sans: [dns:api.example.com, ip:10.0.0.5]
      key_algorithm: EC_P256
    files:
      certificate: {{path: {dir}/cert.pem}}
      key: {{path: {dir}/key.pem, mode: "0600", owner: root, group: "0"}}
    reload:
      command: [systemctl, reload, nginx]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text.format(dir=tmp_path))
    return path


def test_good_config_loads(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    web = config.certificates[0]
    assert web.request is not None
    assert web.request.sans == [
        {"type": "dns", "value": "api.example.com"},
        {"type": "ip", "value": "10.0.0.5"},
    ]
    assert web.files.key is not None
    assert web.files.key.mode == 0o600
    assert web.files.key.uid() == 0
    assert web.files.key.gid() == 0
    assert config.watch is True


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "message"),
    [
        pytest.param(
            "ip:10.0.0.5", "ip:10.0.0.500", 11, "certificates[0].request.sans[1]",
            "not an IP address", id="fail/san-ip",
        ),
        pytest.param(
            "dns:api.example.com,", "api.example.com,", 11, "certificates[0].request.sans[0]",
            "write TYPE:VALUE", id="fail/san-without-type",
        ),
        pytest.param(
            "dns:api.example.com,", "dn:api.example.com,", 11,
            "certificates[0].request.sans[0]", "unknown type 'dn'", id="fail/san-type",
        ),
        pytest.param(
            'mode: "0600"', "mode: 600", 15, "certificates[0].files.key.mode",
            "an octal mode", id="fail/mode-decimal",
        ),
        pytest.param(
            "owner: root", "owner: no-such-user-here", 15, "certificates[0].files.key.owner",
            "no user 'no-such-user-here'", id="fail/owner",
        ),
        pytest.param(
            "{dir}/key.pem", "/nonexistent-dir/key.pem", 15, "certificates[0].files.key.path",
            "/nonexistent-dir does not exist", id="fail/missing-directory",
        ),
        pytest.param(
            "{dir}/key.pem", "{dir}/token/key.pem", 15, "certificates[0].files.key.path",
            "is not a directory", id="fail/parent-is-a-file",
        ),
        pytest.param(
            "{dir}/cert.pem", "cert.pem", 14, "certificates[0].files.certificate.path",
            "absolute path", id="fail/relative-path",
        ),
        pytest.param(
            "key_algorithm: EC_P256", "key_algorithm: DSA", 12,
            "certificates[0].request.key_algorithm", "Input should be", id="fail/key-algorithm",
        ),
        pytest.param(
            "    request:\n", "    certificate_id: 3f1c2b9e-0000-4000-8000-000000000000\n"
            "    request:\n", 6, "certificates[0]", "either certificate_id or request",
            id="fail/both-sources",
        ),
        pytest.param(
            "command: [systemctl, reload, nginx]", "command: systemctl reload nginx", 17,
            "certificates[0].reload.command", "a list of arguments", id="fail/command-string",
        ),
        pytest.param(
            "command: [systemctl, reload, nginx]", "signal: HUP", 16,
            "certificates[0].reload", "signal and pid_file go together",
            id="fail/signal-without-pid",
        ),
        pytest.param(
            "  url: https://certforge.example.com", "  url: certforge.example.com", 2,
            "server.url", "should match pattern", id="fail/url",
        ),
        pytest.param(
            "    app: shop\n", "", 6, "certificates[0].app", "required", id="fail/missing-app",
        ),
        pytest.param(
            "  token_file: {dir}/token\n", "  token_file: {dir}/token\n  ca_bundle: /no/ca.pem\n",
            4, "server.ca_bundle", "cannot read /no/ca.pem", id="fail/ca-bundle",
        ),
        pytest.param(
            "      profile: web-server", "      profile: web-server\n      colour: blue", 10,
            "certificates[0].request.colour", "Extra inputs", id="fail/unknown-key",
        ),
        pytest.param(
            "    files:", "    files: [", 15, "", "not valid YAML", id="fail/yaml-syntax",
        ),
    ],
)  # fmt: skip
def test_bad_config_names_the_line(
    tmp_path: Path, old: str, new: str, line: int, where: str, message: str
) -> None:
    (tmp_path / "token").write_text("cf_x\n")
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load(path)
    error = caught.value
    assert error.line == line, str(error)
    assert error.where == where, str(error)
    assert message in error.message, str(error)
    assert str(error).startswith(f"{path}:{line}: ")


def test_mode_written_as_yaml_octal_is_octal(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD.replace('mode: "0600"', "mode: 0640")))
    assert config.certificates[0].files.key is not None
    assert config.certificates[0].files.key.mode == 0o640


def test_run_exits_2_with_the_line(tmp_path: Path) -> None:
    """The command a service manager runs: one line on stderr, exit code 2, nothing written."""
    path = write(tmp_path, GOOD.replace("ip:10.0.0.5", "ip:nope"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "certforge"), "agent", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        f"error: {path}:11: certificates[0].request.sans[1]: 'ip:nope': not an IP address"
    ), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.yaml"]


def test_unreadable_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent.yaml: cannot read: No such file"):
        load(tmp_path / "agent.yaml")
