"""The embedded default database: a PostgreSQL server kept in a git-ignored folder.

Binaries come from the ``pgserver`` wheel (it also works as root, by running the
server as a dedicated system user). The server listens on a unix socket inside
the data folder only, is started on first use and left running, so later runs
reuse it and find the earlier runs' work. ``manage.py embedded_db stop`` stops it.
A run that finds it running reads its socket from ``postmaster.pid`` and leaves
``pgserver`` (the module, its lock file and its bookkeeping) unimported: it only starts servers.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from .exceptions import ConfigurationError

logger = logging.getLogger("dbmigrations")


def ensure_server(data_dir: Path) -> str:
    """Start (or find running) the embedded server for ``data_dir``; return its socket directory."""
    data_dir = Path(data_dir).resolve()
    running = running_socket_dir(data_dir)
    if running is not None:
        return running
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


def running_socket_dir(data_dir: Path) -> str | None:
    """The socket directory of the server of ``data_dir`` if it runs and accepts connections, else None.

    Read from ``postmaster.pid`` as PostgreSQL writes it (line 1 the process id, line 5 the
    socket directory, line 8 the status) and judged as ``pgserver`` judges it: the process exists.
    """
    try:
        lines = (Path(data_dir) / "postmaster.pid").read_text().splitlines()
        pid, socket_dir, status = int(lines[0]), lines[4].strip(), lines[7].strip()
    except (OSError, ValueError, IndexError):  # not running, starting, or not a server of ours
        return None
    if status != "ready" or not socket_dir:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # left behind by a server that did not stop cleanly
        return None
    except PermissionError:  # running as another user (pgserver's own, when we are root)
        pass
    return socket_dir


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
    return hasattr(os, "geteuid") and os.geteuid() == 0
