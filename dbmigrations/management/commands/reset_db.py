from django.core.management import call_command

from dbmigrations import loader, seeds
from dbmigrations.executor import MigrationExecutor
from dbmigrations.management.base import SqlCommand
from dbmigrations.reset import check_connected_server, check_target, reset_schema


class Command(SqlCommand):
    help = (
        "Drop and recreate the public schema (every table, all data, the migration ledger) with PostgreSQL's "
        "defaults. Development only: refused in production and, without --allow-remote, on another machine."
    )
    examples = ("", "--no-input --migrate --seed")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="Do not ask for confirmation."
        )
        parser.add_argument(
            "--allow-remote",
            action="store_true",
            help="Also reset a database that is not on this machine (never production).",
        )
        parser.add_argument("--migrate", action="store_true", help="Apply every migration afterwards.")
        parser.add_argument("--seed", action="store_true", help="Then run the development seeds (implies --migrate).")

    def handle(self, *args, **options):
        target = self.target(options["database"])
        check_target(target, allow_remote=options["allow_remote"])
        migrate = options["migrate"] or options["seed"]
        # Validate every file before dropping anything: a broken file must not leave an empty database.
        files = loader.migration_files(parse=True) if migrate else []
        seed_files = []
        if options["seed"]:
            seeds.check_environment()
            seed_files = loader.seed_files()
        session = self.connect(options["database"])
        server = check_connected_server(session, target, allow_remote=options["allow_remote"])
        if options["interactive"] and not self.confirmed(f"{target.masked_url} (server {server})"):
            return self.stdout.write("Reset cancelled.")
        result = reset_schema(session)
        ledger = "" if result.ledger_rows is None else f" and the record of {result.ledger_rows} applied migration(s)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Reset the public schema of {target.masked_url}: dropped {result.tables} table(s){ledger}."
            )
        )
        if migrate:
            executor = MigrationExecutor(session, pooled=target.pooled, progress=self.progress("Applied"))
            applied = executor.apply(files)
            self.stdout.write(self.style.SUCCESS(f"Applied {len(applied.applied)} migration(s)."))
            # Django's own tables (users, sessions, admin log) lived in the same schema: recreate them.
            call_command(
                "migrate",
                database=options["database"],
                interactive=False,
                skip_checks=True,
                verbosity=0,
                stdout=self.stdout,
                stderr=self.stderr,
            )
            self.stdout.write(
                self.style.SUCCESS(
                    "Recreated Django's own tables (manage.py migrate): "
                    "create an admin login again with createsuperuser."
                )
            )
        else:
            self.stdout.write(
                "Django's own tables (users, sessions, admin log) were dropped too: run "
                "`python manage.py migrate` to recreate them (reset_db --migrate does both)."
            )
        if options["seed"]:
            runs = seeds.run_seeds(session, seed_files, progress=self.progress("Seeded"))
            self.stdout.write(self.style.SUCCESS(f"Seeded {len(runs)} file(s): {sum(r.rows for r in runs)} row(s)."))

    def confirmed(self, masked_url):
        prompt = (
            f"This drops every table and all data in the public schema of {masked_url}, including the "
            "migration ledger and Django's own tables (admin logins, sessions).\n"
            "Type 'yes' to continue, or 'no' to cancel: "
        )
        try:
            return input(prompt).strip() == "yes"
        except EOFError:
            self.fail(
                "reset_db: no answer to the confirmation (stdin closed); nothing was changed. "
                "Pass --no-input to skip it.",
                2,
            )

    def progress(self, verb):
        def report(event, payload):
            if event == "done" and self.verbosity >= 2:
                name = payload.entry.name if hasattr(payload, "entry") else payload.file.name
                self.stdout.write(f"  {verb} {name}")

        return report
