"""Alembic environment: plain SQL migrations run over the psycopg 3 driver."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Two processes starting at once (api + worker) must not both migrate.
        connection.exec_driver_sql("SELECT pg_advisory_lock(7265031)")
        try:
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(7265031)")
            connection.commit()


run_migrations_online()
