#!/bin/bash
# Copy a PostgreSQL role's SCRAM verifier (never the password) from this host to the target.
# Prints "changed" when the target's role was created or its verifier updated.
set -euo pipefail
user="$1" target="$2"
query="SELECT rolpassword FROM pg_authid WHERE rolname = :'u'"
read_verifier() { runuser -u postgres -- psql -XAt -d postgres -v u="$user" <<<"$query;"; }
source_verifier="$(read_verifier)"
if [ -z "$source_verifier" ]; then
    echo "role $user has no password on the source" >&2
    exit 1
fi
target_verifier="$($MIGRATE_SSH "root@$target" \
    "runuser -u postgres -- psql -XAt -d postgres -v u=$(printf %q "$user")" <<<"$query;")"
if [ "$source_verifier" = "$target_verifier" ]; then
    echo unchanged
    exit 0
fi
$MIGRATE_SSH "root@$target" "runuser -u postgres -- psql -XAq -v ON_ERROR_STOP=1 -d postgres" <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', '$user', '$source_verifier') \gexec
SQL
echo changed
