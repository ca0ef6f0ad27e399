from dbmigrations import conf, ledger
from dbmigrations.discovery import discover
from dbmigrations.management.base import SqlCommand
from dbmigrations.migrator import migration_status
from dbmigrations.plan import drifted, missing


class Command(SqlCommand):
    help = ("Record the current checksums of modified applied migrations (after a human checked them); "
            "with --forget-missing, delete ledger rows whose file is gone.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--forget-missing", action="store_true",
                            help="Also remove ledger rows whose migration file no longer exists.")

    def handle(self, *args, **options):
        session = self.connect(options["database"])
        entries = migration_status(session, discover(conf.migrations_dir()))
        changed = 0
        for entry in drifted(entries):
            ledger.update_checksum(session, entry.row.version, entry.file.checksum)
            self.stdout.write(f"Recorded new checksum of {entry.name}")
            changed += 1
        gone = missing(entries)
        for entry in gone:
            if options["forget_missing"]:
                ledger.forget(session, entry.row.version)
                self.stdout.write(f"Forgot {entry.name} (file missing)")
                changed += 1
            else:
                self.stderr.write(f"{entry.name} is in the ledger but its file is missing (use --forget-missing)")
        self.stdout.write(f"Repaired {changed} row(s)." if changed else "Nothing to repair.")
