-- Migration: 005_add_index_to_questionnaires (down)
-- Description: Drops the questionnaires client_id index
-- Created: 2024-01-25
-- Author: System

BEGIN;

DROP INDEX IF EXISTS idx_questionnaires_client_id;

COMMIT;
