-- Migration: 002_add_workouts_table (down)
-- Description: Drops the workouts table (its indexes and trigger go with it)
-- Created: 2024-01-15
-- Author: System

BEGIN;

DROP TABLE IF EXISTS workouts;

COMMIT;
