"""oauth2-mock-server (npm) behaving like a real provider: ``oauth_provider.mjs`` starts the
package's own service behind a small loopback server whose behaviour a test sets (Slack's
nested user token, Salesforce's instance_url, QuickBooks' realmId in the callback, a token
endpoint wanting client credentials in the body, hostile answers...) and which records what
Patchwire sent. Skipped when the package is not installed, failed under CI (as
``tests.support.oauth_mock``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.support.oauth import ci_required

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / ".fixtures-cache" / "node" / "node_modules" / "oauth2-mock-server"
SCRIPT = Path(__file__).with_name("oauth_provider.mjs")
START_S = 20.0
STOP_S = 5.0
#: bound on one control or browser request to the mock
REQUEST_S = 10.0


class MockProvider:
    """A running mock provider: ``url`` is its root (``/authorize``, ``/token``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def behave(self, **behaviour: Any) -> None:
        """Replace the provider's behaviour (see oauth_provider.mjs for the keys)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_S)) as s, \
                s.post(f"{self.url}/_behave", json=behaviour) as resp:
            assert resp.status == 204

    async def seen(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The requests it received, oldest first (``token`` or ``authorize`` ones)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_S)) as s, \
                s.get(f"{self.url}/_seen") as resp:
            found: list[dict[str, Any]] = await resp.json()
        return [r for r in found if endpoint is None or r["endpoint"] == endpoint]


async def follow_authorize(url: str) -> dict[str, str]:
    """Open an authorize URL as a browser would; the redirect's query (code, state...)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_S)) as s, \
            s.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@asynccontextmanager
async def mock_provider(**behaviour: Any) -> AsyncIterator[MockProvider]:
    """Start the mock provider on 127.0.0.1 (a free port) with ``behaviour``."""
    entry = PACKAGE / "dist" / "index.mjs"
    if not entry.exists():
        reason = f"oauth2-mock-server is not installed ({PACKAGE}); run scripts/ci-oauth-mock.sh"
        if ci_required():
            pytest.fail(reason)
        pytest.skip(reason)
    proc = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), str(entry),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        url = ""
        async with asyncio.timeout(START_S):
            while not url:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError("the mock provider exited before listening")
                if "listening on " in line:
                    url = line.rsplit("listening on ", 1)[1].strip()
        provider = MockProvider(url)
        if behaviour:
            await provider.behave(**behaviour)
        yield provider
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                async with asyncio.timeout(STOP_S):
                    await proc.wait()
