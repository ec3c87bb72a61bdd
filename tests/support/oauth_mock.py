"""oauth2-mock-server (npm): an OAuth2 server nobody here wrote, on a free loopback port.

``scripts/ci-oauth-mock.sh`` installs it into ``.fixtures-cache/node``. Without it a test
is skipped, unless ``CI`` is set: then it fails, so CI cannot silently stop checking
against a foreign server. It serves ``/authorize`` (approving at once), ``/token`` (PKCE
checked) and ``/userinfo`` at its root.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support.oauth import ci_required

ROOT = Path(__file__).resolve().parents[2]
MOCK_BIN = ROOT / ".fixtures-cache" / "node" / "node_modules" / ".bin" / "oauth2-mock-server"
#: bound on the server starting, and on it stopping
START_S = 20.0
STOP_S = 5.0


@asynccontextmanager
async def oauth2_mock_server() -> AsyncIterator[str]:
    """Start oauth2-mock-server on 127.0.0.1 (any free port); yields its base URL."""
    if not MOCK_BIN.exists():
        reason = f"oauth2-mock-server is not installed ({MOCK_BIN}); run scripts/ci-oauth-mock.sh"
        if ci_required():
            pytest.fail(reason)
        pytest.skip(reason)
    proc = await asyncio.create_subprocess_exec(
        str(MOCK_BIN), "-a", "127.0.0.1", "-p", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        url = ""
        async with asyncio.timeout(START_S):
            while not url:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError("oauth2-mock-server exited before listening")
                if "listening on " in line:
                    url = line.rsplit("listening on ", 1)[1].strip()
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                async with asyncio.timeout(STOP_S):
                    await proc.wait()
