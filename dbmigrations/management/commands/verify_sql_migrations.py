import json
import signal
import threading

from django.core.management.base import CommandError

from dbmigrations import conf
from dbmigrations.discovery import discover
from dbmigrations.management.base import SqlCommand
from dbmigrations.verify import server_params, verify

INTERRUPTED = 130


class Command(SqlCommand):
    help = ("Prove on a throwaway database that every migration is idempotent (run twice) and reversible "
            "(down → up), and that the development seeds are idempotent. The scratch database is always dropped.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the report as JSON (for CI).")
        parser.add_argument("--skip-seeds", action="store_true", help="Verify the migrations only.")

    def handle(self, *args, **options):
        migrations = discover(conf.migrations_dir())
        seeds = None if options["skip_seeds"] else discover(conf.seeds_dir() / "development", allow_down=False)
        target = self.target(options["database"])
        self.json = options["json"]
        if self.verbosity >= 1:
            self.stderr.write(f"Server: {target.describe()}", self.style.HTTP_INFO)
        with sigterm_as_interrupt():
            try:
                report = verify(server_params(options["database"]), migrations, seeds, progress=self.progress)
            except KeyboardInterrupt:
                raise CommandError("interrupted; the scratch database was dropped", returncode=INTERRUPTED) from None
        if self.json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif self.verbosity >= 1:
            if report.stopped:
                self.stdout.write(self.style.ERROR(f"Stopped: {report.stopped}."))
            done = (f"{len(report.migrations)} migration(s), {len(report.seeds)} seed(s) verified; "
                    f"scratch database {report.database} dropped.")
            self.stdout.write(self.style.SUCCESS(done) if report.ok else done)
        if not report.ok:
            self.fail(f"verification failed: {report.problems} problem(s)" + (", stopped early" * bool(report.stopped)))

    def progress(self, event, payload):
        if self.verbosity < 1 or (self.json and event != "database"):
            return
        if event == "database":
            self.stderr.write(f"Scratch database: {payload} (dropped at the end)")
            return
        if event == "migration":
            yes = {True: "yes", False: "NO", None: "-"}
            reversible = yes[payload.reversible] if payload.has_down else "no down file"
            verdict = f"idempotent: {yes[payload.idempotent]}, reversible: {reversible}" if payload.applied else "FAILED"
        else:
            verdict = f"first run {payload.rows_first} row(s), second run {payload.rows_second} row(s)"
            verdict = f"seed  {verdict}" if payload.rows_first is not None else "seed  FAILED"
        style = self.style.SUCCESS if payload.ok else self.style.ERROR
        self.stdout.write(f"  {payload.name}  " + style(verdict if payload.ok else f"{verdict}  ✗"))
        for finding in payload.findings:
            for line in finding.lines():
                self.stdout.write("      " + line.replace("\n", "\n      "))


class sigterm_as_interrupt:
    """Treat SIGTERM (a cancelled CI job) like Ctrl-C, so the scratch database is dropped."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, signal.default_int_handler)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
