-- Migration: 001_initial_schema (down)
-- Description: Drops the core BeStrong tables and the updated_at trigger function
-- Created: 2024-01-10
-- Author: System

-- lint: ignore-file ban-drop-table, ban-drop-function -- a down file runs only on an explicit rollback, by an operator who means to remove this
-- lint: ignore-file require-lock-timeout, require-statement-timeout -- a down file runs only on an explicit rollback, by hand, when the operator can watch it

BEGIN;

DROP TABLE IF EXISTS recommendations;
DROP TABLE IF EXISTS questionnaires;
DROP TABLE IF EXISTS clients;
DROP TABLE IF EXISTS admin_users;
DROP FUNCTION IF EXISTS update_updated_at_column();

COMMIT;
