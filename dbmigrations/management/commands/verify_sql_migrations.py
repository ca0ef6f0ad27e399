import json
import signal
import threading
from contextlib import contextmanager

from django.core.management.base import CommandError

from dbmigrations import annotations, loader
from dbmigrations.exceptions import Interrupted
from dbmigrations.management.base import SqlCommand
from dbmigrations.scratch import server_params
from dbmigrations.verify import verify

INTERRUPTED = 130
YES_NO = {True: "yes", False: "NO", None: "-"}
SECTIONS = {
    "migration": "Migrations (apply, run again, down → up):",
    "seed": "Development seeds (run twice; the second run must not change row counts):",
}


class Command(SqlCommand):
    help = (
        "Prove on a throwaway database that every migration is idempotent (run twice) and reversible "
        "(down → up), and that the development seeds are idempotent. The scratch database is always dropped."
    )
    examples = ("", "--skip-seeds --json")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the report as JSON (for CI).")
        parser.add_argument("--skip-seeds", action="store_true", help="Verify the migrations only.")

    def handle(self, *args, **options):
        migrations = loader.migration_files(parse=True)
        seeds = None if options["skip_seeds"] else loader.seed_files()
        self.section, self.json, self.width = (
            None,
            options["json"],
            max((len(f.name) for f in [*migrations, *(seeds or [])]), default=0),
        )
        if self.verbosity >= 1:
            self.stderr.write(f"Server: {self.target(options['database']).describe()}", self.style.HTTP_INFO)
        with sigterm_as_interrupt():
            try:
                report = verify(server_params(options["database"]), migrations, seeds, progress=self.progress)
            except (KeyboardInterrupt, Interrupted):  # Interrupted: Ctrl-C inside a file, named by the executor
                raise CommandError("interrupted; the scratch database was dropped", returncode=INTERRUPTED) from None
        if self.json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif self.verbosity >= 1:
            if report.stopped:
                self.stdout.write(self.style.ERROR(f"Stopped: {report.stopped}."))
            done = (
                f"{len(report.migrations)} migration(s) and {len(report.seeds)} seed(s) verified; "
                f"scratch database {report.database} dropped."
            )
            self.stdout.write(self.style.SUCCESS(done) if report.ok else done)
        if not report.ok:
            self.fail(f"verification failed: {report.problems} problem(s)" + (", stopped early" * bool(report.stopped)))

    def progress(self, event, payload):
        if self.verbosity < 1 or (self.json and event != "database"):
            return
        if event == "database":
            return self.stderr.write(f"Scratch database: {payload} (dropped at the end)")
        if event != self.section:
            self.section = event
            self.stdout.write(SECTIONS[event])
        if event == "migration":
            reversible = YES_NO[payload.reversible] if payload.has_down else "no down file"
            verdict = (
                f"idempotent: {YES_NO[payload.idempotent]}, reversible: {reversible}" if payload.applied else "FAILED"
            )
        else:
            runs = [YES_NO[None] if rows is None else rows for rows in (payload.rows_first, payload.rows_second)]
            verdict = f"rows changed: first run {runs[0]}, second run {runs[1]}"
        line = f"  {payload.name:<{self.width}}  {verdict}"
        self.stdout.write(self.style.SUCCESS(line) if payload.ok else self.style.ERROR(line))
        if event == "migration":
            self.show_locks(payload)
        for finding in payload.findings:
            for text in finding.lines():
                self.stdout.write("      " + text.replace("\n", "\n      "))
            if annotations.enabled():
                f = finding.failure
                text = f"{finding.check}: ERROR {f.sqlstate}: {f.message}" if f else "\n".join(finding.lines())
                annotations.annotate(
                    self.stdout,
                    f.path if f else payload.path,
                    f and f.line,
                    f and f.column,
                    text,
                    title=f"verify: {finding.check}",
                )

    def show_locks(self, check):
        """The locks a migration took on tables that existed before it, and what it rewrote."""
        existing = [lock for lock in check.locks or () if lock.existed]
        if existing:
            self.stdout.write("      locks: " + ", ".join(lock.describe() for lock in existing))
        for lock in check.blocking_locks:
            self.stdout.write(
                self.style.WARNING(
                    f"      {lock.relation}: ACCESS EXCLUSIVE on an existing table: every read and write of it waits "
                    "until the migration commits"
                )
            )
        if check.rewritten:
            self.stdout.write(
                self.style.WARNING(
                    "      rewrote: "
                    + ", ".join(check.rewritten)
                    + " (the whole table or index is copied under its lock)"
                )
            )


@contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM (a cancelled CI job) like Ctrl-C, so the scratch database is dropped."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
