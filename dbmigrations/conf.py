"""Settings the app reads: one function each, read when called (never at import).

Every environment variable goes through :func:`variable`: whitespace stripped,
empty = unset (Vercel leaves empty variables behind).

Folders (``SQL_MIGRATIONS_DIR``, ``SQL_SEEDS_DIR``, ``SQL_EMBEDDED_PGDATA``): the
Django setting of that name when the project sets it (not empty), else the
environment variable, else the default under ``BASE_DIR``. A relative path is
relative to ``BASE_DIR``, never to the working directory, and every folder is
returned absolute, so a message can say exactly which folder was tried.

Production is one rule: ``NODE_ENV`` or ``VERCEL_ENV`` equal to ``production``
in any case. :func:`refuse_in_production` words every refusal the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings

from .exceptions import ConfigurationError, ProductionGuard

PRODUCTION_VARIABLES = ("NODE_ENV", "VERCEL_ENV")
FOLDER_DEFAULTS = {"SQL_MIGRATIONS_DIR": "migrations", "SQL_SEEDS_DIR": "seeds", "SQL_EMBEDDED_PGDATA": ".pgdata"}


def variable(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The environment variable ``name`` (of ``environ``, default ``os.environ``), stripped; '' when unset or empty."""
    return ((os.environ if environ is None else environ).get(name) or "").strip()


def base_dir() -> Path:
    """The project root (``settings.BASE_DIR``, or the working directory), absolute."""
    return Path(os.path.abspath(getattr(settings, "BASE_DIR", None) or Path.cwd()))


def folder_source(name: str) -> str:
    """Where the folder setting ``name`` comes from: ``settings.NAME``, ``NAME=value`` (environment) or ``default``."""
    if str(getattr(settings, name, None) or "").strip():
        return f"settings.{name}"
    value = variable(name)
    return f"{name}={value}" if value else "default"


def _folder(name: str) -> Path:
    source = folder_source(name)
    if source == "default":
        value = FOLDER_DEFAULTS[name]
    elif source.startswith("settings."):
        value = str(getattr(settings, name)).strip()
    else:
        value = variable(name)
    return Path(os.path.abspath(base_dir() / Path(value).expanduser()))


def migrations_dir() -> Path:
    """``SQL_MIGRATIONS_DIR`` (default ``<BASE_DIR>/migrations``), absolute."""
    return _folder("SQL_MIGRATIONS_DIR")


def seeds_dir() -> Path:
    """``SQL_SEEDS_DIR`` (default ``<BASE_DIR>/seeds``), absolute; development seeds live in ``development/``."""
    return _folder("SQL_SEEDS_DIR")


def ledger_schema() -> str:
    """``SQL_MIGRATIONS_SCHEMA`` (default ``public``): the schema that holds ``schema_migrations``.

    The Django setting of that name when the project sets it (not empty), else the
    environment variable. The ledger is always addressed by this schema, never found
    through ``search_path``.
    """
    configured = str(getattr(settings, "SQL_MIGRATIONS_SCHEMA", None) or "").strip()
    return configured or variable("SQL_MIGRATIONS_SCHEMA") or "public"


def embedded_data_dir() -> Path:
    """``SQL_EMBEDDED_PGDATA`` (default ``<BASE_DIR>/.pgdata``), absolute: the embedded server's data."""
    return _folder("SQL_EMBEDDED_PGDATA")


def production_cause(environ: Mapping[str, str] | None = None) -> str:
    """``"NODE_ENV=Production"``: the variable and value that make this production; '' when it is not."""
    for name in PRODUCTION_VARIABLES:
        value = variable(name, environ)
        if value.lower() == "production":
            return f"{name}={value}"
    return ""


def is_production(environ: Mapping[str, str] | None = None) -> bool:
    """``NODE_ENV`` or ``VERCEL_ENV`` equal to ``production``, in any case."""
    return bool(production_cause(environ))


def production_refusal(subject: str, reason: str, environ: Mapping[str, str] | None = None) -> str:
    """The one wording of a production refusal: ``<subject> refused in production (NODE_ENV=Production): <reason>``."""
    cause = production_cause(environ) or "NODE_ENV/VERCEL_ENV=production"
    return f"{subject} refused in production ({cause}): {reason} Nothing was changed."


def refuse_in_production(subject: str, reason: str, environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ProductionGuard` (exit 2) with :func:`production_refusal`'s message when in production."""
    if is_production(environ):
        raise ProductionGuard(production_refusal(subject, reason, environ))


def is_vercel_build(environ: Mapping[str, str] | None = None) -> bool:
    """``VERCEL=1``: a build or function on Vercel; implies the deploy mode."""
    return variable("VERCEL", environ) == "1"


def vercel_env(environ: Mapping[str, str] | None = None) -> str:
    """``VERCEL_ENV`` as set (``production``, ``preview``, ``development``); '' when unset."""
    return variable("VERCEL_ENV", environ)


def is_preview(environ: Mapping[str, str] | None = None) -> bool:
    """``VERCEL_ENV=preview`` (any case): a Vercel preview deployment."""
    return vercel_env(environ).lower() == "preview"


def migrations_on_preview(environ: Mapping[str, str] | None = None) -> bool:
    """``SQL_MIGRATIONS_ON_PREVIEW=1``: apply migrations on preview deployments too."""
    return variable("SQL_MIGRATIONS_ON_PREVIEW", environ) == "1"


DEFAULT_DDL_LOCK_TIMEOUT = 1.0
DEFAULT_LOCK_RETRY_BUDGET = 300.0


def schema_check_before_apply(environ: Mapping[str, str] | None = None) -> bool:
    """``SQL_SCHEMA_CHECK_ON_DEPLOY=1``: check for schema drift before applying (costs a scratch database)."""
    return variable("SQL_SCHEMA_CHECK_ON_DEPLOY", environ) == "1"


def ddl_lock_timeout() -> float:
    """``SQL_MIGRATIONS_DDL_LOCK_TIMEOUT`` seconds (default 1): the longest a migration's statement waits
    for a table lock before its transaction is rolled back and retried; 0 = the server's own lock_timeout."""
    return _seconds("SQL_MIGRATIONS_DDL_LOCK_TIMEOUT", DEFAULT_DDL_LOCK_TIMEOUT)


def lock_retry_budget() -> float:
    """``SQL_MIGRATIONS_LOCK_RETRY_BUDGET`` seconds (default 300): how long a migration keeps retrying after
    DDL lock timeouts before it fails naming the blockers; 0 = no retry."""
    return _seconds("SQL_MIGRATIONS_LOCK_RETRY_BUDGET", DEFAULT_LOCK_RETRY_BUDGET)


def _seconds(name: str, default: float) -> float:
    """A number of seconds ≥ 0 from the Django setting ``name``, else the environment; empty = unset."""
    setting = getattr(settings, name, None)
    value = ("" if setting is None else str(setting).strip()) or variable(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise ConfigurationError(f"{name}={value!r} is not a number of seconds (0 or more)")
    return number
