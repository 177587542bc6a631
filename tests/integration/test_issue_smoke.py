import uuid

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_managed_issue_with_wait(admin: httpx.AsyncClient) -> None:
    s = uuid.uuid4().hex[:6]
    root = (await admin.post("/api/v1/cas", json={"name": f"r{s}", "type": "root", "subject": {"common_name": "Root"}, "key_algorithm": "EC_P256", "validity": "10y", "max_path_length": 1})).json()
    inter = (await admin.post("/api/v1/cas", json={"name": f"i{s}", "type": "intermediate", "parent_ca_id": root["id"], "subject": {"common_name": "Issuing"}, "key_algorithm": "EC_P256", "validity": "5y", "max_path_length": 0})).json()
    pol = (await admin.post("/api/v1/policies", json={"name": f"p{s}", "sans": {"dns": {"allowed": ["*.example.com", "example.com"]}, "ip": {"allowed": ["10.0.0.0/8"]}}, "subject": {"common_name": {"allowed": ["*.example.com", "example.com"]}}, "max_validity": "90d"})).json()
    r = await admin.post("/api/v1/profiles", json={"slug": f"web{s}", "ca_id": inter["id"], "policy_id": pol["id"], "defaults": {"ttl": "30d", "key_algorithm": "EC_P256", "key_usages": ["digital_signature"], "extended_key_usages": ["server_auth"]}})
    assert r.status_code == 201, r.text
    await admin.post("/api/v1/applications", json={"slug": f"shop{s}", "name": "Shop"})
    assert (await admin.put(f"/api/v1/applications/shop{s}/profiles/web{s}")).status_code == 201
    r = await admin.put(f"/api/v1/applications/shop{s}/profiles/web{s}/enrollment/api", json={"enabled": True, "auto_renew": True, "renew_before_days": 10})
    assert r.status_code == 200, r.text
    r = await admin.post(
        f"/api/v1/applications/shop{s}/certificate-requests",
        headers={"Prefer": "wait=10"},
        json={"profile": f"web{s}", "method": "managed", "common_name": "api.example.com", "sans": [{"type": "dns", "value": "api.example.com"}, {"type": "ip", "value": "10.1.2.3"}], "key_algorithm": "EC_P256", "ttl": "30d", "metadata": {"team": "payments"}},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["certificate"]["private_key"].startswith("-----BEGIN PRIVATE KEY")
