"""The checked-in documents match the code, and the message catalog covers every contract.

`docs/openapi.json`, `docs/asyncapi.json` and the generated tables of `README.md` are built from
the code by `python -m certforge.devstack.docs write` (`make docs`). Building them needs no
server: the API app is only constructed (its lifespan never runs) and the AsyncAPI broker never
connects. When one of these tests fails, run `make docs` and commit the result.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from certforge.common.contracts.catalog import CATALOG, catalog_problems
from certforge.common.contracts.commands import IssueCertificate
from certforge.devstack import docs

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (docs.OPENAPI_PATH, docs.ASYNCAPI_PATH, docs.README_PATH)


@pytest.fixture(scope="module")
def expected() -> dict[Path, str]:
    return docs.expected_documents(ROOT)


def _diff(path: Path, current: str, wanted: str, limit: int = 40) -> str:
    lines = list(
        difflib.unified_diff(
            current.splitlines(),
            wanted.splitlines(),
            f"{path} (checked in)",
            f"{path} (generated)",
            lineterm="",
        )
    )
    shown = "\n".join(lines[:limit])
    return shown + (f"\n… {len(lines) - limit} more diff lines" if len(lines) > limit else "")


@pytest.mark.parametrize("path", DOCUMENTS, ids=str)
def test_document_is_current(expected: dict[Path, str], path: Path) -> None:
    target = ROOT / path
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    wanted = expected[path]
    assert current == wanted, (
        f"{path} is out of date with the code: run `make docs`\n{_diff(path, current, wanted)}"
    )


def test_catalog_has_every_contract() -> None:
    assert catalog_problems() == [], "fix the catalog in certforge.common.contracts.catalog"


def test_catalog_problems_name_a_missing_contract() -> None:
    without_issue = tuple(c for c in CATALOG if c.model is not IssueCertificate)
    problems = catalog_problems(without_issue)
    assert any("IssueCertificate is not in the catalog" in p for p in problems), problems


def test_catalog_problems_name_duplicates() -> None:
    problems = catalog_problems((*CATALOG, CATALOG[0]))
    assert f"subject {CATALOG[0].subject} appears twice" in problems


def test_asyncapi_document_is_deterministic_and_complete() -> None:
    first = docs.asyncapi_document()
    assert first == docs.asyncapi_document()
    for contract in CATALOG:
        assert f'"{contract.subject}"' in first, contract.subject
        assert f"{contract.name}:publish" in first
        assert f"{contract.name}:consume" in first
        if contract.event_type is not None:
            assert f'"{contract.event_type}"' in first


def test_check_names_the_stale_file(
    expected: dict[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    for path in DOCUMENTS:
        (tmp_path / path).write_text(expected[path], encoding="utf-8")
    (tmp_path / docs.ASYNCAPI_PATH).write_text("{}\n", encoding="utf-8")

    assert docs.main(["check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(docs.ASYNCAPI_PATH) in err
    assert "run `make docs`" in err
    assert str(docs.OPENAPI_PATH) not in err

    assert docs.main(["write", "--root", str(tmp_path)]) == 0
    assert docs.main(["check", "--root", str(tmp_path)]) == 0
