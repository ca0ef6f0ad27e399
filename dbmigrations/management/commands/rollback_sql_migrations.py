from dbmigrations import conf, loader
from dbmigrations.executor import MigrationExecutor
from dbmigrations.management.base import SqlCommand, version_number


class Command(SqlCommand):
    help = (
        "Roll back applied SQL migrations with their .down.sql files, newest first, each in one "
        "transaction with the removal of its ledger row."
    )
    examples = ("                  # the newest migration", "--steps 3", "--to 002", "--plan")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--steps", type=int, metavar="N", help="Roll back the newest N applied migrations (default 1)."
        )
        which.add_argument(
            "--to",
            type=version_number,
            metavar="VERSION",
            help="Roll back every migration applied after VERSION (VERSION stays applied; 0 = all).",
        )
        parser.add_argument("--plan", action="store_true", help="Print what would run; change nothing.")
        self.add_lock_timeout_argument(parser)
        self.add_lock_wait_arguments(parser)
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Roll back even in production (NODE_ENV or VERCEL_ENV = production, any case).",
        )
        parser.add_argument(
            "--allow-modified",
            action="store_true",
            help="Roll back the newest migration with its current down file although its up file "
            "changed since it was applied (your own unmerged migration; never in production).",
        )

    def handle(self, *args, **options):
        if options["allow_modified"]:
            conf.refuse_in_production(
                "--allow-modified",
                "a migration applied there is shared history: restore the file that ran, or add a new migration.",
            )
        if not options["allow_production"] and not options["plan"]:
            conf.refuse_in_production(
                "rollback",
                "the practice there is a new forward migration that reverses "
                "the change; pass --allow-production to roll back anyway.",
            )
        files = loader.migration_files()  # only the down files that will run are parsed
        executor = MigrationExecutor(
            self.connect(options["database"]),
            lock_timeout=options["lock_timeout"],
            pooled=self.target(options["database"]).pooled,
            progress=self.progress,
            lock_policy=self.lock_policy(options),
        )
        which = {"steps": options["steps"], "to": options["to"], "allow_modified": options["allow_modified"]}
        if options["plan"]:
            chosen = executor.rollback_plan(files, **which)
            if not chosen:
                return self.stdout.write("Nothing to roll back.")
            self.stdout.write(f"Would roll back {len(chosen)} migration(s), newest first:")
            for entry in chosen:
                mode = (
                    "one transaction" if entry.file.down.script.runs_in_transaction else "NO transaction (not atomic)"
                )
                self.stdout.write(f"  {entry.file.down.path.name}  ({mode})")
            return
        result = executor.rollback(files, **which)
        if not result.steps:
            return self.stdout.write("Nothing to roll back.")
        summary = f"Rolled back {len(result.rolled_back)}, {result.still_applied} still applied."
        self.stdout.write(self.style.SUCCESS(summary) if result.rolled_back else summary)

    def progress(self, event, payload):
        if event in ("lock_wait", "lock_retry"):
            return self.report_lock(event, payload)
        if self.verbosity < 1:
            return
        if event == "start":
            return self.start_line(f"Rolling back {payload.name} … ")
        if payload.skipped_concurrently:
            self.end_line(self.style.WARNING("skipped (rolled back concurrently by another runner)"))
        else:
            self.end_line(self.style.SUCCESS("OK") + f" ({payload.run.elapsed_ms} ms{self.run_notes(payload.run)})")
