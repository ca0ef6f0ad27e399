import json

from dbmigrations import api, conf
from dbmigrations.discovery import relative_path
from dbmigrations.management.base import SqlCommand
from dbmigrations.plan import State

# Always in the text summary; the rarer states only when present.
USUAL_STATES = (State.APPLIED, State.PENDING, State.MODIFIED, State.MISSING)


class Command(SqlCommand):
    help = (
        "List every SQL migration file and ledger row: applied, pending, partial, modified, replaced, missing, invalid."
    )
    examples = ("", "--check          # exit 1 when anything is not applied (pending, partial, modified, …)", "--json")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit 1 when anything is pending, partial, modified, replaced, missing or invalid (for CI gates).",
        )

    def handle(self, *args, **options):
        announce = None if options["json"] else self.announce_database
        entries = api.migration_status(options["database"], progress=announce)
        if options["json"]:
            self.stdout.write(
                json.dumps({"migrations": [e.as_dict() for e in entries], "summary": summarize(entries)}, indent=2)
            )
        else:
            self.render(entries)
        problems = {k: v for k, v in summarize(entries).items() if k != "applied" and v}
        if options["check"] and problems:
            self.fail("not up to date: " + ", ".join(f"{v} {k}" for k, v in problems.items()), 1)

    def render(self, entries):
        # One write: a line-buffered terminal (or PYTHONUNBUFFERED) would make each line a system call.
        self.stdout.write("\n".join(self.lines(entries)))

    def lines(self, entries):
        styles = {State.APPLIED: self.style.SUCCESS, State.PENDING: self.style.WARNING}
        if not entries:
            yield "No migrations found."
        for entry in entries:
            state = entry.state.value.upper()
            when = ""
            if entry.row and entry.row.applied_at:
                when = entry.row.applied_at.strftime("%Y-%m-%d %H:%M:%S")
            flag = "  (out of order)" if entry.out_of_order else ""
            if entry.row and entry.row.fake:
                flag += "  (fake)"
            if entry.state == State.REPLACED:
                flag += f"  (version applied from {entry.row.filename})"
            details = [self.where(p) for p in entry.problems]
            if details:
                flag += "  " + details.pop(0)
            style = styles.get(entry.state, self.style.ERROR)
            yield f"{style(f'{state:<9}')} {entry.name:<45} {when}{flag}".rstrip()
            for detail in details:
                yield f"{'':<10}{detail}"
            if entry.state == State.PARTIAL:
                yield from self.partial_lines(entry.partial_dict())
        counts = summarize(entries)
        yield ", ".join(f"{v} {k}" for k, v in counts.items() if v or State(k) in USUAL_STATES)

    def partial_lines(self, partial):
        yield f"{'':<10}{partial['summary']} before it stopped; a rerun resumes after them:"
        for done in partial["ran"]:
            edited = "" if done["unchanged"] else "  (edited since it ran: the rerun refuses)"
            yield f"{'':<10}{done['index']:>3}  {done['sql'] or '(no longer in the file)'}{edited}"

    def where(self, problem):
        text = relative_path(problem.path, conf.base_dir())
        if problem.line is not None:
            text += f":{problem.line}" + (f":{problem.column}" if problem.column is not None else "")
        return f"{text}: {problem.message}"


def summarize(entries):
    counts = {state.value: 0 for state in State}
    for entry in entries:
        counts[entry.state.value] += 1
    return counts
