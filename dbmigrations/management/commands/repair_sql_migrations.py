from dbmigrations import conf
from dbmigrations.discovery import discover
from dbmigrations.management.base import SqlCommand
from dbmigrations.migrator import repair


class Command(SqlCommand):
    help = ("Record the current checksums of modified applied migrations (after a human checked them); "
            "with --forget-missing, delete ledger rows whose file is gone. One transaction, under the migration lock.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--forget-missing", action="store_true",
                            help="Also remove ledger rows whose migration file no longer exists.")
        self.add_lock_timeout_argument(parser)

    def handle(self, *args, **options):
        files = discover(conf.migrations_dir(), parse=False)
        result = repair(self.connect(options["database"]), files, forget_missing=options["forget_missing"],
                        lock_timeout=options["lock_timeout"])
        for entry in result.recorded:
            self.stdout.write(f"Recorded new checksum of {entry.name}")
        for entry in result.forgotten:
            self.stdout.write(f"Forgot {entry.name} (file missing)")
        for entry in result.still_missing:
            self.stderr.write(f"{entry.name} is in the ledger but its file is missing (use --forget-missing)")
        changed = len(result.recorded) + len(result.forgotten)
        self.stdout.write(f"Repaired {changed} row(s)." if changed else "Nothing to repair.")
