"""The public API refuses to run inside the caller's transaction."""

import pytest

from dbmigrations import api
from dbmigrations.exceptions import ConfigurationError


@pytest.mark.django_db
def test_apply_inside_atomic_is_refused_and_changes_nothing(django_db_blocker):
    from django.db import connection

    assert connection.in_atomic_block  # pytest-django's db fixture wraps the test in atomic()
    with pytest.raises(ConfigurationError, match="inside transaction.atomic"):
        api.apply_migrations()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('schema_migrations')")
        assert cursor.fetchone() == (None,)
