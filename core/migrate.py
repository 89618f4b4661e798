"""Programmatic Alembic upgrades, for the launcher and the test harness.

The configuration is built here instead of read from alembic.ini: that file sits at the root of
a checkout, for the ``alembic`` command line, and an installed wheel has no such root. The
migration scripts themselves ship in the wheel, in infra/migrations beside this package.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "infra" / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    # Option values are interpolated by configparser, so a literal "%" is written "%%".
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    # Keep the caller's logging set-up (structlog); without a file there is none of Alembic's.
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking; from async code call it through ``asyncio.to_thread``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
