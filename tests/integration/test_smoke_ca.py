import uuid

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_root_then_intermediate(admin: httpx.AsyncClient) -> None:
    name = f"root-{uuid.uuid4().hex[:6]}"
    r = await admin.post(
        "/api/v1/cas",
        json={
            "name": name,
            "type": "root",
            "subject": {"common_name": "Example Root CA", "organization": "Example"},
            "key_algorithm": "EC_P256",
            "validity": "10y",
            "max_path_length": 1,
        },
    )
    assert r.status_code == 201, r.text
    root = r.json()
    r = await admin.post(
        "/api/v1/cas",
        json={
            "name": name + "-i",
            "type": "intermediate",
            "parent_ca_id": root["id"],
            "subject": {"common_name": "Example Issuing CA"},
            "key_algorithm": "EC_P256",
            "validity": "5y",
            "max_path_length": 0,
        },
    )
    assert r.status_code == 201, r.text
