"""The embedded default database: a PostgreSQL server kept in a git-ignored folder.

Binaries come from the ``pgserver`` wheel (it also works as root, by running the
server as a dedicated system user). The server listens on a unix socket inside
the data folder only, is started on first use and left running, so later runs
reuse it and find the earlier runs' work. ``manage.py embedded_db stop`` stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .exceptions import ConfigurationError

logger = logging.getLogger("dbmigrations")


def ensure_server(data_dir: Path) -> str:
    """Start (or find running) the embedded server for ``data_dir``; return its socket directory."""
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            import pgserver
    except ImportError:
        raise ConfigurationError(
            "no database configured, and the embedded development server is not installed: set DATABASE_URL, "
            "or install it with: pip install -e '.[embedded]' (the quick start's '.[dev]' includes it)"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    info = server.get_postmaster_info()
    logger.info("embedded PostgreSQL running from %s (pid %s)", data_dir, info.pid)
    return str(info.socket_dir)


def url(socket_dir: str, name: str = "bestrong") -> str:
    """A libpq URL of database ``name`` on the embedded server (for psql, ``dbshell`` and the banner)."""
    return f"postgresql://postgres@/{name}?host={socket_dir}"


def is_running(data_dir: Path) -> bool:
    """Whether the embedded server of ``data_dir`` runs (its ``postmaster.pid`` is there)."""
    return (Path(data_dir) / "postmaster.pid").exists()


def stop_server(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    data_dir = Path(data_dir).resolve()
    if not is_running(data_dir):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import pg_ctl
        from pgserver.postgres_server import PostgresServer
    user = "pgserver" if _is_root() else None
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data_dir, user=user)
    PostgresServer._instances.pop(data_dir, None)
    return True


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
