from django.apps import AppConfig


class DbMigrationsConfig(AppConfig):
    name = "dbmigrations"
    verbose_name = "SQL migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .lint import checks as lint_checks  # noqa: F401  (lint findings as W1NN warnings)
