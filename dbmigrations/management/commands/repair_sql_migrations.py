from dbmigrations import loader
from dbmigrations.executor import MigrationExecutor
from dbmigrations.management.base import SqlCommand, version_number


class Command(SqlCommand):
    help = (
        "Record the current checksums of modified applied migrations (after a human checked them); "
        "with --forget-missing, delete ledger rows whose file is gone. One transaction, under the migration lock."
    )
    examples = ("", "--forget-missing")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--forget-missing",
            action="store_true",
            help="Also remove ledger rows whose migration file no longer exists.",
        )
        parser.add_argument(
            "--adopt-replaced",
            type=version_number,
            action="append",
            default=[],
            metavar="VERSION",
            help="Record the file that now holds VERSION (applied from another file) as applied, "
            "WITHOUT running its SQL, marked fake. Only when its changes are already in the "
            "database. Repeatable.",
        )
        self.add_lock_timeout_argument(parser)

    def handle(self, *args, **options):
        files = loader.migration_files()
        executor = MigrationExecutor(self.connect(options["database"]), lock_timeout=options["lock_timeout"])
        result = executor.repair(
            files, forget_missing=options["forget_missing"], adopt_replaced=options["adopt_replaced"]
        )
        for entry in result.recorded:
            self.stdout.write(f"Recorded new checksum of {entry.name}")
        for entry in result.forgotten:
            self.stdout.write(f"Forgot {entry.name} (file missing)")
        for entry in result.adopted:
            self.stdout.write(
                self.style.WARNING(
                    f"Recorded {entry.file.path.name} as version {entry.version} without running its SQL (fake; "
                    f"{entry.row.filename} had been applied)"
                )
            )
        for entry in result.still_missing:
            self.stderr.write(f"{entry.name} is in the ledger but its file is missing (use --forget-missing)")
        for entry in result.still_replaced:
            self.stderr.write(
                f"{entry.file.path.name} holds version {entry.version}, applied from {entry.row.filename}: not "
                "recorded, its SQL never ran. Rename it to a free version (apply_sql_migrations names one); only if "
                f"its changes are already in the database, pass --adopt-replaced {entry.version}."
            )
        changed = len(result.recorded) + len(result.forgotten) + len(result.adopted)
        self.stdout.write(f"Repaired {changed} row(s)." if changed else "Nothing to repair.")
