"""The shipped BeStrong schema, checked with plain psycopg (no runner involved)."""

from tests.conftest import SHIPPED_MIGRATIONS

UPS = sorted(p for p in SHIPPED_MIGRATIONS.glob("*.sql") if not p.name.endswith(".down.sql"))
EXPECTED_TABLES = {"admin_users", "clients", "questionnaires", "recommendations", "workouts", "recommendation_jobs"}


def run_file(connection, path):
    # psql-like: the file's own BEGIN/COMMIT; psycopg sends it as one simple query.
    connection.execute(path.read_text(encoding="utf-8"), prepare=False)


def test_files_apply_in_order_twice_and_downs_leave_an_empty_schema(database):
    assert [p.name[:3] for p in UPS] == ["001", "002", "003", "004", "005"]
    with database.connect() as connection:
        for path in UPS:
            run_file(connection, path)
        assert database.tables() == EXPECTED_TABLES
        columns = {
            r[0]
            for r in database.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'recommendations'"
            )
        }
        assert {"status", "plan_data", "client_id", "questionnaire_id"} <= columns
        indexes = {r[0] for r in database.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert {
            "idx_questionnaires_client_id",
            "idx_recommendations_status",
            "idx_recommendation_jobs_claim",
            "idx_workouts_recommendation_id",
        } <= indexes

        for path in UPS:  # the spec's rule: safe to run twice
            run_file(connection, path)
        assert database.tables() == EXPECTED_TABLES

        for path in reversed(UPS):
            run_file(connection, path.with_name(path.name.replace(".sql", ".down.sql")))
        assert database.tables() == set()
        leftovers = database.query(
            "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        )
        assert leftovers == []


def test_updated_at_trigger_and_job_queue_claim(database):
    with database.connect() as connection:
        for path in UPS:
            run_file(connection, path)
        client = connection.execute(
            "INSERT INTO clients (email, first_name, last_name) VALUES ('a@b.c', 'A', 'B') RETURNING id"
        ).fetchone()[0]
        connection.execute("UPDATE clients SET updated_at = '2000-01-01' WHERE id = %s", (client,))
        updated = connection.execute(
            "SELECT updated_at > '2001-01-01' FROM clients WHERE id = %s", (client,)
        ).fetchone()
        assert updated == (True,)
        connection.execute("INSERT INTO recommendation_jobs (client_id) VALUES (%s), (%s)", (client, client))
        plan = "\n".join(
            r[0]
            for r in connection.execute(
                "EXPLAIN SELECT id FROM recommendation_jobs WHERE status = 'queued' AND run_after <= now() "
                "ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchall()
        )
        assert "recommendation_jobs" in plan
        connection.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in connection.execute(
                "EXPLAIN SELECT id FROM recommendation_jobs WHERE status = 'queued' AND run_after <= now() "
                "ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchall()
        )
        assert "idx_recommendation_jobs_claim" in plan
