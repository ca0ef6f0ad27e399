-- Migration: 001_initial_schema (down)
-- Description: Drops the core BeStrong tables and the updated_at trigger function
-- Created: 2024-01-10
-- Author: System

BEGIN;

DROP TABLE IF EXISTS recommendations;
DROP TABLE IF EXISTS questionnaires;
DROP TABLE IF EXISTS clients;
DROP TABLE IF EXISTS admin_users;
DROP FUNCTION IF EXISTS update_updated_at_column();

COMMIT;
