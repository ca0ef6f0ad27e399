from pathlib import Path

from dbmigrations import annotations, conf, lint
from dbmigrations.lint.report import plural
from dbmigrations.lint.squawk import pg_version_text
from dbmigrations.management.base import SqlCommand


class Command(SqlCommand):
    help = (
        "Lint SQL migrations and seeds without running them: header, transaction wrapper, idempotent DDL, "
        "data only in seeds (ours), plus squawk's lock and production-safety rules. Exit 1 on errors."
    )
    examples = ("", "migrations/006_add_goals_table.sql", "--format json")
    uses_database = False

    def add_arguments(self, parser):
        parser.add_argument(
            "paths",
            nargs="*",
            help="Files or directories (default: the migrations and seeds "
            "directories). Paths under the seeds directory are linted as seeds.",
        )
        parser.add_argument(
            "--seeds",
            action="append",
            default=[],
            metavar="PATH",
            help="Lint PATH (file or directory) as seed files; repeatable.",
        )
        parser.add_argument("--format", choices=["text", "json"], default="text", help="Output format.")
        parser.add_argument("--no-squawk", action="store_true", help="Run only our rules, not squawk's.")
        parser.add_argument("--no-cache", action="store_true", help="Don't reuse or store results of our rules.")
        parser.add_argument("--pg-version", help="PostgreSQL version squawk assumes, e.g. 16 or 15.4.")
        parser.add_argument(
            "--database", default=None, help="Read --pg-version from this database alias's server (connects once)."
        )

    def handle(self, *args, **options):
        report = lint.lint(
            self.targets(options),
            squawk=not options["no_squawk"],
            pg_version=self.pg_version(options),
            cache=not options["no_cache"],
        )
        if options["format"] == "json":
            self.stdout.write(report.to_json())
        else:
            for finding in report.findings:
                style = self.style.ERROR if finding.severity == "error" else self.style.WARNING
                self.stdout.write(style(finding.render()))
                if annotations.enabled():
                    annotations.annotate(
                        self.stdout,
                        finding.path,
                        finding.line,
                        finding.column,
                        finding.message,
                        level="error" if finding.severity == "error" else "warning",
                        title=" ".join(dict.fromkeys((finding.rule, finding.name))),
                    )
                if self.verbosity >= 2 and finding.hint:
                    self.stdout.write(f"  help: {finding.hint}")
            self.stdout.write(report.summary_text())
        if report.errors:
            self.fail(f"lint found {plural(len(report.errors), 'error')}", 1)

    def targets(self, options):
        if not (options["paths"] or options["seeds"]):
            return lint.default_targets()
        seeds, found = conf.seeds_dir().resolve(), []
        for path in options["paths"]:
            kind = lint.SEED if Path(path).resolve().is_relative_to(seeds) else lint.MIGRATION
            found += lint.expand([path], kind, must_exist=True)
        return found + lint.expand(options["seeds"], lint.SEED, must_exist=True)

    def pg_version(self, options):
        if options["pg_version"] or not options["database"]:
            return options["pg_version"]
        session = self.connect(options["database"], announce=False)
        return pg_version_text(session.server_version)
