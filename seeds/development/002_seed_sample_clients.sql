-- Seed: 002_seed_sample_clients
-- Environment: development
-- Description: Sample clients with a questionnaire, a recommendation and its workouts each
-- Created: 2024-01-15

BEGIN;

INSERT INTO clients (email, first_name, last_name, phone, date_of_birth)
VALUES
  ('maria.garcia@example.com', 'Maria', 'Garcia', '+1-555-0101', '1990-04-12'),
  ('james.chen@example.com', 'James', 'Chen', '+1-555-0102', '1985-09-30'),
  ('aisha.okafor@example.com', 'Aisha', 'Okafor', NULL, '1997-01-05')
ON CONFLICT (email) DO NOTHING;

-- One questionnaire per sample client, only if that client has none yet.
INSERT INTO questionnaires (client_id, responses)
SELECT c.id, s.responses
FROM (VALUES
  ('maria.garcia@example.com', '{"goal": "strength", "experience": "intermediate", "days_per_week": 4,
     "equipment": ["barbell", "dumbbells", "rack"], "injuries": [], "session_minutes": 60}'::jsonb),
  ('james.chen@example.com', '{"goal": "fat_loss", "experience": "beginner", "days_per_week": 3,
     "equipment": ["dumbbells", "bands"], "injuries": ["lower_back"], "session_minutes": 45}'::jsonb),
  ('aisha.okafor@example.com', '{"goal": "hypertrophy", "experience": "advanced", "days_per_week": 5,
     "equipment": ["full_gym"], "injuries": [], "session_minutes": 75}'::jsonb)
) AS s(email, responses)
JOIN clients c ON c.email = s.email
WHERE NOT EXISTS (SELECT 1 FROM questionnaires q WHERE q.client_id = c.id);

-- One recommendation per questionnaire, only if it has none yet.
INSERT INTO recommendations (client_id, questionnaire_id, plan_data, reasoning, status)
SELECT q.client_id, q.id,
  jsonb_build_object(
    'program', q.responses->>'goal',
    'weeks', 4,
    'sessions_per_week', (q.responses->>'days_per_week')::int,
    'progression', jsonb_build_object('type', 'linear', 'weekly_load_increase_pct', 2.5)
  ),
  'Built from the sample questionnaire: ' || (q.responses->>'experience') || ' lifter, goal ' || (q.responses->>'goal'),
  'active'
FROM questionnaires q
JOIN clients c ON c.id = q.client_id
WHERE c.email IN ('maria.garcia@example.com', 'james.chen@example.com', 'aisha.okafor@example.com')
  AND NOT EXISTS (SELECT 1 FROM recommendations r WHERE r.questionnaire_id = q.id);

-- Week 1 workouts of each sample recommendation; the unique key makes reruns insert nothing.
INSERT INTO workouts (recommendation_id, week_number, session_number, workout_name, workout_data, workout_reasoning)
SELECT r.id, 1, w.session_number, w.workout_name, w.workout_data, w.workout_reasoning
FROM recommendations r
JOIN clients c ON c.id = r.client_id
CROSS JOIN (VALUES
  (1, 'Lower body A', '{"exercises": [{"name": "Back squat", "sets": 4, "reps": 6, "rpe": 7},
     {"name": "Romanian deadlift", "sets": 3, "reps": 8, "rpe": 7}, {"name": "Walking lunge", "sets": 3, "reps": 12}]}'::jsonb,
   'Compound lower-body work first, while fresh.'),
  (2, 'Upper body A', '{"exercises": [{"name": "Bench press", "sets": 4, "reps": 6, "rpe": 7},
     {"name": "Bent-over row", "sets": 4, "reps": 8}, {"name": "Overhead press", "sets": 3, "reps": 8}]}'::jsonb,
   'Balanced push and pull volume.'),
  (3, 'Conditioning', '{"exercises": [{"name": "Rower intervals", "rounds": 8, "work_seconds": 30, "rest_seconds": 90},
     {"name": "Plank", "sets": 3, "seconds": 45}]}'::jsonb,
   'Short intervals keep recovery cost low.')
) AS w(session_number, workout_name, workout_data, workout_reasoning)
WHERE c.email IN ('maria.garcia@example.com', 'james.chen@example.com', 'aisha.okafor@example.com')
ON CONFLICT (recommendation_id, week_number, session_number) DO NOTHING;

COMMIT;
