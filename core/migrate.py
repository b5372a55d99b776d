"""Bring a database to the newest schema with Alembic (the same migrations on SQLite and Postgres)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from core.config import PROJECT_ROOT


def alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def main() -> None:
    """`python -m core.migrate`: bring DATABASE_URL to the newest schema (a one-shot deploy step)."""
    from core.config import get_settings
    from core.db import make_engine

    upgrade(make_engine(get_settings().effective_database_url))


if __name__ == "__main__":
    main()
