"""Alembic migrations for the Patchwire store (applied by ``Store.open``)."""
