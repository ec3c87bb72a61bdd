"""One rule refuses the forms another site's page posts to the dashboard: the app's
SiteGuard, in front of every route. The dashboard has no check of its own, so it is mounted
only on an app with that guard (``create_app``'s); the posts themselves are in
tests/dashboard/test_pages.py (``test_posts_from_another_site_are_refused``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from patchwire import Patchwire
from patchwire.dashboard import mount_dashboard
from patchwire.errors import ConfigError
from patchwire.flows import create_engine
from patchwire.server import SiteGuard
from patchwire.tools import ToolInvoker
from tests.support.settings import local_settings


def test_the_dashboard_is_refused_on_an_app_without_the_site_guard(tmp_path: Path) -> None:
    pw = Patchwire(local_settings(tmp_path / "home"))
    engine, invoker = create_engine(pw, {}), ToolInvoker(pw)
    bare = FastAPI()
    before = list(bare.routes)

    with pytest.raises(ConfigError, match="SiteGuard"):
        mount_dashboard(bare, pw, engine=engine, invoker=invoker)
    assert bare.routes == before  # no page was added

    guarded = FastAPI()
    guarded.add_middleware(SiteGuard)
    mount_dashboard(guarded, pw, engine=engine, invoker=invoker)
    assert any(getattr(r, "path", None) == "/assets" for r in guarded.routes)
