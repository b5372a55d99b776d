"""Bring a database to the newest schema with Alembic (the same migrations on SQLite and Postgres)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from core.db import READ_ONLY_OPTION

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """Alembic's settings for `url`, without alembic.ini (which serves the `alembic` command in a checkout)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest revision: checked in a read-only transaction, so it does not
    queue behind a writer holding SQLite's write lock."""
    heads = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    with engine.execution_options(**{READ_ONLY_OPTION: True}).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
        connection.rollback()
    return current == heads


def ensure_current(engine: Engine) -> None:
    """Upgrade only when behind: a command that only reads never takes the write lock for a no-op upgrade."""
    if not is_current(engine):
        upgrade(engine)


def main() -> None:
    """`python -m core.migrate`: bring DATABASE_URL to the newest schema (a one-shot deploy step)."""
    from core.config import get_settings
    from core.db import make_engine

    upgrade(make_engine(get_settings().effective_database_url))


if __name__ == "__main__":
    main()
