-- Migration: 002_add_workouts_table
-- Description: Creates the workouts table for storing individual workout sessions
-- Created: 2024-01-15
-- Author: System

-- lint: ignore-file prefer-bigint-over-int, prefer-identity, prefer-text-field, prefer-timestamp-tz -- column types follow the spec's schema (SERIAL, INTEGER, VARCHAR, TIMESTAMP); changing them is a new migration's job

BEGIN;

-- Create table
-- lint: ignore require-lock-timeout, require-statement-timeout -- a new, empty table; its foreign key locks recommendations only for the instant of the CREATE, acceptable at this app's size
CREATE TABLE IF NOT EXISTS workouts (
  id SERIAL PRIMARY KEY,
  recommendation_id INTEGER NOT NULL REFERENCES recommendations(id) ON DELETE CASCADE,
  week_number INTEGER NOT NULL,
  session_number INTEGER NOT NULL,
  workout_name VARCHAR(255),
  workout_data JSONB NOT NULL,
  workout_reasoning TEXT,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  UNIQUE(recommendation_id, week_number, session_number)
);

-- Create indexes
CREATE INDEX IF NOT EXISTS idx_workouts_recommendation_id ON workouts(recommendation_id);
CREATE INDEX IF NOT EXISTS idx_workouts_week_session ON workouts(recommendation_id, week_number, session_number);

-- Create trigger (if function exists)
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'update_updated_at_column') THEN
    DROP TRIGGER IF EXISTS update_workouts_updated_at ON workouts;
    CREATE TRIGGER update_workouts_updated_at BEFORE UPDATE ON workouts
      FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
  END IF;
END $$;

COMMIT;
