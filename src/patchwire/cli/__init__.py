"""The ``patchwire`` command."""

from patchwire.cli._app import app, main

__all__ = ["app", "main"]
