from dbmigrations.createdb import create_database
from dbmigrations.management.base import SqlCommand


class Command(SqlCommand):
    help = (
        "Create the configured database if it does not exist yet (like dbmate create); then run "
        "apply_sql_migrations. Never in production."
    )
    examples = ("", "&& python manage.py apply_sql_migrations")

    def handle(self, *args, **options):
        target = self.target(options["database"])
        if self.verbosity >= 1:
            self.announce_database("database", target)
        name = target.settings.get("NAME")
        if create_database(options["database"]):
            self.stdout.write(self.style.SUCCESS(f"Created database {name}."))
        else:
            self.stdout.write(f"Database {name} already exists; nothing to do.")
