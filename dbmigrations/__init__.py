"""Numbered SQL migrations and seeds for PostgreSQL, run from Django management commands."""

# Written here only: pyproject.toml reads it, and `--version` prints it without asking the installed metadata.
__version__ = "0.1.0"
