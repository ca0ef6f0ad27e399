"""Django's PostgreSQL backend that refuses to connect when the configuration is broken.

``database_settings()`` keeps a configuration error in the settings (``CONFIG_ERROR``)
so that ``manage.py`` still starts. Django's own commands (``migrate``, ``shell``,
``dbshell``, ``runserver``…) connect through the backend, not through the tool's
commands: here the error becomes ``ImproperlyConfigured`` with the tool's one-line
message, before libpq is asked to connect to a server that was never configured.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base

from ...database import connection_refusal
from .client import DatabaseClient


def check_usable(settings_dict) -> None:
    """Raise ``ImproperlyConfigured`` (the tool's message) when this ``DATABASES`` entry must not be used."""
    refusal = connection_refusal(settings_dict)
    if refusal is not None:
        raise ImproperlyConfigured(str(refusal))


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient

    def get_connection_params(self):
        check_usable(self.settings_dict)
        return super().get_connection_params()
