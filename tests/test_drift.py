"""check_sql_schema: the live database compared with the schema its applied migrations build."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import SHIPPED_MIGRATIONS, migration, write_files

RICH = {
    "001_base.sql": migration(
        "001_base",
        """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE SEQUENCE IF NOT EXISTS ticket_seq START 100;
CREATE TABLE IF NOT EXISTS members (
  id SERIAL PRIMARY KEY,
  email VARCHAR(255) NOT NULL UNIQUE,
  mood mood DEFAULT 'happy',
  score INTEGER CHECK (score >= 0)
);
CREATE INDEX IF NOT EXISTS idx_members_mood ON members(mood);
CREATE OR REPLACE FUNCTION touch() RETURNS trigger AS $$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql;
CREATE TRIGGER members_touch BEFORE UPDATE ON members FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW happy_members AS SELECT id, email FROM members WHERE mood = 'happy';
CREATE MATERIALIZED VIEW member_count AS SELECT count(*) AS n FROM members;
ALTER TABLE members ENABLE ROW LEVEL SECURITY;
CREATE POLICY members_own ON members FOR SELECT USING (true);
COMMENT ON TABLE members IS 'people';
GRANT SELECT ON members TO PUBLIC;
""",
    ),
    "002_notes.sql": migration("002_notes", "CREATE TABLE IF NOT EXISTS notes (id int, body text);"),
}

# What a hand-made change does → the line the check must report.
ALTERATIONS = {
    "table": ("CREATE TABLE hotfix (id int)", "table hotfix: extra"),
    "column": ("ALTER TABLE notes DROP COLUMN body", "column notes.body: missing"),
    "column type": ("ALTER TABLE notes ALTER COLUMN id TYPE bigint", "column notes.id: differs"),
    "nullability": ("ALTER TABLE notes ALTER COLUMN id SET NOT NULL", "column notes.id: differs"),
    "default": ("ALTER TABLE members ALTER COLUMN mood SET DEFAULT 'sad'", "column members.mood: differs"),
    "constraint": (
        "ALTER TABLE members DROP CONSTRAINT members_score_check",
        "constraint members.members_score_check: missing",
    ),
    "not valid": (
        "ALTER TABLE notes ADD CONSTRAINT notes_id_positive CHECK (id > 0) NOT VALID",
        "constraint notes.notes_id_positive: extra",
    ),
    "index": ("CREATE INDEX hotfix_idx ON notes(id)", "index hotfix_idx: extra"),
    "invalid index": (
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_members_mood'::regclass",
        "index idx_members_mood: differs",
    ),
    "sequence": ("ALTER SEQUENCE ticket_seq INCREMENT BY 5", "sequence ticket_seq: differs"),
    "view": (
        "CREATE OR REPLACE VIEW happy_members AS SELECT id, email FROM members WHERE mood = 'sad'",
        "view happy_members: differs",
    ),
    "materialized view": ("DROP MATERIALIZED VIEW member_count", "view member_count: missing"),
    "function": (
        "CREATE OR REPLACE FUNCTION touch() RETURNS trigger AS $$ BEGIN NEW.score := 0; RETURN NEW; END; $$ "
        "LANGUAGE plpgsql",
        "function touch(): differs",
    ),
    "trigger": ("DROP TRIGGER members_touch ON members", "trigger members.members_touch: missing"),
    "enum": ("ALTER TYPE mood ADD VALUE 'meh'", "type mood: differs"),
    "extension": ("DROP EXTENSION vector", "extension vector: missing"),
    "policy": ("DROP POLICY members_own ON members", "policy members.members_own: missing"),
    "rls": ("ALTER TABLE members DISABLE ROW LEVEL SECURITY", "table members: differs"),
    "grant": ("REVOKE SELECT ON members FROM PUBLIC", "grant members: missing"),
    "comment": ("COMMENT ON TABLE members IS 'humans'", "comment members: differs"),
}


@pytest.fixture
def rich(call, database, migrations_dir):
    write_files(migrations_dir, RICH)
    applied = call("apply_sql_migrations", migrations=migrations_dir)
    assert applied.returncode == 0, applied.output
    return migrations_dir


def test_a_database_built_by_the_runner_has_no_drift(call, rich):
    result = call("check_sql_schema", migrations=rich)
    assert result.returncode == 0, result.output
    assert "2 applied migration(s) rebuilt on the same server: the database matches them." in result.stdout


def test_the_shipped_migrations_have_no_drift(manage, database):
    assert manage("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS).returncode == 0
    manage("migrate", "--no-input")  # Django's own tables are not drift
    result = manage("check_sql_schema", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql (Debian's postgresql-client)")
def test_a_database_built_by_psql_from_the_same_files_has_no_drift(call, database, migrations_dir):
    write_files(migrations_dir, RICH)
    for name in sorted(RICH):
        proc = subprocess.run(
            ["psql", database.url, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(migrations_dir / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    assert call("apply_sql_migrations", "--fake", migrations=migrations_dir).returncode == 0  # adopt the ledger
    result = call("check_sql_schema", migrations=migrations_dir)
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
def test_each_hand_made_change_is_reported(call, database, rich, alteration):
    statement, expected = ALTERATIONS[alteration]
    database.query(statement)
    result = call("check_sql_schema", migrations=rich)
    assert result.returncode == 1, result.output
    lines = [line.strip() for line in result.stdout.splitlines() if ": " in line and not line.startswith(" " * 4)]
    reported = [line for line in lines if line.split(": ")[1].split()[0] in ("missing", "extra", "differs")]
    assert len(reported) == 1 and reported[0].startswith(expected), result.stdout
    assert "1 difference(s)" in result.stdout


def test_json_report(call, database, rich):
    database.query("CREATE INDEX hotfix_idx ON notes(id)")
    result = call("check_sql_schema", "--json", migrations=rich)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["applied_versions"] == ["001", "002"]
    assert report["differences"] == [
        {
            "kind": "index",
            "name": "hotfix_idx",
            "change": "extra",
            "expected": None,
            "actual": "CREATE INDEX hotfix_idx ON public.notes USING btree (id)",
        }
    ]


def test_a_missing_file_cannot_be_checked(call, database, rich):
    (rich / "002_notes.sql").unlink()
    result = call("check_sql_schema", migrations=rich)
    assert result.returncode == 2
    assert "002" in result.stderr and "missing" in result.stderr


def test_a_role_without_createdb_builds_on_the_embedded_server(manage, database, rich, pg_server):
    # The embedded server's folder outside pytest's tmp dir (see conftest.pg_server for why).
    pgdata = Path(tempfile.mkdtemp(prefix="bestrong-drift-")) / "pgdata"
    env = {"SQL_EMBEDDED_PGDATA": str(pgdata)}
    role = f"nocreate_{database.name}"
    database.query(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw' NOCREATEDB")
    database.query(f'GRANT SELECT ON schema_migrations TO "{role}"')  # the ledger is not drift
    try:
        result = manage(
            "check_sql_schema",
            migrations=rich,
            env=env,
            database_url=pg_server.url(database.name, user=role, password="pw"),
        )
        assert result.returncode == 0, result.output
        assert "rebuilt on the embedded server" in result.stdout and "the database matches them" in result.stdout
    finally:
        manage("embedded_db", "stop", env=env)
        shutil.rmtree(pgdata.parent, ignore_errors=True)
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE IF EXISTS "{role}"')
