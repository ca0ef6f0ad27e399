-- Migration: 003_add_recommendation_jobs_table (down)
-- Description: Drops the recommendation_jobs queue
-- Created: 2024-01-18
-- Author: System

BEGIN;

DROP TABLE IF EXISTS recommendation_jobs;

COMMIT;
