"""The admin's read-only view of ``schema_migrations``: what is applied, in what state, what is pending.

Every row is compared with the files on disk through :func:`dbmigrations.loader.checked_states`
(the same list ``sql_migration_status`` prints): ok, modified (checksum drift), replaced
(another file now holds the version), missing or invalid; an invalid file leaves the
other rows' states alone. Rows recorded without running their SQL (``--fake``,
Flyway's "baseline") say so. Above the list, the schema drift summary: the live catalog
against the expected schema ``check_sql_schema`` last stored (:func:`drift.compare_with_stored`,
no scratch database). Nothing can be added, changed or deleted here, by form,
action or URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections, router, transaction
from django.db.models import Case, CharField, Value, When
from django.utils.html import format_html

from . import conf, ledger, loader, plan
from .checks import display_path
from .database import scrub
from .exceptions import ConfigurationError, DbMigrationsError, InvalidFiles, Problem
from .ledger import COLUMNS, LedgerRow
from .models import SchemaMigration, version_order
from .resume import Done
from .session import Session

if TYPE_CHECKING:
    from . import drift

OK, MODIFIED, MISSING, REPLACED, INVALID, UNKNOWN = "ok", "modified", "missing", "replaced", "invalid", "unknown"
ROW_STATES = {
    plan.State.APPLIED: OK,
    plan.State.MODIFIED: MODIFIED,
    plan.State.MISSING: MISSING,
    plan.State.REPLACED: REPLACED,
    plan.State.INVALID: INVALID,
}
DRIFT_SHOWN = 50  # differences listed on the page; check_sql_schema prints them all
RUNNER_COLUMNS = ("execution_ms", "filename", "applied_by", "fake", "attempts")


@dataclass
class Overview:
    """Files on disk against the ledger, computed once per request."""

    columns: frozenset[str]
    entries: list[plan.Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    drift: drift.StoredCheck | None = None

    @property
    def states(self) -> dict[str, str]:
        """Ledger version → ok / modified / replaced / missing / invalid."""
        return {e.row.version: ROW_STATES[e.state] for e in self.entries if e.row is not None}

    @property
    def pending(self) -> list[plan.Entry]:
        return plan.pending(self.entries)

    def entry(self, version: str) -> plan.Entry | None:
        return next((e for e in self.entries if e.row is not None and e.row.version == version), None)


def ledger_columns() -> frozenset[str]:
    """Columns of the ledger (empty when the table does not exist yet), found by its schema, never by search_path."""
    connection = connections[router.db_for_read(SchemaMigration)]
    query, params = ledger.columns_query()
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return frozenset(row[0] for row in cursor.fetchall())


def ledger_progress() -> list[Done]:
    """Statements that ran of migrations that stopped part-way (PARTIAL), as the runner reads them."""
    connection = connections[router.db_for_read(SchemaMigration)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [ledger.progress_table()])
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(ledger.progress_query())
        return sorted((Done(*row) for row in cursor.fetchall()), key=lambda d: (d.version, d.index))


def overview(request) -> Overview:
    """The request's :class:`Overview` (memoized on the request: the list and its filters share it)."""
    if not hasattr(request, "_sql_migrations_overview"):
        view = Overview(ledger_columns())
        try:
            files, problems = loader.scan_migrations()
        except InvalidFiles as error:  # the folder cannot be listed
            view.problems = error.problems
        except ConfigurationError as error:
            view.problems = [Problem(str(conf.migrations_dir()), str(error))]
        else:
            columns = [c for c in COLUMNS if c in view.columns]
            rows = (
                [LedgerRow(**dict(zip(columns, values))) for values in SchemaMigration.objects.values_list(*columns)]
                if columns
                else []
            )
            view.entries = loader.checked_states(files, problems, rows, progress=ledger_progress() if columns else [])
            view.problems = [p for entry in plan.invalid(view.entries) for p in entry.problems]
        if view.columns:
            view.drift = schema_check()
        request._sql_migrations_overview = view
    return request._sql_migrations_overview


def schema_check() -> drift.StoredCheck:
    """The drift summary of the ledger's database; a failure to read it is shown, never raised."""
    from . import drift  # the catalog and the executor: imported by the page, not by every process

    connection = connections[router.db_for_read(SchemaMigration)]
    try:
        connection.ensure_connection()
        # A savepoint inside the request's transaction (ATOMIC_REQUESTS): a failed query (permission denied
        # on the stored schema's table) must leave the rest of the page a usable transaction.
        with transaction.atomic(using=connection.alias):
            return drift.compare_with_stored(Session(connection.connection))
    except (DbMigrationsError, DatabaseError, psycopg.Error) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return drift.StoredCheck("error", notes=[scrub(first, connection.settings_dict.get("PASSWORD") or "")])


class StateFilter(admin.SimpleListFilter):
    """Filter rows by their file's state on disk."""

    title = "file on disk"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            (OK, "ok (unchanged)"),
            (MODIFIED, "modified since applied"),
            (MISSING, "file missing"),
            (REPLACED, "another file holds the version"),
            (INVALID, "file invalid"),
        ]

    def queryset(self, request, queryset):
        return queryset.filter(file_state=self.value()) if self.value() else queryset


@admin.register(SchemaMigration)
class SchemaMigrationAdmin(admin.ModelAdmin):
    list_display = ("version_number", "description", "applied_at", "short_checksum", "state", "sql_ran")
    list_filter = (StateFilter, "applied_at")
    search_fields = ("version", "description")
    ordering = (version_order().asc(),)
    actions = None
    show_full_result_count = False

    # Read-only for staff: no add, change or delete, whatever the user's permissions.
    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        view = overview(request)
        queryset = super().get_queryset(request)
        if not view.columns:
            return queryset.none()  # no ledger yet: nothing applied
        absent = [c for c in RUNNER_COLUMNS if c not in view.columns]
        if absent:
            queryset = queryset.defer(*absent)  # a table created by the spec's DDL alone
        by_state: dict[str, list[str]] = {}
        for version, state in view.states.items():
            by_state.setdefault(state, []).append(version)
        whens = [When(version__in=versions, then=Value(state)) for state, versions in by_state.items()]
        return queryset.annotate(file_state=Case(*whens, default=Value(UNKNOWN), output_field=CharField()))

    def get_fields(self, request, obj=None):
        columns = overview(request).columns
        fields = ["version", "description", "state", "file_on_disk", "applied_at", "checksum"]
        return fields + [c for c in RUNNER_COLUMNS if c in columns]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied  # no actions, no list_editable: a POST can only be a write
        view = overview(request)
        context = {
            "sql_pending": [
                (e, display_path(e.file.path), e.partial_dict()["summary"] if e.state == plan.State.PARTIAL else "")
                for e in view.pending
            ],
            "sql_problems": [f"{display_path(p.path)}: {p.message}" for p in view.problems],
            "sql_no_ledger": not view.columns,
            "sql_migrations_dir": display_path(conf.migrations_dir()),
            "sql_drift": view.drift,
            "sql_drift_shown": (view.drift.differences[:DRIFT_SHOWN] if view.drift else []),
        }
        return super().changelist_view(request, {**context, **(extra_context or {})})

    @admin.display(description="version", ordering=version_order())
    def version_number(self, obj):
        return obj.version

    @admin.display(description="checksum")
    def short_checksum(self, obj):
        if not obj.checksum:
            return "-"
        return format_html('<code title="{}">{}</code>', obj.checksum, obj.checksum[:12])

    @admin.display(description="file on disk", ordering="file_state")
    def state(self, obj):
        state = getattr(obj, "file_state", UNKNOWN)
        return format_html('<span class="sqlm-state sqlm-{}">{}</span>', state, state)

    @admin.display(description="SQL")
    def sql_ran(self, obj):
        if "fake" in obj.get_deferred_fields():  # a ledger without the runner's columns: unknown
            return "-"
        return format_html('<span class="sqlm-fake">{}</span>', "fake (baseline): not run") if obj.fake else "ran"

    @admin.display(description="file")
    def file_on_disk(self, obj):
        entry = getattr(obj, "sql_entry", None)
        if entry is None or entry.path is None:
            return "-"
        text = display_path(entry.path)
        if entry.state == plan.State.REPLACED:
            text += f" (the version was applied from {entry.row.filename})"
        return text

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.sql_entry = overview(request).entry(obj.version)
        return obj
