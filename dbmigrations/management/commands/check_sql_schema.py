import json

from dbmigrations import annotations, drift, loader
from dbmigrations.management.base import SqlCommand
from dbmigrations.scratch import server_params

PLURALS = {"index": "indexes", "policy": "policies"}


class Command(SqlCommand):
    help = (
        "Compare the live database with the schema its applied migrations build (on a scratch database): "
        "tables, columns, constraints, indexes, sequences, views, functions, triggers, types, extensions, "
        "policies, grants, comments. Exit 0 when they match, 1 when they differ, 2 when it could not check."
    )
    examples = ("", "--json")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options):
        files = loader.migration_files(parse=True)
        session = self.connect(options["database"], announce=not options["json"])
        report = drift.check_schema(session, server_params(options["database"]), files)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.render(report, files)
        if not report.ok:
            self.fail(
                f"schema drift: {len(report.differences)} difference(s) between the database and its "
                "applied migrations",
                1,
            )

    def render(self, report, files):
        for note in report.notes:
            self.stderr.write(f"NOTE: {note}", style_func=self.style.WARNING)
        kind = None
        for difference in report.differences:
            if difference.kind != kind:
                kind = difference.kind
                self.stdout.write(self.style.MIGRATE_HEADING(PLURALS.get(kind, f"{kind}s") + ":"))
            self.stdout.write("  " + difference.render())
            annotations.annotate_drift(self.stdout, files, difference)
        summary = f"{len(report.versions)} applied migration(s) rebuilt on {report.built_on}: " + (
            "the database matches them." if report.ok else f"{len(report.differences)} difference(s)."
        )
        self.stdout.write(self.style.SUCCESS(summary) if report.ok else summary)
