from django.core.management.base import BaseCommand

from dbmigrations import conf, embedded


class Command(BaseCommand):
    help = "Start, stop or locate the embedded development PostgreSQL (data in SQL_EMBEDDED_PGDATA)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "url"], help="start it, stop it, or print its URL")

    def handle(self, *args, action, **options):
        data_dir = conf.embedded_data_dir()
        if action == "stop":
            stopped = embedded.stop_server(data_dir)
            self.stdout.write(f"Stopped the embedded server ({data_dir})." if stopped else "Not running.")
            return
        socket_dir = embedded.ensure_server(data_dir)
        if action == "url":
            self.stdout.write(embedded.url(socket_dir))
        else:
            self.stdout.write(f"Embedded server running, socket in {socket_dir} (data in {data_dir}).")
