from dbmigrations import loader
from dbmigrations.executor import MigrationExecutor
from dbmigrations.management.base import SqlCommand


class Command(SqlCommand):
    help = ("Record the current checksums of modified applied migrations (after a human checked them); "
            "with --forget-missing, delete ledger rows whose file is gone. One transaction, under the migration lock.")
    examples = ('', '--forget-missing')

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--forget-missing", action="store_true",
                            help="Also remove ledger rows whose migration file no longer exists.")
        self.add_lock_timeout_argument(parser)

    def handle(self, *args, **options):
        files = loader.migration_files()
        executor = MigrationExecutor(self.connect(options["database"]), lock_timeout=options["lock_timeout"])
        result = executor.repair(files, forget_missing=options["forget_missing"])
        for entry in result.recorded:
            self.stdout.write(f"Recorded new checksum of {entry.name}")
        for entry in result.forgotten:
            self.stdout.write(f"Forgot {entry.name} (file missing)")
        for entry in result.still_missing:
            self.stderr.write(f"{entry.name} is in the ledger but its file is missing (use --forget-missing)")
        changed = len(result.recorded) + len(result.forgotten)
        self.stdout.write(f"Repaired {changed} row(s)." if changed else "Nothing to repair.")
