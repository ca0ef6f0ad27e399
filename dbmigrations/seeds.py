"""Development seeds: the environment guard, the schema check and the run.

Seeds are found by the loader (:func:`loader.seed_files`) and run by the same
code as migrations (:func:`runner.run_file`), one transaction per file. They have
no ledger: every run executes every file, so each
seed must be idempotent, and the rows it changed are reported to show it.
``seeds/production/`` is never read by any code path here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import conf, loader, plan
from .discovery import SqlFile
from .events import Event, Progress, quiet
from .exceptions import MigrationFailed, PendingMigrations, ProductionGuard
from .runner import FileRun, run_file
from .session import Session

# NODE_ENV values that mean "a developer's or CI's own database".
RUNNABLE_NODE_ENVS = ("", "development", "test")


def check_environment(environ: Mapping[str, str] | None = None, *, allowed: Sequence[str] = ()) -> None:
    """Refuse (:class:`ProductionGuard`, exit 2) unless seeding this environment is safe.

    Never overridable: ``VERCEL=1`` (a Vercel build or function) and production
    (:func:`conf.is_production`). Runs: ``NODE_ENV`` unset, ``development`` or ``test``.
    Any other ``NODE_ENV`` (``staging``…) and ``VERCEL_ENV=preview`` refuse unless that
    exact name is in ``allowed``. Reads nothing but ``environ`` (default ``os.environ``, now), so it can
    run before any connection.
    """
    if conf.is_vercel_build(environ):
        raise ProductionGuard(
            "seed_dev refused: VERCEL=1 (a Vercel build or deployment). Seeds never run on a deploy; "
            "run them on your own machine against a development database. Nothing was changed."
        )
    conf.refuse_in_production(
        "seed_dev",
        "seeds never run in production; see docs/seeds.md for how to load production data deliberately.",
        environ,
    )
    node_env, vercel_env = conf.variable("NODE_ENV", environ), conf.vercel_env(environ)
    others = [("VERCEL_ENV", vercel_env)] if conf.is_preview(environ) else []
    if node_env.lower() not in RUNNABLE_NODE_ENVS:
        others.append(("NODE_ENV", node_env))
    for name, value in others:
        if value not in allowed:
            raise ProductionGuard(
                f"seed_dev refused: {name}={value} is not a development environment (seeds run when NODE_ENV "
                f"is unset, development or test). If this database really is disposable, run again with "
                f"--allow-env {value}. Nothing was changed."
            )


def check_schema(session: Session, migrations_dir: str | None = None) -> None:
    """Refuse (:class:`PendingMigrations`, exit 2) while any migration is pending."""
    entries = loader.migration_states(session, loader.migration_files(migrations_dir))
    waiting = [e.name for e in plan.pending(entries)]
    if waiting:
        raise PendingMigrations(
            f"{len(waiting)} migration(s) pending ({', '.join(waiting)}): seeds need the schema. "
            "Run `python manage.py apply_sql_migrations` first. No seed was run."
        )


@dataclass
class SeedRun:
    """One seed file and what running it did."""

    file: SqlFile
    run: FileRun

    @property
    def rows(self) -> int:
        """Rows inserted/updated/deleted by the file's own statements (their command tags)."""
        return self.run.rows

    @property
    def uncounted(self) -> bool:
        """True when the file has DO blocks, whose inner writes no command tag reports."""
        return any(s.kind == "DoStmt" for s in self.file.source.script.statements)


def run_seeds(session: Session, files: Sequence[SqlFile], *, progress: Progress | None = None) -> list[SeedRun]:
    """Run every file in order, each in its own transaction; stop at the first failure.

    A failure raises :class:`MigrationFailed` (file:line:col, SQLSTATE, DETAIL) whose
    note says that file was rolled back, which files committed and which did not run.
    """
    notify = progress or quiet
    done: list[SeedRun] = []
    for position, file in enumerate(files):
        notify(Event.START, file)
        try:
            run = run_file(session, file.source.script, str(file.path))
        except MigrationFailed as error:
            notify(Event.FAILED, file)
            raise _with_note(error, done, files[position + 1 :]) from None
        done.append(SeedRun(file, run))
        notify(Event.DONE, done[-1])
    return done


def _with_note(error: MigrationFailed, done: Sequence[SeedRun], skipped: Sequence[SqlFile]) -> MigrationFailed:
    note = "Seed rolled back: none of its rows were kept."
    note += " Committed before it: " + (", ".join(d.file.name for d in done) if done else "none") + "."
    note += " Not run: " + (", ".join(f.name for f in skipped) if skipped else "none") + "."
    return MigrationFailed(dataclasses.replace(error.failure, note=note))
