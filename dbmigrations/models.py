"""A read-only Django view of the ledger, for the admin.

``schema_migrations`` (in the ``SQL_MIGRATIONS_SCHEMA`` schema) belongs to the SQL
runner (:mod:`dbmigrations.ledger` creates and writes it); Django never creates,
alters or writes it (``managed = False``; the admin refuses every write).
"""

from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.db import models
from django.db.models.functions import LPad

from . import ledger


class UtcTimestampField(models.DateTimeField):
    """A ``TIMESTAMP`` (without time zone) column holding UTC, as the runner writes ``applied_at``."""

    def from_db_value(self, value, expression, connection):
        if value is not None and settings.USE_TZ and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class SchemaMigration(models.Model):
    """One applied SQL migration (a row of ``schema_migrations``)."""

    version = models.CharField(max_length=255, primary_key=True)
    applied_at = UtcTimestampField(null=True)
    checksum = models.CharField(max_length=64, null=True)
    description = models.TextField(null=True)
    execution_ms = models.IntegerField("execution time (ms)", null=True)
    filename = models.TextField(null=True)
    applied_by = models.TextField(null=True)
    fake = models.BooleanField("recorded without running its SQL", default=False)
    attempts = models.IntegerField("attempts (runs until it committed)", null=True)

    class Meta:
        managed = False
        # Schema-qualified (Django leaves a name already in double quotes as it is), so search_path never
        # picks another schema_migrations. Read when the class is built: a change of SQL_MIGRATIONS_SCHEMA
        # needs a restart, like any model option.
        db_table = ledger.table()
        verbose_name = "applied SQL migration"
        verbose_name_plural = "applied SQL migrations"

    def __str__(self) -> str:
        # filename is deferred when the table lacks the runner's columns: don't query it.
        filename = None if "filename" in self.get_deferred_fields() else self.filename
        return (filename or self.version).removesuffix(".sql")


def version_order() -> models.Func:
    """An expression that sorts versions numerically (``999`` before ``1000``, ``002`` equal to ``0002``).

    Leading zeros are stripped and the rest is left-padded to the column's width, so
    text order is number order without casting (which a non-numeric version would break).
    """
    stripped = models.Func(models.F("version"), models.Value("0"), function="LTRIM", output_field=models.CharField())
    return LPad(stripped, 255, models.Value("0"))
