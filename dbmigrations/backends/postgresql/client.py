"""``manage.py dbshell``: refused like a connection when the configuration is broken."""

from __future__ import annotations

from django.db.backends.postgresql import client


class DatabaseClient(client.DatabaseClient):
    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        from .base import check_usable

        check_usable(settings_dict)
        return super().settings_to_cmd_args_env(settings_dict, parameters)
