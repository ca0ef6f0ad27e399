"""Running one SQL file — a migration, a down file or a seed — on a :class:`~dbmigrations.session.Session`.

A transactional file goes to the server as *one* simple-query message: the file's
own ``BEGIN`` (or a plain one), the runner's statements that join its transaction
(the migration lock, the ledger row), the file's statements, the session restore,
the runner's closing statements, ``COMMIT``. One round trip per file, and either
everything commits or nothing does. A failure maps back to a line and column.

A file with statements PostgreSQL refuses in a transaction block (CREATE INDEX
CONCURRENTLY, …) runs statement by statement; the caller holds the migration lock
(:func:`dbmigrations.locks.lock_holder`) and records each statement that ran, so a
rerun can resume after them. A concurrent index build or REINDEX is checked before and
after: an INVALID index it left is dropped, never kept, and never recorded as built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from . import indexes
from .exceptions import MigrationFailed, OutcomeUnknown, RunnerStatementFailed, StatementFailure
from .session import BatchError, ConnectionLost, Part, Session, run_batch
from .statements import IndexTarget, ReindexTarget, Script, Statement

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
    #: Outside a transaction: leading statements skipped because an earlier run did them.
    resumed_after: int = 0
    #: What the runner did besides the file's statements (an INVALID index dropped and rebuilt).
    notes: list[str] = field(default_factory=list)


def client_check_statements(session: Session) -> list[str]:
    """Make the server abort our transaction soon after the runner dies (kill -9, lost build).

    Without it, a long statement would finish and the rest of the message would
    commit with nobody watching. PostgreSQL 14+.
    """
    if session.server_version >= 140000:
        return ["SELECT set_config('client_connection_check_interval', '1000', true)"]
    return []


def run_file(
    session: Session,
    script: Script,
    path: str,
    transaction: Transaction | None = None,
    *,
    commit: bool = True,
    meanwhile: Callable[[], None] | None = None,
) -> FileRun:
    """Run a transactional file in one transaction, with the runner's ``transaction`` statements.

    A failing statement of the file raises :class:`MigrationFailed` (file:line:col);
    a failing runner statement before the file re-raises the :class:`BatchError` for the
    caller to interpret (lock timeout, concurrent apply); one after it raises
    :class:`RunnerStatementFailed`. With ``commit=False`` the transaction is left open
    for the caller to end with :func:`finish`. ``meanwhile()`` runs while the server
    works on the file (see :meth:`Session.batch`).
    """
    transaction = transaction or Transaction()
    body = Part(tuple(s.sql for s in script.statements), script, path)
    # The session is restored whole after the file (a file's SET, ROLE, temp tables… reach neither the
    # runner's statements after it nor the next file); RESET ALL also ends the runner's own client check.
    restore = (*session.restore_statements(), *client_check_statements(session))
    parts = [
        # The comment names the file in pg_stat_activity, whose query text a DBA sees cut at 1 kB.
        Part(
            (
                f"/* dbmigrations: {os.path.basename(path)} */ {script.begin}",
                *client_check_statements(session),
                *transaction.before,
            )
        ),
        body,
        Part((*restore, *transaction.after, *(["COMMIT"] if commit else []))),
    ]
    try:
        result = run_batch(session, parts, meanwhile=meanwhile)
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
    return FileRun(
        result.rows(1),
        result.elapsed_ms,
        True,
        len(body.statements),
        result.tags[0] + result.tags[2],
        result.values[0] + result.values[2],
    )


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


def run_file_without_transaction(
    session: Session, script: Script, path: str, *, start: int = 0, done: Callable[[int], None] | None = None
) -> FileRun:
    """Run a file that cannot run in a transaction, statement by statement (autocommit).

    The first ``start`` statements ran in an earlier run and are skipped (``SET``/``RESET``
    run again: the session they changed is gone). ``done(n)`` is called after statement
    ``n`` (1-based) succeeded, to record it. On failure, the error says which statements
    ran (and stay committed) and which did not, and drops the INVALID indexes a failed
    concurrent build or ``REINDEX … CONCURRENTLY`` left.
    """
    body = Part(tuple(s.sql for s in script.statements), script, path)
    restore = session.restore_statements()  # the baseline, read before the file's statements change the session
    began = time.perf_counter()
    rows, notes = 0, []
    if client_check_statements(session):  # a dead runner's statement is cancelled, not finished unobserved
        run_batch(session, [Part(("SELECT set_config('client_connection_check_interval', '1000', false)",))])
    for index, statement in enumerate(script.statements):
        if index < start and not statement.sets_session_state:
            continue
        build = statement.index if index >= start and statement.index and statement.index.concurrent else None
        reindex = statement.reindex if index >= start else None
        before = _prepare_build(session, build, notes, path, index) if build else None
        if reindex:
            before = _prepare_reindex(session, reindex, notes, path, index)
        try:
            result = session.batch([Part((statement.sql,), script, path)])
        except BatchError as error:
            error = BatchError(error.error, 0, index, error.offset)
            note = _partial_note(script, index, start, resumable=done is not None)
            if build or reindex:
                note += _drop_failed_build(session, build or reindex, before)
            raise failure(error, body, note=note) from None
        rows += result.rows(0)
        if build:
            _check_build(session, script, path, index, statement, start, resumable=done is not None)
        if index >= start and done is not None:
            done(index + 1)
    # The file's SET, ROLE, temp tables… (and the client check) reach neither the runner nor the next file.
    run_batch(session, [Part(("BEGIN", *restore, "COMMIT"))])
    elapsed = round((time.perf_counter() - began) * 1000)
    return FileRun(rows, elapsed, False, len(body.statements), resumed_after=start, notes=notes)


def _prepare_build(session: Session, build: IndexTarget, notes: list[str], path: str, index: int) -> indexes.Indexes:
    """Before a concurrent index build: drop an INVALID index of its name (an interrupted build's)."""
    found = indexes.lookup(session, build)
    named = found.named
    if named is not None and named.on_table and not named.valid:
        _drop_before(session, named, path, index, "left by an interrupted build")
        notes.append(f"dropped the INVALID index {named.name} (left by an interrupted build) and built it again")
        found = indexes.lookup(session, build)
    return found


def _prepare_reindex(
    session: Session, reindex: ReindexTarget, notes: list[str], path: str, index: int
) -> indexes.Indexes:
    """Before ``REINDEX … CONCURRENTLY``: drop the INVALID ``_ccnew``/``_ccold`` copies an interrupted one left."""
    found = indexes.reindex_leftovers(session, reindex)
    for left in found.found:
        _drop_before(session, left, path, index, "left by an interrupted REINDEX CONCURRENTLY")
        notes.append(f"dropped the INVALID index {left.name} (left by an interrupted REINDEX CONCURRENTLY)")
    for busy in found.busy:
        notes.append(f"left the INVALID index {busy.name} alone: another session is building it (a REINDEX?)")
    return indexes.reindex_leftovers(session, reindex) if found.found else found


def _drop_before(session: Session, index: indexes.Index, path: str, at: int, why: str) -> None:
    try:
        indexes.drop(session, index)
    except BatchError as error:
        raise RunnerStatementFailed(
            f"{path}: before statement {at + 1}, dropping the INVALID index {index.name} ({why}) failed: "
            f"ERROR {error.sqlstate}: {_message(error)}. Statement {at + 1} did not run and the migration was not "
            f"recorded; drop it by hand: DROP INDEX CONCURRENTLY IF EXISTS {index.name};"
        ) from None


def _message(error: BatchError) -> str:
    return (error.error.diag.message_primary or str(error.error)).strip()


def _drop_failed_build(session: Session, build: IndexTarget | ReindexTarget, before: indexes.Indexes) -> str:
    """After a failed concurrent build or REINDEX: drop the INVALID indexes it left; the sentence that says so.

    Only indexes that were not INVALID before the statement, on the tables it targets:
    never another session's build in progress.
    """
    known = {i.oid for i in (*before.found, *before.busy)}
    try:
        if isinstance(build, ReindexTarget):
            found = indexes.reindex_leftovers(session, build)
        else:
            found = indexes.lookup(session, build)
        left = [i for i in found.invalid() if i.oid not in known]
    except psycopg.Error:  # the session is gone: nothing to look at, nothing to drop
        return ""
    said = ""
    for index in left:
        statement = f"DROP INDEX CONCURRENTLY IF EXISTS {index.name};"
        try:
            indexes.drop(session, index)
        except BatchError as error:
            said += (
                f" It left the INVALID index {index.name}, and dropping it failed ({_message(error)}): "
                f"remove it with: {statement}"
            )
        except psycopg.Error:  # the session is gone
            said += f" It left the INVALID index {index.name}: remove it with: {statement}"
        else:
            said += f" It left the INVALID index {index.name}, which the runner dropped ({statement})."
    return said


def _check_build(
    session: Session, script: Script, path: str, index: int, statement: Statement, start: int, *, resumable: bool
) -> None:
    """After a concurrent build that succeeded: the index must exist on its table and be valid.

    ``IF NOT EXISTS`` skips the build when the name is taken (an INVALID index, another
    table's index, a table): recording the migration then would record what did not run.
    """
    build = statement.index
    if build.name is None:
        return  # PostgreSQL picked a fresh name: a build that returned without an error is valid
    named = indexes.lookup(session, build).named
    if named is not None and named.on_table and named.valid:
        return
    if named is not None and named.on_table:
        try:
            problem = f"left the index {named.name} INVALID; the runner dropped it ({indexes.drop(session, named)})"
        except BatchError as error:
            problem = (
                f"left the index {named.name} INVALID, and dropping it failed ({_message(error)}): remove it "
                f"with: DROP INDEX CONCURRENTLY IF EXISTS {named.name};"
            )
    elif named is not None:
        problem = f"built nothing: the name {named.name} belongs to an index of another table"
    else:
        problem = f"built nothing: the name {build.name} is taken by another relation in that schema"
    line, column = script.position(statement.start)
    raise MigrationFailed(
        StatementFailure(
            path=path,
            line=line,
            column=column,
            sqlstate="",
            source_line=script.line_text(line),
            message=f"statement {index + 1} returned without an error but {problem}",
            note=_partial_note(script, index, start, resumable=resumable, ran=True),
        )
    )


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
        return "The connection was ended while this file ran: its transaction was rolled back and nothing was recorded."
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
    return MigrationFailed(
        StatementFailure(
            path=part.path or "<sql>",
            line=line,
            column=1,
            sqlstate=error.sqlstate,
            message=(diag.message_primary or str(error.error)).strip(),
            detail=diag.message_detail,
            hint=diag.message_hint,
            source_line=script.line_text(line),
            note="Raised at COMMIT by a deferred constraint (DEFERRABLE INITIALLY DEFERRED or SET CONSTRAINTS … "
            "DEFERRED): the whole file was rolled back and nothing was recorded.",
        )
    )


def _do_block_line(context: str | None) -> int | None:
    """N of the outermost "inline_code_block line N" in a server CONTEXT, if any."""
    words = (context or "").split()
    found = None
    for i in range(len(words) - 2):
        if words[i] == "inline_code_block" and words[i + 1] == "line" and words[i + 2].isdigit():
            found = int(words[i + 2])
    return found


def _partial_note(script: Script, failed: int, start: int = 0, *, resumable: bool = False, ran: bool = False) -> str:
    """What ran and what did not when statement ``failed`` (0-based) of a file outside a transaction failed."""
    total = len(script.statements)
    if failed:
        earlier = f" ({'1' if start == 1 else f'1-{start}'} in an earlier run)" if start else ""
        done = (
            "statement 1 ran and stays committed" if failed == 1 else f"statements 1-{failed} ran and stay committed"
        ) + earlier
    else:
        done = "no statement ran"
    what = "ran but is not counted as done" if ran else "failed"
    note = (
        f"Not atomic (runs outside a transaction): {done}; statement {failed + 1} of {total} {what}; "
        f"{total - failed - 1} did not run. The migration was not recorded."
    )
    if resumable and failed:
        note += (
            f" The statements that ran are recorded: once the file is fixed, a rerun resumes at statement {failed + 1}."
        )
    return note
