-- Migration: 002_add_workouts_table (down)
-- Description: Drops the workouts table (its indexes and trigger go with it)
-- Created: 2024-01-15
-- Author: System

-- lint: ignore-file ban-drop-table -- a down file runs only on an explicit rollback, by an operator who means to remove this
-- lint: ignore-file require-lock-timeout, require-statement-timeout -- a down file runs only on an explicit rollback, by hand, when the operator can watch it

BEGIN;

DROP TABLE IF EXISTS workouts;

COMMIT;
