"""A schema file for review (Rails' ``structure.sql``, dbmate's ``schema.sql``), written with ``pg_dump``.

Deterministic and loadable: ``pg_dump --schema-only --no-owner --no-privileges`` of every user
schema, without the ledger and Django's own tables, with the lines that change from one run to
the next (tool versions, ``\\restrict`` keys) removed. Only a ``pg_dump`` whose major version is
the server's is used (an older one refuses a newer server; a newer one prints differently).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from psycopg.conninfo import make_conninfo

from . import conf
from .database import scrub
from .exceptions import ConfigurationError, DatabaseUnavailable

VOLATILE = re.compile(r"^(-- Dumped (from|by) .*|\\(un)?restrict .*)$")


def default_path() -> Path:
    """``SQL_SCHEMA_FILE``, default ``<BASE_DIR>/schema.sql``."""
    configured = conf.variable("SQL_SCHEMA_FILE")
    path = Path(configured) if configured else Path("schema.sql")
    return path if path.is_absolute() else conf.base_dir() / path


def find_pg_dump(server_version: int) -> str:
    """A ``pg_dump`` of the server's major version: the embedded server's, one on PATH, or Debian's."""
    major = server_version // 10000
    candidates = []
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        candidates.append(str(Path(POSTGRES_BIN_PATH) / "pg_dump"))
    except Exception:  # not installed (a deploy), or no binaries for this platform
        pass
    candidates += [shutil.which("pg_dump") or "", f"/usr/lib/postgresql/{major}/bin/pg_dump"]
    for candidate in filter(None, candidates):
        if not os.access(candidate, os.X_OK):
            continue
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
        found = re.search(r"(\d+)(?:\.\d+)?", version)
        if found and int(found.group(1)) == major:
            return candidate
    raise ConfigurationError(
        f"no pg_dump of PostgreSQL {major} found (the server's version): install Debian's "
        f"postgresql-client-{major}, or run against the embedded server"
    )


def dump(params: dict, server_version: int, excluded_tables: frozenset[str]) -> str:
    """The schema of the database of libpq ``params``, as deterministic SQL text."""
    pg_dump = find_pg_dump(server_version)
    args = [pg_dump, "--schema-only", "--no-owner", "--no-privileges", "--no-tablespaces"]
    args += [f"--exclude-table={_pattern(table)}" for table in sorted(excluded_tables)]
    env = {**os.environ, "PGPASSWORD": str(params.get("password") or "")}
    conninfo = {k: str(v) for k, v in params.items() if k != "password" and v not in (None, "")}
    args.append("--dbname=" + make_conninfo(**conninfo))  # quotes what needs it (a ' in application_name)
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode:
        message = (proc.stderr.strip().splitlines() or ["pg_dump failed"])[0]
        raise DatabaseUnavailable(f"pg_dump failed: {scrub(message, str(params.get('password') or ''))}")
    lines = [line for line in proc.stdout.splitlines() if not VOLATILE.match(line)]
    text = "\n".join(lines).strip() + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def _pattern(table: str) -> str:
    """A pg_dump pattern matching exactly one table named as drift names it (``ops.t``, or ``t`` in public)."""
    schema, name = table.split(".", 1) if "." in table else ("public", table)
    return '"{}"."{}"'.format(schema.replace('"', '""'), name.replace('"', '""'))
