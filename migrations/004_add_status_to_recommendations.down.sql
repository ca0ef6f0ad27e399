-- Migration: 004_add_status_to_recommendations (down)
-- Description: Removes the status column (and its index) from recommendations
-- Created: 2024-01-20
-- Author: System

BEGIN;

DROP INDEX IF EXISTS idx_recommendations_status;
ALTER TABLE recommendations DROP COLUMN IF EXISTS status;

COMMIT;
