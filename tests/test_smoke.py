from tests.conftest import SHIPPED_MIGRATIONS, migration, write_files


def test_apply_shipped_subprocess(manage, database):
    result = manage("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001", "002", "003", "004", "005"]


def test_apply_inprocess(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "a" in database.tables()
