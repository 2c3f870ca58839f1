"""Alembic environment: always run programmatically with a connection from `gateway.store.migrate`."""

from __future__ import annotations

from alembic import context

from gateway.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached if someone runs bare `alembic`
    raise RuntimeError("run migrations through `care-gateway db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
