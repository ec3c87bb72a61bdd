"""Shared pytest configuration. Fixture families live in their own modules (plugins)."""

pytest_plugins = ["tests.store_fixtures", "tests.temporal_fixtures"]
