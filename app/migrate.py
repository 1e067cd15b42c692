"""Running and inspecting Alembic migrations from inside the service."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def pending_message(connection: Connection) -> str | None:
    """None when the database is at head; otherwise what is wrong and how to fix it."""
    current = current_revisions(connection)
    heads = head_revisions()
    if current == heads:
        return None
    if not current:
        return "database has no exhale tables yet; run `exhale migrate`"
    return (
        f"database is at migration {', '.join(sorted(current))} but the code expects "
        f"{', '.join(sorted(heads))}; run `exhale migrate`"
    )
