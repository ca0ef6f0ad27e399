"""Typed errors of the core. Each carries the exit code the commands turn it into.

Exit codes: 1 a SQL file failed on the server; 2 refused before
changing anything (configuration, connection, invalid files, drift, lock timeout,
production guard).
"""

from __future__ import annotations

from dataclasses import dataclass


class DbMigrationsError(Exception):
    """Base of every error the tool reports to a human."""

    exit_code = 2


class ConfigurationError(DbMigrationsError):
    """The database or a setting is missing or malformed."""


class DatabaseUnavailable(DbMigrationsError):
    """The server could not be reached or refused the login."""


class SchemaNotChecked(DbMigrationsError):
    """Schema drift could not be checked: the applied migrations failed on the scratch database, or a catalog
    query failed."""


class ProductionGuard(DbMigrationsError):
    """The command must not run against production."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, found before touching the database."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    #: What is wrong, for tools that classify problems (the system checks): "name",
    #: "duplicate", "orphan_down", "misplaced_down", "encoding", "syntax", "empty", or "invalid".
    kind: str = "invalid"

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class InvalidFiles(DbMigrationsError):
    """Migration or seed files break the rules; every problem is listed."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{count} invalid SQL file problem{'s' if count != 1 else ''}, nothing was run:\n{lines}")


class ChecksumDrift(DbMigrationsError):
    """Applied migrations whose file changed since they were applied."""

    def __init__(self, names: list[str]):
        self.names = list(names)
        super().__init__(
            "applied migration file(s) changed since they were applied: "
            + ", ".join(self.names)
            + ". Nothing was applied. Never edit an applied migration: add a new one. Ways out: restore the applied"
            " version (git restore) and put the change in a new migration; if it is your own migration, not merged"
            " anywhere, on a development database: `manage.py rollback_sql_migrations --allow-modified` rolls it"
            " back with its current down file (the newest migration only), then apply it again; if the change is"
            " only whitespace or comments: `manage.py repair_sql_migrations` records the new checksums."
        )


@dataclass(frozen=True)
class Replacement:
    """A file on disk under the version of an applied migration that ran from another file."""

    version: str
    file: str
    applied_file: str
    #: The same file renumbered to the next free version, the usual way out.
    renumbered: str


class ReplacedMigration(DbMigrationsError):
    """A different file now holds the version of an applied migration (a branch switch reused the number)."""

    def __init__(self, replacements: list[Replacement]):
        self.replacements = list(replacements)
        lines = [
            f"  version {r.version} was applied from {r.applied_file}, but {r.file} now holds it: its SQL never ran "
            f"here. Rename it to {r.renumbered} (and its .down.sql), or bring {r.applied_file} back from its branch "
            f"and roll it back (`manage.py rollback_sql_migrations`, or `manage.py reset_db` on a development "
            f"database); only if {r.file}'s changes are already in this database, `manage.py repair_sql_migrations "
            f"--adopt-replaced {r.version}` records it as applied WITHOUT running its SQL."
            for r in self.replacements
        ]
        super().__init__(
            "a different file holds the version of an applied migration, nothing was applied:\n" + "\n".join(lines)
        )


class UnknownVersion(DbMigrationsError):
    """An option names a version that no migration file or ledger row has (or not in the state it needs)."""


class OutOfOrder(DbMigrationsError):
    """A pending migration is older than the newest applied one (with --strict-order)."""


class LockTimeout(DbMigrationsError):
    """Another runner held the migration lock for longer than --lock-timeout."""


class PartialRunChanged(DbMigrationsError):
    """A file that failed part-way outside a transaction was edited in a statement that already ran."""


class NotReversible(DbMigrationsError):
    """A rollback was asked for migrations that cannot be rolled back."""


class PendingMigrations(DbMigrationsError):
    """Seeds were asked for while migrations are pending: the schema is not ready."""


class RemoteDatabase(ProductionGuard):
    """A destructive command was pointed at a database on another machine without --allow-remote."""


class ResetFailed(DbMigrationsError):
    """The server refused to drop or recreate the schema; its transaction was rolled back."""

    exit_code = 1


class RunnerStatementFailed(DbMigrationsError):
    """The runner's own SQL around a file (ledger row) failed on the server; the file was rolled back."""

    exit_code = 1


class OutcomeUnknown(DbMigrationsError):
    """The connection was lost while a file's COMMIT was under way: it may have committed, or not."""

    exit_code = 1
    #: How the command ends the file's progress line instead of "FAILED".
    progress_word = "OUTCOME UNKNOWN"


class Interrupted(DbMigrationsError):
    """The user interrupted the run (Ctrl-C, SIGINT); says what became of the file in progress."""

    exit_code = 130
    progress_word = "INTERRUPTED"


class MigrationFailed(DbMigrationsError):
    """A SQL file failed on the server; its transaction was rolled back (if it had one)."""

    exit_code = 1

    def __init__(self, failure: StatementFailure):
        self.failure = failure
        super().__init__(failure.render())


@dataclass(frozen=True)
class StatementFailure:
    """Where and why a statement of a file failed on the server."""

    path: str
    line: int
    column: int
    sqlstate: str
    message: str
    detail: str | None = None
    hint: str | None = None
    context: str | None = None
    source_line: str = ""
    note: str | None = None

    def render(self) -> str:
        code = f" {self.sqlstate}" if self.sqlstate else ""
        out = [f"{self.path}:{self.line}:{self.column}: ERROR{code}: {self.message}"]
        if self.detail:
            out.append(f"  DETAIL: {self.detail}")
        if self.hint:
            out.append(f"  HINT: {self.hint}")
        if self.context:
            out.append(f"  CONTEXT: {self.context}")
        if self.source_line:
            out.append(f"  {self.line:>5} | {self.source_line}")
            out.append("        | " + " " * (self.column - 1) + "^")
        if self.note:
            out.append(f"  {self.note}")
        return "\n".join(out)


class LockRetriesExhausted(MigrationFailed):
    """A statement kept timing out on a table lock until the retry budget ran out; nothing was changed."""
