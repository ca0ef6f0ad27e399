"""Numbered SQL migrations and seeds for PostgreSQL, run from Django management commands."""
