"""Shared pytest configuration. Fixture families live in tests.support modules (plugins)."""

pytest_plugins = [
    "tests.support.sandboxes",
    "tests.support.store",
    "tests.support.temporal",
    "tests.support.dashboard",
]
