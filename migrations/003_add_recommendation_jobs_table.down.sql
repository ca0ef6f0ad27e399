-- Migration: 003_add_recommendation_jobs_table (down)
-- Description: Drops the recommendation_jobs queue
-- Created: 2024-01-18
-- Author: System

-- lint: ignore-file ban-drop-table -- a down file runs only on an explicit rollback, by an operator who means to remove this
-- lint: ignore-file require-lock-timeout, require-statement-timeout -- a down file runs only on an explicit rollback, by hand, when the operator can watch it

BEGIN;

DROP TABLE IF EXISTS recommendation_jobs;

COMMIT;
