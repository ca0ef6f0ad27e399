"""``runserver`` that also warns about pending SQL migrations, as Django does for its own.

Django runs database-tagged checks only when asked (``check --database``), so the
ledger warnings (W001 pending, W002 modified, W003 missing, W004 unreadable) come
from ``check_migrations()``, which ``runserver`` calls on start. They are printed
the way Django prints check messages (``file: (id) message`` and a ``HINT:`` line)
and honour ``SILENCED_SYSTEM_CHECKS``. List ``dbmigrations`` before
``django.contrib.staticfiles`` so this command wins; static files are still served
(it extends staticfiles' ``runserver`` when installed).
"""

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import (
        Command as BaseRunserver,
    )
else:  # pragma: no cover - depends on the host project
    from django.core.management.commands.runserver import Command as BaseRunserver


class Command(BaseRunserver):
    def check_migrations(self):
        super().check_migrations()
        from dbmigrations import loader
        from dbmigrations.checks import ledger_warnings
        from dbmigrations.exceptions import ConfigurationError, InvalidFiles

        try:
            files = loader.migration_files()
        except (InvalidFiles, ConfigurationError) as error:
            self.stdout.write(self.style.NOTICE(f"\n{error}\n"))
            return
        silenced = set(settings.SILENCED_SYSTEM_CHECKS)
        for warning in ledger_warnings(DEFAULT_DB_ALIAS, files):
            if warning.id not in silenced:
                # Django's own form (CheckMessage.__str__), without its "?" when no file is concerned.
                text = str(warning) if warning.obj is not None else str(warning).removeprefix("?: ")
                self.stdout.write(self.style.NOTICE(f"\n{text}"))
