"""Bring a database to the newest schema with Alembic (the same migrations on SQLite and Postgres).

Alembic is imported only to migrate: checking that a database is current (every CLI command does) reads the
newest revision off the migration files and the database's alembic_version row, half a second less a command.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from core.db import READ_ONLY_OPTION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Every revision file (core/migrations/script.py.mako) names itself and the revision before it so.
_REVISION = re.compile(r"^revision: str = '([^']+)'$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision: str \| None = (?:'([^']+)'|None)$", re.MULTILINE)


def alembic_config(url: str) -> Config:
    """Alembic's settings for `url`, without alembic.ini (which serves the `alembic` command in a checkout)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@lru_cache(maxsize=1)
def newest_revision() -> str | None:
    """The head revision, read off the revision files; None when they do not form a single line (then Alembic
    decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision[1])
        if down[1]:
            parents.add(down[1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest revision: checked in a read-only transaction, so it does not
    queue behind a writer holding SQLite's write lock."""
    head = newest_revision()
    if head is None:
        return _alembic_heads(engine) == _database_heads(engine)
    return _database_heads(engine) == {head}


def _database_heads(engine: Engine) -> set[str]:
    with engine.execution_options(**{READ_ONLY_OPTION: True}).connect() as connection:
        try:
            found = {str(row[0]) for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
        except DBAPIError:  # no alembic_version table: a new database
            found = set()
        connection.rollback()
    return found


def _alembic_heads(engine: Engine) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())


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
