import os

from django.core.management.color import no_style

from dbmigrations import api, conf, loader
from dbmigrations.exceptions import DbMigrationsError
from dbmigrations.management.base import SqlCommand, version_number


class Command(SqlCommand):
    help = "Apply pending SQL migrations from SQL_MIGRATIONS_DIR, each in one transaction with its ledger row."
    examples = (
        "",
        "--plan",
        "--target 004",
        "--vercel            # deploy mode (VERCEL=1 implies it)",
        "--lock-timeout 30",
        "--ddl-lock-timeout 5 --lock-retry-budget 1800   # a table that always has long readers",
        "--check-schema      # warn about schema drift first (SQL_SCHEMA_CHECK_ON_DEPLOY=1)",
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--plan", action="store_true", help="Print what would run; change nothing.")
        parser.add_argument("--fake", action="store_true", help="Record pending migrations without running them.")
        parser.add_argument("--target", type=version_number, metavar="VERSION", help="Stop after this version.")
        parser.add_argument(
            "--strict-order", action="store_true", help="Refuse pending migrations older than the newest applied one."
        )
        self.add_lock_timeout_argument(parser)
        self.add_lock_wait_arguments(parser)
        parser.add_argument(
            "--vercel",
            action="store_true",
            help="Deploy mode (implied by VERCEL=1): explicit database only, plain output.",
        )
        parser.add_argument(
            "--check-schema",
            action="store_true",
            help="Before applying, compare the database with the schema its applied migrations build (a scratch "
            "database, like check_sql_schema) and warn about every difference; never stops the run "
            "(default: SQL_SCHEMA_CHECK_ON_DEPLOY=1).",
        )

    def handle(self, *args, **options):
        deploy = options["vercel"] or conf.is_vercel_build()
        if deploy:
            from dbmigrations.deploy import deploy_decision  # only in deploy mode

            self.style = no_style()  # build logs: plain lines
            decision = deploy_decision(self.target(options["database"]), os.environ)
            for warning in decision.warnings:
                self.stderr.write(f"WARNING: {warning}")
            if not decision.apply:
                self.stdout.write(decision.reason)
                return
        target = options["target"]
        if (
            not options["plan"]
            and not options["fake"]
            and (options["check_schema"] or conf.schema_check_before_apply())
        ):
            self.warn_about_drift(options["database"], target, options["strict_order"])
        if options["plan"]:
            return self.show_plan(
                api.migration_plan(
                    options["database"], target=target, strict_order=options["strict_order"], progress=self.progress
                )
            )
        result = api.apply_migrations(
            options["database"],
            target=target,
            fake=options["fake"],
            strict_order=options["strict_order"],
            lock_timeout=options["lock_timeout"],
            ddl_lock_timeout=options["ddl_lock_timeout"],
            lock_retry_budget=options["lock_retry_budget"],
            progress=self.progress,
        )
        for entry in result.out_of_order:
            self.stderr.write(
                self.style.WARNING(
                    f"WARNING: {entry.name} is older than the newest applied migration (merged branch); applied anyway"
                )
            )
        applied = len(result.applied)
        concurrent = len(result.outcomes) - applied
        summary = f"Applied {applied}, skipped {result.already_applied} already applied"
        if concurrent:
            summary += f" (+{concurrent} applied concurrently by another runner)"
        summary += f", {result.pending_after} pending."
        if self.verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(summary) if applied or not result.pending_after else summary)

    def warn_about_drift(self, database, target, strict_order):
        """Warn about each schema difference; a drift check that cannot run is a warning too."""
        from dbmigrations import annotations, drift  # the catalog and the scratch database: only with --check-schema
        from dbmigrations.scratch import server_params

        try:
            files = loader.migration_files(parse=True)
            pending = api.migration_plan(database, target=target, strict_order=strict_order)
            session = api.connect(database)
            report = drift.check_schema(session, server_params(database), files, then=[e.file for e in pending])
        except DbMigrationsError as error:
            self.stderr.write(self.style.WARNING(f"WARNING: schema drift not checked: {error}"))
            return
        for note in report.notes:
            self.stderr.write(self.style.WARNING(f"WARNING: {note}"))
        for difference in report.differences:
            self.stderr.write(self.style.WARNING(f"WARNING: schema drift: {difference.render()}"))
            annotations.annotate_drift(self.stdout, files, difference)
        if report.ok:
            self.stdout.write(f"Schema: matches the {len(report.versions)} applied migration(s).")
        else:
            self.stderr.write(
                self.style.WARNING(
                    f"WARNING: {len(report.differences)} schema difference(s) between the database and its applied "
                    "migrations (applying anyway; `check_sql_schema` prints the report)"
                )
            )

    def progress(self, event, payload):
        if event == "database":
            return self.announce_database(event, payload)
        if event in ("lock_wait", "lock_retry"):
            return self.report_lock(event, payload)
        if self.verbosity < 1:
            return
        if event == "start":
            return self.start_line(f"Applying {payload.name} … ")
        outcome = payload
        if outcome.faked:
            self.end_line(self.style.WARNING("FAKED"))
        elif outcome.skipped_concurrently:
            self.end_line(self.style.WARNING("skipped (applied concurrently by another runner)"))
        else:
            run = outcome.run
            self.end_line(self.style.SUCCESS("OK") + f" ({run.elapsed_ms} ms{self.run_notes(run)})")
            for line in run.notes:
                self.stdout.write(f"  {line}")
            if self.verbosity >= 2:
                self.stdout.write(f"  {run.statements} statement(s), {run.rows} row(s) changed")

    def show_plan(self, todo):
        if not todo:
            self.stdout.write("Nothing to apply: the database is up to date.")
            return
        self.stdout.write(f"Would apply {len(todo)} migration(s):")
        for entry in todo:
            script = entry.file.source.script
            mode = "one transaction" if script.runs_in_transaction else "NO transaction (not atomic)"
            late = "  [older than newest applied]" if entry.out_of_order else ""
            resumes = f", resumes after statement {len(entry.progress)}" if entry.progress else ""
            self.stdout.write(f"  {entry.name}  ({mode}, {len(script.statements)} statement(s){resumes}){late}")
