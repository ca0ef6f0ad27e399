"""``manage.py dbshell`` on the embedded server: psql pointed at its unix socket."""

from __future__ import annotations

from ... import conf, embedded
from ..postgresql import client
from ..postgresql.base import check_usable


class DatabaseClient(client.DatabaseClient):
    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        check_usable(settings_dict)  # never start the embedded server in production
        socket_dir = embedded.ensure_server(conf.embedded_data_dir())
        settings_dict = {**settings_dict, "HOST": socket_dir, "PORT": "", "USER": "postgres"}
        return super().settings_to_cmd_args_env(settings_dict, parameters)
