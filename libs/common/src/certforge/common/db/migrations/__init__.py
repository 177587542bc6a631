"""Alembic migrations of the Certforge schema, runnable from code (`upgrade(url)`).

Run by `make run` before the services start, by the Kubernetes migration Job, and by tests.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from certforge.common.db.engine import async_url

_HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Blocking: call it from a thread inside an event loop."""
    command.upgrade(alembic_config(database_url), revision)


def main() -> None:
    """`certforge-migrate`: upgrade the database named by CERTFORGE_DATABASE_URL."""
    from certforge.common.settings import CommonSettings

    settings = CommonSettings.load_or_exit("certforge-migrate")
    upgrade(settings.database_url.get_secret_value())
    print("database schema is up to date")
