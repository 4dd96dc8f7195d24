#!/usr/bin/env bash
# The app's login role: a member of the group role signup_app (least privilege; see
# docs/deployment.md, "Database roles"). The postgres image runs this on the first start of an
# empty volume (docker-compose.yml mounts it in /docker-entrypoint-initdb.d); on an existing
# volume run it once by hand: docker compose exec postgres bash /docker-entrypoint-initdb.d/10-app-role.sh
# Safe to run again: it creates what is missing and sets the login role's password.
# No `set -u`: the image may source this file into its own entrypoint.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_user="${POSTGRES_APP_USER:-signup_runtime}" -v app_password="$POSTGRES_APP_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE signup_app NOLOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'signup_app') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT set_config('signup.app_user', :'app_user', false) AS app_user_set \gset
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = current_setting('signup.app_user')
               AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls)) THEN
        RAISE EXCEPTION 'POSTGRES_APP_USER % has privileges of its own: use a role of its own',
            current_setting('signup.app_user');
    END IF;
END $$;
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
GRANT signup_app TO :"app_user";
SQL
