-- Migration: 004_add_status_to_recommendations (down)
-- Description: Removes the status column (and its index) from recommendations
-- Created: 2024-01-20
-- Author: System

-- lint: ignore-file ban-drop-column -- a down file runs only on an explicit rollback, by an operator who means to remove this
-- lint: ignore-file require-lock-timeout, require-statement-timeout -- a down file runs only on an explicit rollback, by hand, when the operator can watch it
-- lint: ignore-file require-concurrent-index-deletion -- DROP INDEX CONCURRENTLY cannot run in the transaction that keeps the rollback atomic

BEGIN;

DROP INDEX IF EXISTS idx_recommendations_status;
ALTER TABLE recommendations DROP COLUMN IF EXISTS status;

COMMIT;
