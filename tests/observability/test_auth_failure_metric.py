"""``patchwire_auth_failures_total`` counts every refusal of access control by reason, and
its help text names each reason it counts: API keys (missing, invalid, scope,
rate_limited) and the Host/Origin guard (foreign_host, cross_origin). Over real HTTP."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from patchwire import Patchwire
from patchwire.access import AccessPolicy
from patchwire.server import create_app
from patchwire.store.keys import KeyRepository
from tests.support.servers import serving
from tests.support.settings import local_settings

FOREIGN = "http://evil.example"


async def test_the_help_text_names_every_reason_a_refusal_is_counted_under(
        tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "home")
    async with Patchwire(settings) as setup:
        keys = KeyRepository(setup.store)
        _, admin = await keys.create("ops", ["admin"])
        _, reader = await keys.create("grafana", ["read"])
    app = create_app(Patchwire(settings),
                     access=AccessPolicy(require_keys=True, cache_ttl=0, max_failures=1))
    async with (serving(app) as url,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http):
        async def status(method: str, path: str, key: str | None,
                         headers: dict[str, str] | None = None) -> int:
            sent = {**({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
            async with http.request(method, url + path, headers=sent) as resp:
                return resp.status

        refusals = [
            await status("GET", "/api/v1/connections", None),                    # missing
            await status("POST", "/api/v1/keys", reader),                        # scope
            await status("GET", "/api/v1/connections", admin,
                         {"Host": "evil.example"}),                               # foreign_host
            await status("GET", "/api/v1/connections", admin, {"Origin": FOREIGN}),
            await status("GET", "/api/v1/connections", "pwk_0123456789ab_" + "x" * 43),
            await status("GET", "/api/v1/connections", "pwk_0123456789ab_" + "y" * 43),
        ]
        assert refusals == [401, 403, 421, 403, 401, 429]
        async with http.get(url + "/metrics",
                            headers={"Authorization": f"Bearer {admin}"}) as resp:
            assert resp.status == 200
            exposition = await resp.text()

    [family] = [f for f in text_string_to_metric_families(exposition)
                if f.name == "patchwire_auth_failures"]
    counted = {s.labels["reason"] for s in family.samples if s.value > 0}
    assert counted >= {"missing", "invalid", "scope", "rate_limited", "foreign_host",
                       "cross_origin"}, counted
    unnamed = [reason for reason in counted if reason not in family.documentation]
    assert unnamed == [], family.documentation
