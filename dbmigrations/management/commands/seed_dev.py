from dbmigrations import loader, seeds
from dbmigrations.management.base import SqlCommand


class Command(SqlCommand):
    help = (
        "Run every development seed (SQL_SEEDS_DIR/development) in numeric order, each in one transaction. "
        "Refused in production and while migrations are pending."
    )
    examples = ("", "--plan", "--allow-env staging")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--plan", action="store_true", help="List the seeds that would run; connect to nothing.")
        parser.add_argument(
            "--allow-env",
            action="append",
            default=[],
            metavar="NAME",
            help="Also run when NODE_ENV (or VERCEL_ENV=preview) is NAME, e.g. staging. Never allows production.",
        )

    def handle(self, *args, **options):
        seeds.check_environment(allowed=options["allow_env"])  # before any connection
        directory = loader.development_seeds_dir()
        files = loader.seed_files(directory)
        if not files:
            self.stdout.write(f"No development seeds in {directory}.")
            return
        if options["plan"]:
            return self.show_plan(files, directory)
        session = self.connect(options["database"])
        seeds.check_schema(session)
        runs = seeds.run_seeds(session, files, progress=self.progress)
        if self.verbosity >= 1:
            total = sum(r.rows for r in runs)
            self.stdout.write(self.style.SUCCESS(f"Seeded {len(runs)} file(s): {total} row(s) changed."))

    def progress(self, event, payload):
        if self.verbosity < 1:
            return
        if event == "start":
            self.start_line(f"Seeding {payload.name} … ")
        elif event == "failed":
            self.end_line(self.style.ERROR("FAILED"))
        else:
            note = " (writes inside DO blocks are not counted)" if payload.uncounted else ""
            self.end_line(
                self.style.SUCCESS("OK") + f": {payload.rows} row(s) changed ({payload.run.elapsed_ms} ms){note}"
            )

    def show_plan(self, files, directory):
        self.stdout.write(
            f"Would run {len(files)} development seed(s) from {directory}, each in its own "
            "transaction (no ledger: every run executes every file):"
        )
        for file in files:
            self.stdout.write(f"  {file.name}  ({len(file.source.script.statements)} statement(s))")
