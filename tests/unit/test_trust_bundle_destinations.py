"""Where a destination puts the trust bundle when a sync includes it (`include_trust_bundle`),
and that it adds nothing when the sync does not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from certforge.common.destinations.directory import DirectorySettings
from certforge.common.destinations.spec import NoCredentials
from certforge.syncer.plugins.aws_secrets import secret_document
from certforge.syncer.plugins.directory import DirectoryDestination
from sync_plugin_kit import sync_ca, sync_item

BUNDLE = sync_ca().root_pem + sync_ca().root_pem


def test_secrets_manager_documents_carry_it_only_when_given() -> None:
    item = sync_item("bundle")
    assert "trust_bundle" not in secret_document(item)
    with_bundle = dataclasses.replace(item, trust_bundle_pem=BUNDLE)
    assert secret_document(with_bundle)["trust_bundle"] == BUNDLE


async def test_a_directory_gets_trust_bundle_pem_only_when_given(tmp_path: Path) -> None:
    destination = DirectoryDestination(
        DirectorySettings(path=str(tmp_path)), NoCredentials(), development=True
    )
    plain = sync_item("plain")
    folder = Path(await destination.push(plain))
    assert not (folder / "trust-bundle.pem").exists()
    bundled = dataclasses.replace(sync_item("bundled"), trust_bundle_pem=BUNDLE)
    folder = Path(await destination.push(bundled))
    assert (folder / "trust-bundle.pem").read_text() == BUNDLE
    assert (folder / "cert.pem").read_text() == bundled.certificate_pem
