#!/bin/bash
# copy_roles.sh DB APP_ROLE TARGET: every PostgreSQL role that owns or is granted anything
# in database DB (the database itself, schemas, tables, sequences, functions, types, default
# privileges), the application's role APP_ROLE, and the roles that are members of those,
# copied from this host to TARGET with their attributes, SCRAM verifiers (never a password:
# pg_authid holds only verifiers) and memberships, so that the owners and grants of a
# pg_dump restore exist there. Superusers and the pg_* roles are left alone.
# Prints "changed" when the target's roles were created or altered, else "unchanged".
set -euo pipefail
db="$1" app="$2" target="$3"
psql_here() { runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
psql_there() { $MIGRATE_SSH "root@$target" "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 $*"; }

# The roles DB needs, by name, one a line.
needed="$(psql_here -d "$db" -v app="$app" <<'SQL'
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
)
SELECT rolname FROM pg_roles WHERE oid IN (SELECT oid FROM used)
   AND NOT rolsuper AND rolname !~ '^pg_' ORDER BY rolname;
SQL
)"
if ! grep -qxF -- "$app" <<<"$needed"; then
    echo "role $app does not exist on the source" >&2
    exit 1
fi
names="{$(paste -sd, - <<<"$needed")}"

# What the target must hold, as SQL that reads the same on both sides when they agree:
# one statement per role (attributes and verifier), then the memberships among them.
describe="$(cat <<'SQL'
SELECT format('CREATE ROLE %I;', rolname) FROM pg_authid
 WHERE rolname = ANY (:'names'::text[]) ORDER BY rolname;
SELECT format('ALTER ROLE %I WITH %s %s %s %s CONNECTION LIMIT %s PASSWORD %L VALID UNTIL %L;',
              rolname,
              CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
              CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
              CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
              CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
              rolconnlimit, rolpassword, coalesce(rolvaliduntil::text, 'infinity'))
  FROM pg_authid WHERE rolname = ANY (:'names'::text[]) ORDER BY rolname;
SELECT format('GRANT %I TO %I;', g.rolname, m.rolname)
  FROM pg_auth_members a JOIN pg_authid g ON g.oid = a.roleid JOIN pg_authid m ON m.oid = a.member
 WHERE g.rolname = ANY (:'names'::text[]) AND m.rolname = ANY (:'names'::text[])
 ORDER BY 1;
SQL
)"
wanted="$(psql_here -d postgres -v names="$names" <<<"$describe")"
have="$(psql_there -d postgres -v names="$(printf %q "$names")" <<<"$describe")"
if [ "$wanted" = "$have" ]; then
    echo unchanged
    exit 0
fi
# CREATE ROLE only for the missing ones; every ALTER and GRANT again (all idempotent).
{
    sed -n 's/^CREATE ROLE \(.*\);$/SELECT format($q$CREATE ROLE %s$q$, $c$\1$c$) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE quote_ident(rolname) = $c$\1$c$) \\gexec/p' <<<"$wanted"
    grep -v '^CREATE ROLE ' <<<"$wanted"
} | psql_there -d postgres >/dev/null
echo changed
