import json

from dbmigrations import api
from dbmigrations.management.base import SqlCommand
from dbmigrations.plan import State


class Command(SqlCommand):
    help = "List every SQL migration file and ledger row: applied, pending, modified, missing."
    examples = ('', '--check          # exit 1 when anything is pending, modified or missing', '--json')

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")
        parser.add_argument("--check", action="store_true",
                            help="Exit 1 when anything is pending, modified or missing (for CI gates).")

    def handle(self, *args, **options):
        announce = None if options["json"] else self.announce_database
        entries = api.migration_status(options["database"], progress=announce)
        if options["json"]:
            self.stdout.write(json.dumps({"migrations": [e.as_dict() for e in entries],
                                          "summary": summarize(entries)}, indent=2))
        else:
            self.render(entries)
        problems = {k: v for k, v in summarize(entries).items() if k != "applied" and v}
        if options["check"] and problems:
            self.fail("not up to date: " + ", ".join(f"{v} {k}" for k, v in problems.items()), 1)

    def render(self, entries):
        styles = {State.APPLIED: self.style.SUCCESS, State.PENDING: self.style.WARNING,
                  State.MODIFIED: self.style.ERROR, State.MISSING: self.style.ERROR}
        if not entries:
            self.stdout.write("No migrations found.")
        for entry in entries:
            state = entry.state.value.upper()
            when = ""
            if entry.row and entry.row.applied_at:
                when = entry.row.applied_at.strftime("%Y-%m-%d %H:%M:%S")
            flag = "  (out of order)" if entry.out_of_order else ""
            self.stdout.write(f"{styles[entry.state](f'{state:<9}')} {entry.name:<45} {when}{flag}")
        counts = summarize(entries)
        self.stdout.write(", ".join(f"{v} {k}" for k, v in counts.items()))


def summarize(entries):
    counts = {state.value: 0 for state in State}
    for entry in entries:
        counts[entry.state.value] += 1
    return counts
