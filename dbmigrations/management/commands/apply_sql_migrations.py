import os

from django.core.management.color import no_style

from dbmigrations import api, conf
from dbmigrations.deploy import deploy_decision
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

    def handle(self, *args, **options):
        deploy = options["vercel"] or conf.is_vercel_build()
        if deploy:
            self.style = no_style()  # build logs: plain lines
            decision = deploy_decision(self.target(options["database"]), os.environ)
            for warning in decision.warnings:
                self.stderr.write(f"WARNING: {warning}")
            if not decision.apply:
                self.stdout.write(decision.reason)
                return
        target = options["target"]
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
