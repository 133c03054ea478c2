"""Alembic's environment for compute-recover: always run on the connection `db upgrade` opened
(so a password never passes through a config file), with our own version table, which can sit
beside Nova's `alembic_version` without touching it."""

from alembic import context

from recovery.db.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
