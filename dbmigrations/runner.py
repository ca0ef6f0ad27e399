"""Running one SQL file — a migration, a down file or a seed — on a :class:`~dbmigrations.session.Session`.

A transactional file goes to the server as *one* simple-query message: the file's
own ``BEGIN`` (or a plain one), the runner's statements that join its transaction
(the migration lock, the ledger row), the file's statements, the session restore,
the runner's closing statements, ``COMMIT``. One round trip per file, and either
everything commits or nothing does. A failure maps back to a line and column.

A file with statements PostgreSQL refuses in a transaction block (CREATE INDEX
CONCURRENTLY, …) runs statement by statement; the caller holds the session lock.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .exceptions import MigrationFailed, OutcomeUnknown, RunnerStatementFailed, StatementFailure
from .session import BatchError, ConnectionLost, Part, Session, run_batch
from .statements import Script

#: SQLSTATE of a check the runner makes on the server after a file (e.g. "the file changed the ledger"):
#: the file is at fault, and the server's message says how.
FILE_CHECK_FAILED = "BSM01"
#: Server errors that end the connection: at COMMIT, nobody can tell whether it committed.
CONNECTION_ENDED = ("57P01", "57P02", "57P03", "08000", "08003", "08006")


@dataclass
class Transaction:
    """The runner's own statements that join a file's transaction, sent in the same message.

    ``before`` runs after ``BEGIN`` and before the file (the lock, the ledger row: a
    concurrent runner fails there, before any statement of the file ran); ``after``
    runs after the file and the session restore, before ``COMMIT``.
    """

    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


@dataclass
class FileRun:
    """What running one file did."""

    rows: int
    elapsed_ms: int
    atomic: bool
    statements: int
    #: Command tags of the runner's own statements (BEGIN, lock, ledger, …), in order.
    runner_tags: list[str] = field(default_factory=list)
    #: The first value each of the runner's own statements returned (None for most), in order.
    runner_values: list[str | None] = field(default_factory=list)
    #: Time spent waiting for the migration lock before the file ran (not in ``elapsed_ms``).
    waited_ms: int = 0
    #: How many times the file ran until it committed (a DDL lock timeout rolls back and retries).
    attempts: int = 1


def client_check_statements(session: Session) -> list[str]:
    """Make the server abort our transaction soon after the runner dies (kill -9, lost build).

    Without it, a long statement would finish and the rest of the message would
    commit with nobody watching. PostgreSQL 14+.
    """
    if session.server_version >= 140000:
        return ["SELECT set_config('client_connection_check_interval', '1000', true)"]
    return []


def run_file(session: Session, script: Script, path: str, transaction: Transaction | None = None, *,
             commit: bool = True) -> FileRun:
    """Run a transactional file in one transaction, with the runner's ``transaction`` statements.

    A failing statement of the file raises :class:`MigrationFailed` (file:line:col);
    a failing runner statement before the file re-raises the :class:`BatchError` for the
    caller to interpret (lock timeout, concurrent apply); one after it raises
    :class:`RunnerStatementFailed`. With ``commit=False`` the transaction is left open
    for the caller to end with :func:`finish`.
    """
    transaction = transaction or Transaction()
    body = Part(tuple(s.sql for s in script.statements), script, path)
    # The session is restored whole after the file (a file's SET, ROLE, temp tables… reach neither the
    # runner's statements after it nor the next file); RESET ALL also ends the runner's own client check.
    restore = (*session.restore_statements(), *client_check_statements(session))
    parts = [
        # The comment names the file in pg_stat_activity, whose query text a DBA sees cut at 1 kB.
        Part((f"/* dbmigrations: {os.path.basename(path)} */ {script.begin}", *client_check_statements(session),
              *transaction.before)),
        body,
        Part((*restore, *transaction.after, *(["COMMIT"] if commit else []))),
    ]
    try:
        result = run_batch(session, parts)
    except ConnectionLost as lost:
        if commit:
            raise outcome_unknown(path, lost.error) from None
        raise
    except BatchError as error:
        if error.part == 1:
            raise failure(error, body, note=_lost_note(error)) from None
        if error.part == 2 and commit and error.index == len(parts[2].statements) - 1:
            if error.sqlstate in CONNECTION_ENDED:
                raise outcome_unknown(path, error.error) from None
            raise commit_failure(error, body) from None
        if error.part == 2:
            raise runner_failure(error, path) from None
        raise
    return FileRun(result.rows(1), result.elapsed_ms, True, len(body.statements), result.tags[0] + result.tags[2],
                   result.values[0] + result.values[2])


def finish(session: Session, *, commit: bool, script: Script | None = None, path: str | None = None) -> None:
    """End a transaction left open by ``run_file(commit=False)``; a failing COMMIT names the file."""
    if not commit:
        session.rollback_if_needed()
        return
    try:
        run_batch(session, [Part(("COMMIT",))])
    except BatchError as error:
        if script is None:
            raise
        raise commit_failure(error, Part((), script, path)) from None


def run_file_without_transaction(session: Session, script: Script, path: str) -> FileRun:
    """Run a file that cannot run in a transaction, statement by statement (autocommit).

    On failure, the error says which statements ran (and stay committed) and
    which did not; an INVALID index left by a failed CREATE INDEX CONCURRENTLY is
    named with the statement that removes it.
    """
    body = Part(tuple(s.sql for s in script.statements), script, path)
    session.restore_statements()  # the baseline, read before the file's statements change the session
    began = time.perf_counter()
    rows = 0
    for index, sql in enumerate(body.statements):
        try:
            result = session.batch([Part((sql,), script, path)])
        except BatchError as error:
            error = BatchError(error.error, 0, index, error.offset)
            raise failure(error, body, note=_partial_note(session, script, index)) from None
        rows += result.rows(0)
    elapsed = round((time.perf_counter() - began) * 1000)
    return FileRun(rows, elapsed, False, len(body.statements))


def outcome_unknown(path: str, error: Exception) -> OutcomeUnknown:
    """The connection ended while ``path``'s COMMIT was on its way: it may or may not have committed."""
    cause = str(getattr(error, "error", error)).strip().splitlines()
    return OutcomeUnknown(
        f"{path}: outcome unknown: the connection to the server was lost ({cause[0] if cause else 'no answer'}) "
        "after the file was sent with its COMMIT. Its transaction (a migration's with its ledger row) commits "
        "whole or not at all: run sql_migration_status to see whether it was applied."
    )


def _lost_note(error: BatchError) -> str | None:
    if error.sqlstate in CONNECTION_ENDED:
        return ("The connection was ended while this file ran: its transaction was rolled back and nothing was "
                "recorded.")
    return None


def runner_failure(error: BatchError, path: str) -> RunnerStatementFailed:
    """A failure of the runner's own SQL around ``path`` (not of the file's statements), in one line."""
    message = (error.error.diag.message_primary or str(error.error)).strip()
    if error.sqlstate == FILE_CHECK_FAILED:
        return RunnerStatementFailed(f"{path}: {message}")
    return RunnerStatementFailed(
        f"{path}: the runner's own statement around this file failed, so everything was rolled back and nothing "
        f"was recorded: ERROR {error.sqlstate}: {message}. Does the file drop, rename or revoke access to "
        "schema_migrations?"
    )


def failure(error: BatchError, part: Part, *, note: str | None = None) -> MigrationFailed:
    """Describe a failed statement of a file: path, line, column, SQLSTATE, DETAIL, HINT."""
    script = part.script
    statement = script.statements[error.index]
    diag = error.error.diag
    context = diag.context.strip() if diag.context else None
    offset = statement.start
    if error.offset is not None and 0 <= error.offset <= len(statement.sql):
        offset += error.offset
    line, column = script.position(offset)
    do_line = _do_block_line(context)
    body = statement.do_body_offset()
    if error.offset is None and do_line and body is not None:
        # "PL/pgSQL function inline_code_block line N": line N of the DO body.
        line = script.position(body)[0] + do_line - 1
        text = script.line_text(line)
        column = len(text) - len(text.lstrip()) + 1
    return MigrationFailed(
        StatementFailure(
            path=part.path or "<sql>",
            line=line,
            column=column,
            sqlstate=error.sqlstate,
            message=(diag.message_primary or str(error.error)).strip(),
            detail=diag.message_detail,
            hint=diag.message_hint,
            context=context,
            source_line=script.line_text(line),
            note=note,
        )
    )


def commit_failure(error: BatchError, part: Part) -> MigrationFailed:
    """A COMMIT that failed: a deferred constraint checked at the end of the file's transaction."""
    script = part.script
    last = script.statements[-1]
    line = script.position(last.start + len(last.sql))[0]
    diag = error.error.diag
    return MigrationFailed(StatementFailure(
        path=part.path or "<sql>", line=line, column=1, sqlstate=error.sqlstate,
        message=(diag.message_primary or str(error.error)).strip(), detail=diag.message_detail,
        hint=diag.message_hint, source_line=script.line_text(line),
        note="Raised at COMMIT by a deferred constraint (DEFERRABLE INITIALLY DEFERRED or SET CONSTRAINTS … "
             "DEFERRED): the whole file was rolled back and nothing was recorded.",
    ))


def _do_block_line(context: str | None) -> int | None:
    """N of the outermost "inline_code_block line N" in a server CONTEXT, if any."""
    words = (context or "").split()
    found = None
    for i in range(len(words) - 2):
        if words[i] == "inline_code_block" and words[i + 1] == "line" and words[i + 2].isdigit():
            found = int(words[i + 2])
    return found


def _partial_note(session: Session, script: Script, failed: int) -> str:
    total = len(script.statements)
    done = f"statements 1-{failed} ran and stay committed" if failed else "no statement ran"
    note = (
        f"Not atomic (runs outside a transaction): {done}; statement {failed + 1} of {total} failed; "
        f"{total - failed - 1} did not run. The migration was not recorded."
    )
    index_name = script.statements[failed].index_name
    if index_name:
        rows = session.fetch(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE NOT i.indisvalid AND c.relname = %s",
            (index_name,),
        )
        if rows:
            note += (
                f" It left the INVALID index {rows[0][0]}; remove it with: "
                f"DROP INDEX CONCURRENTLY IF EXISTS {rows[0][0]};"
            )
    return note
