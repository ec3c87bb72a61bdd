"""The scope a request to an app needs, as its key check finds it (the routes' own
declarations), for tests of which route needs what."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from patchwire import Patchwire
from patchwire.access import required_scope
from patchwire.server import create_app
from tests.support.settings import local_settings


def scope_of(app: FastAPI, method: str, path: str) -> str:
    """What ``method path`` needs on ``app``: a scope name or ``public``."""
    return required_scope(app.router.routes, {"type": "http", "method": method.upper(),
                                              "path": path, "root_path": "",
                                              "headers": []})


def full_app(tmp_path: Path) -> FastAPI:
    """``create_app`` over default settings in ``tmp_path``: every route, never served."""
    return create_app(Patchwire(local_settings(tmp_path)))
