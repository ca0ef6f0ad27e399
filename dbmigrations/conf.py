"""Settings the app reads, one function each, read when called (never at import)."""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from .database import is_production as _is_production


def base_dir() -> Path:
    """The project root (``settings.BASE_DIR``), or the working directory."""
    return Path(getattr(settings, "BASE_DIR", Path.cwd()))


def migrations_dir() -> Path:
    """``SQL_MIGRATIONS_DIR`` (default ``<BASE_DIR>/migrations``)."""
    return Path(getattr(settings, "SQL_MIGRATIONS_DIR", None) or base_dir() / "migrations")


def seeds_dir() -> Path:
    """``SQL_SEEDS_DIR`` (default ``<BASE_DIR>/seeds``); development seeds live in ``development/``."""
    return Path(getattr(settings, "SQL_SEEDS_DIR", None) or base_dir() / "seeds")


def embedded_data_dir() -> Path:
    """``SQL_EMBEDDED_PGDATA`` (default ``<BASE_DIR>/.pgdata``): the embedded server's data."""
    return Path(getattr(settings, "SQL_EMBEDDED_PGDATA", None) or base_dir() / ".pgdata")


def is_production() -> bool:
    """``NODE_ENV=production`` or ``VERCEL_ENV=production`` in the environment, now."""
    return _is_production(os.environ)


def is_vercel_build() -> bool:
    """``VERCEL=1``: the build on Vercel, which implies the deploy mode."""
    return (os.environ.get("VERCEL") or "").strip() == "1"
