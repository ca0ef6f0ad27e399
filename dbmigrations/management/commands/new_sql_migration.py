from dbmigrations import api, conf
from dbmigrations.exceptions import DbMigrationsError
from dbmigrations.management.base import SqlCommand
from dbmigrations.scaffold import create_migration


class Command(SqlCommand):
    help = (
        "Create SQL_MIGRATIONS_DIR/NNN_description.sql (next number, skipping every version on disk or in the "
        "database's ledger) from the spec's template; with --down also its .down.sql. Never overwrites a file."
    )
    examples = ("add_goals_table --down",)

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("description", help="What the migration does, in snake_case (e.g. add_goals_table).")
        parser.add_argument("--down", action="store_true", help="Also create the matching .down.sql.")

    def handle(self, *args, **options):
        try:
            known = api.recorded_versions(options["database"])
        except DbMigrationsError as error:
            known = []
            self.stderr.write(
                self.style.WARNING(
                    f"Note: numbered from the files on disk only ({error}): a version applied from a file that is not "
                    "on disk (another branch's) could be reused; `apply_sql_migrations` refuses it if so."
                )
            )
        scaffold = create_migration(conf.migrations_dir(), options["description"], down=options["down"], known=known)
        for path in scaffold.paths:
            self.stdout.write(self.style.SUCCESS(f"Created {path}"))
        if self.verbosity >= 1:
            self.stdout.write(
                "Write the SQL in place of the TODO comment: an empty (comment-only) migration is refused "
                "by apply_sql_migrations, so the file cannot be applied until it is filled in."
            )
