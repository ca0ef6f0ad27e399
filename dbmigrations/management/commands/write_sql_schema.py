from pathlib import Path

from dbmigrations import drift, schemafile
from dbmigrations.management.base import SqlCommand
from dbmigrations.scratch import server_params


class Command(SqlCommand):
    help = (
        "Write the database's schema to a reviewable, loadable SQL file (default schema.sql, or SQL_SCHEMA_FILE) "
        "with pg_dump, without the ledger and Django's tables; --check exits 1 when the file is not current."
    )
    examples = ("", "--check          # CI: is the committed schema.sql current?", "--output db/structure.sql")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--output", type=Path, help="The file to write (default: SQL_SCHEMA_FILE or schema.sql).")
        parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 if the file differs.")

    def handle(self, *args, **options):
        path = options["output"] or schemafile.default_path()
        session = self.connect(options["database"])
        text = schemafile.dump(server_params(options["database"]), session.server_version, drift.ignored_tables())
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if options["check"]:
            if current != text:
                self.fail(
                    f"{path} is not current: run `python manage.py write_sql_schema` after migrating, and "
                    "commit it with the migration",
                    1,
                )
            return self.stdout.write(f"{path} is current.")
        if current == text:
            return self.stdout.write(f"{path} is already current.")
        path.write_text(text, encoding="utf-8")
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}."))
