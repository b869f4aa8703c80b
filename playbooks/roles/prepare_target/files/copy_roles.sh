#!/bin/bash
# copy_roles.sh DB APP_ROLE TARGET: every PostgreSQL role that owns or is granted anything
# in database DB (the database itself, schemas, tables, sequences, functions, types, default
# privileges), the application's role APP_ROLE, and the roles that are members of those,
# copied from this host to TARGET with their attributes, SCRAM verifiers (never a password:
# pg_authid holds only verifiers) and memberships, so that the owners and grants of a
# pg_dump restore exist there. Superusers and the pg_* roles are left alone.
# Prints "changed" when the target's roles were created or altered, else "unchanged".
#
# Role names come from the source host, so they travel as data: one JSON document (names,
# attributes, verifiers, memberships) on the target's stdin, turned into statements there by
# format('%I') and format('%L'). No name is pasted into SQL text, and no verifier reaches an
# argument list or a logged statement.
set -euo pipefail
db="$1" app="$2" target="$3"
conn() { local v="${1//\\/\\\\}"; printf "dbname='%s'" "${v//\'/\\\'}"; }

# The roles DB needs with what the target must hold of them, as one line of JSON; nothing
# when APP_ROLE is not a role of this host that may be copied.
roles="$(runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d "$(conn "$db")" -v app="$app" <<'SQL'
WITH RECURSIVE used(oid) AS (
    SELECT datdba FROM pg_database WHERE datname = current_database()
  UNION SELECT (aclexplode(datacl)).grantee FROM pg_database
        WHERE datname = current_database() AND datacl IS NOT NULL
  UNION SELECT nspowner FROM pg_namespace
  UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspacl IS NOT NULL
  UNION SELECT relowner FROM pg_class
  UNION SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relacl IS NOT NULL
  UNION SELECT proowner FROM pg_proc
  UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc WHERE proacl IS NOT NULL
  UNION SELECT typowner FROM pg_type
  UNION SELECT defaclrole FROM pg_default_acl
  UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
  UNION SELECT oid FROM pg_roles WHERE rolname = :'app'
  UNION SELECT m.member FROM pg_auth_members m JOIN used u ON m.roleid = u.oid
), copied AS (
    SELECT * FROM pg_authid
    WHERE oid IN (SELECT oid FROM used) AND NOT rolsuper AND rolname !~ '^pg_'
)
SELECT jsonb_build_object(
    'roles', (SELECT jsonb_agg(jsonb_build_object(
                  'name', rolname, 'login', rolcanlogin, 'inherit', rolinherit,
                  'createdb', rolcreatedb, 'createrole', rolcreaterole,
                  'connlimit', rolconnlimit, 'password', rolpassword,
                  'valid_until', coalesce(rolvaliduntil, 'infinity')))
              FROM copied),
    'grants', coalesce((SELECT jsonb_agg(jsonb_build_object('role', g.rolname, 'member', m.rolname))
                        FROM pg_auth_members a JOIN copied g ON g.oid = a.roleid
                        JOIN copied m ON m.oid = a.member), '[]'))
WHERE EXISTS (SELECT FROM copied WHERE rolname = :'app');
SQL
)"
if [ -z "$roles" ]; then
    echo "role $app does not exist on the source (or is a superuser)" >&2
    exit 1
fi

# On the target: the document into a temporary table (CSV with separators JSON never
# holds), compared with what is there, and applied inside the server when they differ.
{
    cat <<'SQL'
SET client_min_messages = warning;
CREATE TEMP TABLE migrate_roles (doc jsonb NOT NULL);
COPY migrate_roles FROM STDIN (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');
SQL
    printf '%s\n\\.\n' "$roles"
    cat <<'SQL'
CREATE TEMP VIEW want AS
    SELECT r.* FROM migrate_roles, jsonb_to_recordset(doc->'roles') AS r (
        name text, login boolean, inherit boolean, createdb boolean, createrole boolean,
        connlimit integer, password text, valid_until timestamptz);
CREATE TEMP VIEW have AS
    SELECT rolname, rolcanlogin, rolinherit, rolcreatedb, rolcreaterole, rolconnlimit,
           rolpassword, coalesce(rolvaliduntil, 'infinity')
    FROM pg_authid WHERE rolname IN (SELECT name FROM want);
CREATE TEMP VIEW want_grants AS
    SELECT g.* FROM migrate_roles, jsonb_to_recordset(doc->'grants') AS g (role text, member text);
CREATE TEMP VIEW have_grants AS
    SELECT g.rolname AS role, m.rolname AS member
    FROM pg_auth_members a JOIN pg_authid g ON g.oid = a.roleid JOIN pg_authid m ON m.oid = a.member
    WHERE g.rolname IN (SELECT name FROM want) AND m.rolname IN (SELECT name FROM want);
SELECT NOT EXISTS (SELECT * FROM want EXCEPT SELECT * FROM have)
       AND NOT EXISTS (SELECT * FROM have EXCEPT SELECT * FROM want)
       AND NOT EXISTS (SELECT * FROM want_grants EXCEPT SELECT * FROM have_grants)
       AND NOT EXISTS (SELECT * FROM have_grants EXCEPT SELECT * FROM want_grants) AS same \gset
\if :same
\echo unchanged
\else
DO $$
DECLARE
    r record;
BEGIN
    IF EXISTS (SELECT FROM want JOIN pg_authid a ON a.rolname = want.name WHERE a.rolsuper) THEN
        RAISE EXCEPTION 'a role to copy is a superuser on the target: %',
            (SELECT string_agg(quote_ident(name), ', ') FROM want JOIN pg_authid a
             ON a.rolname = want.name WHERE a.rolsuper);
    END IF;
    FOR r IN SELECT * FROM want LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I', r.name);
        END IF;
        EXECUTE format('ALTER ROLE %I WITH %s %s %s %s CONNECTION LIMIT %s PASSWORD %L VALID UNTIL %L',
                       r.name,
                       CASE WHEN r.login THEN 'LOGIN' ELSE 'NOLOGIN' END,
                       CASE WHEN r.inherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
                       CASE WHEN r.createdb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
                       CASE WHEN r.createrole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
                       r.connlimit, r.password, r.valid_until);
    END LOOP;
    FOR r IN SELECT * FROM want_grants LOOP
        EXECUTE format('GRANT %I TO %I', r.role, r.member);
    END LOOP;
EXCEPTION WHEN OTHERS THEN  -- raised again without the statement, which holds verifiers
    RAISE EXCEPTION 'copying the roles failed: %', SQLERRM;
END $$;
\echo changed
\endif
SQL
} | $MIGRATE_SSH "root@$target" "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d postgres"
