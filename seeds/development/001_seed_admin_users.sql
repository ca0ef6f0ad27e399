-- Seed: 001_seed_admin_users
-- Environment: development
-- Description: Creates the development admin users (passwords are in the README)
-- Created: 2024-01-15

BEGIN;

-- Idempotent: an existing email is left alone, so a second run inserts 0 rows.
-- Passwords (development only): admin@example.com / BeStrongAdmin!2024, test@example.com / BeStrongTest!2024
INSERT INTO admin_users (email, password_hash, first_name, last_name)
VALUES
  ('admin@example.com', '$2a$10$BzyFCGyxhStgQB7Wjt1YiupK1uZagEU0axQF8w/15ic9xBQ00QAOK', 'Admin', 'User'),
  ('test@example.com', '$2a$10$ReBzy4MvJXpgh6lSqqH3AuV4017qnwEWf4PkY51uvIPGDa1H6hclO', 'Test', 'User')
ON CONFLICT (email) DO NOTHING;

COMMIT;
