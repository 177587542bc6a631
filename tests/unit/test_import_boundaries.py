"""Services meet only through contracts in common, never by importing each other.

Each service is its own process, image and release: an import of another service's package
would ship that service's code (and its dependencies, e.g. the syncer's cloud SDKs) inside this
one and couple their releases. Common sits below every service, and devstack (the development
stack and the docs generator) above all of them. Clients (`clients/*`, the `certforge` CLI and
agent) speak only the public REST API: they import neither common nor a service, so they install
alone on a laptop or a server and keep working against any API that honours the OpenAPI document.

Every module's source is parsed, so imports inside functions and under `TYPE_CHECKING` count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "issuer", "renewer", "syncer", "validator", "notifier")
"""Every service package, present and planned: a new one is covered from its first module."""
CLIENTS = ("cli",)
"""Every client package (`clients/*/src/certforge/<name>`): public REST API only."""


def forbidden_for(owner: str) -> tuple[str, ...]:
    """The packages a module of `owner` (`common`, a service or a client name) may not import."""
    if owner in CLIENTS:
        return ("certforge.common", *(f"certforge.{s}" for s in SERVICES), "certforge.devstack")
    others = tuple(f"certforge.{service}" for service in SERVICES if service != owner)
    return (*others, "certforge.devstack")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from … import` names, relative ones resolved against `module`."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every (line, dotted name) `source` imports; `from a import b` yields `a` and `a.b`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            yield node.lineno, target
            yield from ((node.lineno, f"{target}.{alias.name}") for alias in node.names)


def violations(source: str, module: str, owner: str, is_package: bool = False) -> list[str]:
    """Each forbidden import of `source` as `line N: imports name (reason)`, one per line."""
    found: dict[int, str] = {}
    for line, name in imported_names(source, module, is_package):
        for package in forbidden_for(owner):
            if line not in found and (name == package or name.startswith(package + ".")):
                found[line] = f"line {line}: imports {name} ({owner} may not import {package})"
    return list(found.values())


def _modules() -> list[tuple[Path, str]]:
    """Every module of common and the services, with its owner."""
    found = [(path, "common") for path in sorted((ROOT / "libs/common/src").rglob("*.py"))]
    for service in sorted((ROOT / "services").iterdir()):
        found += [(path, service.name) for path in sorted((service / "src").rglob("*.py"))]
    for client in sorted((ROOT / "clients").iterdir()):
        for package in sorted((client / "src/certforge").iterdir()):
            found += [(path, package.name) for path in sorted(package.rglob("*.py"))]
    return found


def _module_name(path: Path) -> str:
    source_root = next(parent for parent in path.parents if parent.name == "src")
    parts = path.relative_to(source_root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = _modules()


def test_modules_are_found() -> None:
    owners = {owner for _, owner in MODULES}

    assert {"common", "api", "issuer", "renewer", "syncer", *CLIENTS} <= owners


@pytest.mark.parametrize(
    ("path", "owner"),
    MODULES,
    ids=[f"ok/{path.relative_to(ROOT)}" for path, _ in MODULES],
)
def test_module_imports_no_other_service(path: Path, owner: str) -> None:
    found = violations(
        path.read_text(encoding="utf-8"), _module_name(path), owner, path.name == "__init__.py"
    )

    assert not found, f"{path.relative_to(ROOT)} crosses a service boundary:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "module", "owner", "expected"),
    [
        pytest.param(
            "from certforge.common.errors import NotFound\nimport certforge.api.settings as s\n",
            "certforge.api.routes.cas",
            "api",
            [],
            id="ok/own-package-and-common",
        ),
        pytest.param(
            "from certforge.syncer.plugins import base\n",
            "certforge.api.domain.syncs",
            "api",
            ["line 1: imports certforge.syncer.plugins (api may not import certforge.syncer)"],
            id="fail/service-imports-service",
        ),
        pytest.param(
            "def f():\n    from certforge import issuer\n",
            "certforge.renewer.scan",
            "renewer",
            ["line 2: imports certforge.issuer (renewer may not import certforge.issuer)"],
            id="fail/inside-function-from-namespace",
        ),
        pytest.param(
            "import certforge.validator\n",
            "certforge.common.policy",
            "common",
            ["line 1: imports certforge.validator (common may not import certforge.validator)"],
            id="fail/common-imports-future-service",
        ),
        pytest.param(
            "from certforge.devstack import docs\n",
            "certforge.common.settings",
            "common",
            ["line 1: imports certforge.devstack (common may not import certforge.devstack)"],
            id="fail/common-imports-devstack",
        ),
        pytest.param(
            "from ...issuer import cas\n",
            "certforge.api.domain.cas",
            "api",
            ["line 1: imports certforge.issuer (api may not import certforge.issuer)"],
            id="fail/relative-import-climbs-out",
        ),
        pytest.param(
            "import httpx\nfrom certforge.cli.api import ApiClient\n",
            "certforge.cli.main",
            "cli",
            [],
            id="ok/client-imports-itself",
        ),
        pytest.param(
            "from certforge.common.errors import NotFound\n",
            "certforge.cli.api",
            "cli",
            ["line 1: imports certforge.common.errors (cli may not import certforge.common)"],
            id="fail/client-imports-common",
        ),
        pytest.param(
            "from certforge.api.schemas import certificates\n",
            "certforge.cli.cert",
            "cli",
            ["line 1: imports certforge.api.schemas (cli may not import certforge.api)"],
            id="fail/client-imports-service",
        ),
    ],
)
def test_violations(source: str, module: str, owner: str, expected: list[str]) -> None:
    assert violations(source, module, owner) == expected
