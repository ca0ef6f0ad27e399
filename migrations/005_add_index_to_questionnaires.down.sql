-- Migration: 005_add_index_to_questionnaires (down)
-- Description: Drops the questionnaires client_id index
-- Created: 2024-01-25
-- Author: System

-- lint: ignore-file require-lock-timeout, require-statement-timeout -- a down file runs only on an explicit rollback, by hand, when the operator can watch it
-- lint: ignore-file require-concurrent-index-deletion -- DROP INDEX CONCURRENTLY cannot run in the transaction that keeps the rollback atomic

BEGIN;

DROP INDEX IF EXISTS idx_questionnaires_client_id;

COMMIT;
