from dbmigrations import conf
from dbmigrations.management.base import SqlCommand
from dbmigrations.scaffold import create_migration


class Command(SqlCommand):
    help = ("Create SQL_MIGRATIONS_DIR/NNN_description.sql (next number) from the spec's template; "
            "with --down also its .down.sql. Never overwrites a file.")
    examples = ('add_goals_table --down',)
    uses_database = False

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("description", help="What the migration does, in snake_case (e.g. add_goals_table).")
        parser.add_argument("--down", action="store_true", help="Also create the matching .down.sql.")

    def handle(self, *args, **options):
        scaffold = create_migration(conf.migrations_dir(), options["description"], down=options["down"])
        for path in scaffold.paths:
            self.stdout.write(self.style.SUCCESS(f"Created {path}"))
        if self.verbosity >= 1:
            self.stdout.write(
                "Write the SQL in place of the TODO comment: an empty (comment-only) migration is refused "
                "by apply_sql_migrations, so the file cannot be applied until it is filled in."
            )
