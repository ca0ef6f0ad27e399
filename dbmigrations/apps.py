from django.apps import AppConfig


class DbMigrationsConfig(AppConfig):
    name = "dbmigrations"
    verbose_name = "SQL migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks, the lint's W1NN warnings too)
